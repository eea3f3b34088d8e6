//! Vocabulary extension for AnLLM training (method §1.1–§1.3): `[PAD]` and `<AC>` added to a
//! tokenizer's Hugging Face files, and the embedding and LM-head matrices grown by as many rows.
//!
//! The new rows start as a copy of the period row (`copy-period`, the authors' code, used for
//! both the input embedding and the LM head) or as the mean of all existing rows (`mean`, the
//! paper). With tied embeddings only the embedding matrix exists and is grown.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use candle_core::{DType, Tensor};
use serde_json::{Map, Value as Json, json};

use anllm::{Error, LlamaConfig, Result, TokenId};

#[cfg(test)]
mod tests;

/// The padding token AnLLM adds first (id 32000 on Llama-2).
pub const PAD_TOKEN: &str = "[PAD]";
/// The anchor token of AnLLM-AC (id 32001 on Llama-2).
pub const AC_TOKEN: &str = "<AC>";
/// Checkpoint name of the input embedding.
pub const EMBED_TOKENS: &str = "model.embed_tokens.weight";
/// Checkpoint name of the LM head (absent with tied embeddings).
pub const LM_HEAD: &str = "lm_head.weight";

const TOKENIZER_JSON: &str = "tokenizer.json";
const TOKENIZER_CONFIG_JSON: &str = "tokenizer_config.json";
const SPECIAL_TOKENS_MAP_JSON: &str = "special_tokens_map.json";

/// Adds each of `new` to the `tokenizer.json` among `files` (as written by
/// [`anllm::tokenizer::Tokenizer::to_hf_files`]) as a special added token and returns their ids
/// in order. A token already in the vocabulary or the added tokens keeps its id (and becomes an
/// added token if it was a plain piece); the others get the next free ids, in order. When `new`
/// holds `[PAD]`, it becomes `pad_token` of `tokenizer_config.json` (created if missing) and of
/// `special_tokens_map.json` (if present). Errors when there is no `tokenizer.json` or the
/// `tokenizers` crate would give a token another id.
pub fn extend_tokenizer(files: &mut Vec<(String, Vec<u8>)>, new: &[&str]) -> Result<Vec<TokenId>> {
    let at = files
        .iter()
        .position(|(name, _)| name == TOKENIZER_JSON)
        .ok_or_else(|| Error::tokenizer("no `tokenizer.json` among the tokenizer files"))?;
    let mut tokenizer_json = parse(&files[at].1, TOKENIZER_JSON)?;
    let ids = add_tokens(&mut tokenizer_json, new)?;
    let bytes = serde_json::to_vec(&tokenizer_json).map_err(Error::tokenizer)?;
    check_ids(&bytes, new, &ids)?;
    files[at].1 = bytes;
    if new.contains(&PAD_TOKEN) {
        set_pad_token(files)?;
    }
    let added: Vec<(TokenId, &str)> = ids.iter().copied().zip(new.iter().copied()).collect();
    update_added_decoder(files, &added)?;
    Ok(ids)
}

/// Adds `new` to the `added_tokens` of a `tokenizer.json` value; returns their ids.
fn add_tokens(tokenizer_json: &mut Json, new: &[&str]) -> Result<Vec<TokenId>> {
    let vocab = model_vocab(tokenizer_json)?;
    let list = tokenizer_json
        .as_object_mut()
        .ok_or_else(|| Error::tokenizer("`tokenizer.json` is not an object"))?
        .entry("added_tokens")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| Error::tokenizer("`added_tokens` is not a list"))?;
    let mut added: HashMap<String, TokenId> = HashMap::new();
    for token in list.iter() {
        let content = token.get("content").and_then(Json::as_str);
        let id = token.get("id").and_then(Json::as_u64);
        match (content, id.and_then(|id| TokenId::try_from(id).ok())) {
            (Some(content), Some(id)) => added.insert(content.to_owned(), id),
            _ => return Err(Error::tokenizer(format!("malformed added token {token}"))),
        };
    }
    let mut next = vocab
        .values()
        .chain(added.values())
        .max()
        .map_or(0, |&max| max + 1);
    let mut ids = Vec::with_capacity(new.len());
    for &content in new {
        if let Some(&id) = added.get(content) {
            ids.push(id);
            continue;
        }
        let id = vocab.get(content).copied().unwrap_or_else(|| {
            next += 1;
            next - 1
        });
        list.push(added_token(id, content));
        added.insert(content.to_owned(), id);
        ids.push(id);
    }
    list.sort_by_key(|t| t.get("id").and_then(Json::as_u64));
    Ok(ids)
}

/// The model vocabulary of a `tokenizer.json`: `{piece: id}` (BPE, WordPiece, WordLevel) or a
/// list of `[piece, score]` (Unigram, ids in order).
fn model_vocab(tokenizer_json: &Json) -> Result<HashMap<String, TokenId>> {
    let vocab = tokenizer_json.get("model").and_then(|m| m.get("vocab"));
    let entries: Vec<(&str, Option<u64>)> = match vocab {
        Some(Json::Object(map)) => map.iter().map(|(k, v)| (k.as_str(), v.as_u64())).collect(),
        Some(Json::Array(list)) => (0..)
            .zip(list)
            .map(|(id, e)| {
                (
                    e.get(0).and_then(Json::as_str).unwrap_or_default(),
                    Some(id),
                )
            })
            .collect(),
        _ => return Err(Error::tokenizer("`tokenizer.json` has no `model.vocab`")),
    };
    entries
        .into_iter()
        .map(|(piece, id)| {
            let id = id.and_then(|id| TokenId::try_from(id).ok());
            let id = id.ok_or_else(|| Error::tokenizer(format!("bad id of piece `{piece}`")))?;
            Ok((piece.to_owned(), id))
        })
        .collect()
}

/// An added-token entry: special, never normalized or stripped.
fn added_token(id: TokenId, content: &str) -> Json {
    json!({
        "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
        "normalized": false, "special": true,
    })
}

/// Checks that the `tokenizers` crate reads each of `new` with the id we gave it (it assigns
/// ids of new added tokens itself, after the model vocabulary).
fn check_ids(bytes: &[u8], new: &[&str], ids: &[TokenId]) -> Result<()> {
    let loaded = tokenizers::Tokenizer::from_bytes(bytes).map_err(Error::tokenizer)?;
    for (&content, &id) in new.iter().zip(ids) {
        let got = loaded.token_to_id(content);
        if got != Some(id) {
            return Err(Error::tokenizer(format!(
                "`{content}` would load as id {got:?}, not {id} (holes in the vocabulary?)"
            )));
        }
    }
    Ok(())
}

/// Sets `pad_token` to `[PAD]` in `tokenizer_config.json` (created if missing) and in
/// `special_tokens_map.json` (if present).
fn set_pad_token(files: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    if !files.iter().any(|(name, _)| name == TOKENIZER_CONFIG_JSON) {
        files.push((TOKENIZER_CONFIG_JSON.to_owned(), b"{}".to_vec()));
    }
    edit_json(files, TOKENIZER_CONFIG_JSON, |config| {
        config.insert("pad_token".into(), json!(PAD_TOKEN));
    })?;
    edit_json(files, SPECIAL_TOKENS_MAP_JSON, |map| {
        map.insert("pad_token".into(), json!(PAD_TOKEN));
    })
}

/// Adds `added` to `added_tokens_decoder` of `tokenizer_config.json` when the file has one.
fn update_added_decoder(files: &mut [(String, Vec<u8>)], added: &[(TokenId, &str)]) -> Result<()> {
    edit_json(files, TOKENIZER_CONFIG_JSON, |config| {
        let Some(Json::Object(decoder)) = config.get_mut("added_tokens_decoder") else {
            return;
        };
        for &(id, content) in added {
            let mut entry = added_token(id, content);
            if let Some(o) = entry.as_object_mut() {
                o.remove("id");
            }
            decoder.entry(id.to_string()).or_insert(entry);
        }
    })
}

/// Applies `edit` to the JSON object in the file `name` of `files`, if there is one.
fn edit_json(
    files: &mut [(String, Vec<u8>)],
    name: &str,
    edit: impl FnOnce(&mut Map<String, Json>),
) -> Result<()> {
    let Some((_, bytes)) = files.iter_mut().find(|(n, _)| n == name) else {
        return Ok(());
    };
    let mut json = parse(bytes, name)?;
    let object = json
        .as_object_mut()
        .ok_or_else(|| Error::tokenizer(format!("`{name}` is not an object")))?;
    edit(object);
    *bytes = serde_json::to_vec_pretty(&json).map_err(Error::tokenizer)?;
    Ok(())
}

fn parse(bytes: &[u8], name: &str) -> Result<Json> {
    serde_json::from_slice(bytes).map_err(|e| Error::tokenizer(format!("`{name}`: {e}")))
}

/// How the rows of added tokens start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NewRowInit {
    /// A copy of the period token's row (the authors' `run_allms.py`).
    #[default]
    CopyPeriod,
    /// The mean of all existing rows (the paper, §4.1).
    Mean,
}

impl FromStr for NewRowInit {
    type Err = Error;

    /// `copy-period` or `mean`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "copy-period" => Ok(Self::CopyPeriod),
            "mean" => Ok(Self::Mean),
            other => Err(Error::config(
                "new_row_init",
                format!("`{other}` is none of copy-period, mean"),
            )),
        }
    }
}

impl fmt::Display for NewRowInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CopyPeriod => "copy-period",
            Self::Mean => "mean",
        })
    }
}

/// `t` (`[v, d]`) grown to `[new_vocab, d]`, every new row set by `init` (`period_id` is the
/// row copied by [`NewRowInit::CopyPeriod`]). Same dtype and device; `new_vocab == v` gives
/// `t` back. Errors on a tensor that is not a matrix, fewer rows than `v`, or a period id
/// outside the matrix.
pub fn resize_rows(
    t: &Tensor,
    new_vocab: usize,
    init: NewRowInit,
    period_id: TokenId,
) -> Result<Tensor> {
    let shape_error = |expected: String| Error::Shape {
        op: "resize_rows".into(),
        expected,
        got: format!("{:?} to {new_vocab} rows", t.dims()),
    };
    let &[v, d] = t.dims() else {
        return Err(shape_error("a [vocab, hidden] matrix".into()));
    };
    if new_vocab < v {
        return Err(shape_error(format!("at least {v} rows")));
    }
    if new_vocab == v {
        return Ok(t.clone());
    }
    let row = match init {
        NewRowInit::CopyPeriod => {
            let period = period_id as usize;
            if period >= v {
                return Err(shape_error(format!("period id {period_id} below {v}")));
            }
            t.narrow(0, period, 1)?
        }
        NewRowInit::Mean => t
            .to_dtype(DType::F32)?
            .mean_keepdim(0)?
            .to_dtype(t.dtype())?,
    };
    let extra = row.broadcast_as((new_vocab - v, d))?.contiguous()?;
    Ok(Tensor::cat(&[t, &extra], 0)?)
}

/// Grows `model.embed_tokens.weight` and `lm_head.weight` (when present; required unless
/// `cfg.tie_word_embeddings`) of `tensors` to `new_vocab` rows with [`resize_rows`], and sets
/// `cfg.vocab_size`. Both matrices must have `cfg.vocab_size` rows. On error nothing changes.
pub fn extend_model_tensors(
    tensors: &mut HashMap<String, Tensor>,
    cfg: &mut LlamaConfig,
    new_vocab: usize,
    init: NewRowInit,
    period_id: TokenId,
) -> Result<()> {
    let missing = |name: &str| Error::MissingTensor {
        name: name.into(),
        path: PathBuf::from("<tensors in memory>"),
    };
    let embed = tensors
        .get(EMBED_TOKENS)
        .ok_or_else(|| missing(EMBED_TOKENS))?;
    check_rows(EMBED_TOKENS, embed, cfg.vocab_size)?;
    let embed = resize_rows(embed, new_vocab, init, period_id)?;
    let head = match tensors.get(LM_HEAD) {
        Some(head) => {
            check_rows(LM_HEAD, head, cfg.vocab_size)?;
            Some(resize_rows(head, new_vocab, init, period_id)?)
        }
        None if cfg.tie_word_embeddings => None,
        None => return Err(missing(LM_HEAD)),
    };
    tensors.insert(EMBED_TOKENS.to_owned(), embed);
    if let Some(head) = head {
        tensors.insert(LM_HEAD.to_owned(), head);
    }
    cfg.vocab_size = new_vocab;
    Ok(())
}

/// Errors unless `t` is a matrix with `rows` rows.
fn check_rows(name: &str, t: &Tensor, rows: usize) -> Result<()> {
    match t.dims() {
        &[r, _] if r == rows => Ok(()),
        dims => Err(Error::Shape {
            op: name.into(),
            expected: format!("[{rows}, hidden] (config vocab_size)"),
            got: format!("{dims:?}"),
        }),
    }
}
