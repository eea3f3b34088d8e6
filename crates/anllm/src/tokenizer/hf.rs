//! Hugging Face model directories: `tokenizer.json` through the `tokenizers` crate, with the
//! roles, `add_bos_token` and chat template from `tokenizer_config.json`,
//! `special_tokens_map.json`, `generation_config.json` and `chat_template.jinja`.

use std::path::Path;

use serde_json::Value as Json;

use super::special::{END_OF_TURN_PIECES, SpecialTokens};
use crate::{Error, Result, TokenId};

/// A `tokenizers::Tokenizer` twice: once matching special added tokens, once reading them as
/// text.
#[derive(Debug)]
pub(super) struct HfTokenizer {
    parse_special: tokenizers::Tokenizer,
    plain: tokenizers::Tokenizer,
    /// Piece of each id (model vocabulary and added tokens); `None` for holes.
    pieces: Vec<Option<String>>,
}

/// What [`HfTokenizer::load`] reads from a directory.
pub(super) struct Loaded {
    pub(super) tokenizer: HfTokenizer,
    pub(super) specials: SpecialTokens,
    pub(super) add_bos: bool,
    pub(super) chat_template: Option<String>,
}

impl HfTokenizer {
    /// Loads `dir/tokenizer.json` and the optional configuration files beside it.
    pub(super) fn load(dir: &Path) -> Result<Loaded> {
        let path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let parse_special =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::Format {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let mut plain = parse_special.clone();
        plain.set_encode_special_tokens(true);

        let vocab = parse_special.get_vocab(true);
        let len = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        // Ids may leave holes, but not more holes than pieces: one huge id must not size the
        // table (4 billion entries abort on allocation).
        let limit = vocab.len().saturating_mul(2).max(1024);
        if len > limit {
            return Err(Error::tokenizer(format!(
                "{}: token id {} is far past the {} pieces of the vocabulary (at most {} allowed)",
                path.display(),
                len - 1,
                vocab.len(),
                limit - 1
            )));
        }
        let mut pieces = vec![None; len];
        for (piece, id) in vocab {
            pieces[id as usize] = Some(piece);
        }
        let tokenizer = Self {
            parse_special,
            plain,
            pieces,
        };

        let config = read_json(&dir.join("tokenizer_config.json"))?;
        let map = read_json(&dir.join("special_tokens_map.json"))?;
        let generation = read_json(&dir.join("generation_config.json"))?;
        let role = |name: &str| {
            [&config, &map]
                .into_iter()
                .flatten()
                .find_map(|json| token_text(json.get(name)?))
                .and_then(|text| tokenizer.token_id(text))
        };
        let generation_ids = |name: &str| -> Vec<TokenId> {
            match generation.as_ref().and_then(|g| g.get(name)) {
                Some(Json::Array(ids)) => ids.iter().filter_map(json_id).collect(),
                Some(id) => json_id(id).into_iter().collect(),
                None => Vec::new(),
            }
        };
        let generation_eos = generation_ids("eos_token_id");
        let mut specials = SpecialTokens {
            bos: role("bos_token").or_else(|| generation_ids("bos_token_id").first().copied()),
            eos: role("eos_token").or_else(|| generation_eos.first().copied()),
            unk: role("unk_token"),
            pad: role("pad_token").or_else(|| generation_ids("pad_token_id").first().copied()),
            eot: Vec::new(),
        };
        let added = tokenizer.parse_special.get_added_tokens_decoder();
        let known = END_OF_TURN_PIECES.iter().filter_map(|p| {
            let id = tokenizer.token_id(p)?;
            added.contains_key(&id).then_some(id)
        });
        for id in generation_eos.into_iter().chain(known) {
            if Some(id) != specials.eos && !specials.eot.contains(&id) {
                specials.eot.push(id);
            }
        }

        let add_bos = match config.as_ref().and_then(|c| c.get("add_bos_token")) {
            Some(Json::Bool(b)) => *b,
            _ => tokenizer.post_processor_adds(specials.bos)?,
        };
        let chat_template = chat_template(dir, config.as_ref())?;
        Ok(Loaded {
            tokenizer,
            specials,
            add_bos,
            chat_template,
        })
    }

    /// Whether the post-processor of `tokenizer.json` puts `bos` first.
    fn post_processor_adds(&self, bos: Option<TokenId>) -> Result<bool> {
        let Some(bos) = bos else { return Ok(false) };
        let with = self
            .parse_special
            .encode_fast("a", true)
            .map_err(Error::tokenizer)?;
        let without = self
            .parse_special
            .encode_fast("a", false)
            .map_err(Error::tokenizer)?;
        Ok(with.get_ids().first() == Some(&bos) && without.get_ids().first() != Some(&bos))
    }

    /// Ids of `text` without BOS/EOS; special added tokens matched only with `parse_special`.
    pub(super) fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<TokenId>> {
        let tokenizer = if parse_special {
            &self.parse_special
        } else {
            &self.plain
        };
        let encoding = tokenizer
            .encode_fast(text, false)
            .map_err(Error::tokenizer)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Ids of `text` with the byte offset where each token's text ends.
    pub(super) fn encode_with_offsets(&self, text: &str) -> Result<Vec<(TokenId, usize)>> {
        let encoding = self.plain.encode(text, false).map_err(Error::tokenizer)?;
        let ends = encoding.get_offsets().iter().map(|&(_, end)| end);
        Ok(encoding.get_ids().iter().copied().zip(ends).collect())
    }

    /// Text of `ids` through the `tokenizer.json` decoder.
    pub(super) fn decode(&self, ids: &[TokenId], skip_special: bool) -> Result<String> {
        if let Some(&id) = ids.iter().find(|&&id| self.piece(id).is_none()) {
            return Err(Error::tokenizer(format!(
                "token id {id} is outside the vocabulary"
            )));
        }
        self.parse_special
            .decode(ids, skip_special)
            .map_err(Error::tokenizer)
    }

    /// The `tokenizer.json` text of the tokenizer (added special tokens matched).
    pub(super) fn to_json(&self) -> Result<String> {
        self.parse_special
            .to_string(false)
            .map_err(Error::tokenizer)
    }

    /// Number of ids, added tokens included.
    pub(super) fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The piece of `id`.
    pub(super) fn piece(&self, id: TokenId) -> Option<&str> {
        self.pieces.get(id as usize)?.as_deref()
    }

    /// The id of a piece or added token.
    pub(super) fn token_id(&self, piece: &str) -> Option<TokenId> {
        self.parse_special.token_to_id(piece)
    }
}

/// The chat template: `chat_template` of `tokenizer_config.json` (a string, or a list of
/// `{name, template}` where `default` wins), else `chat_template.jinja`, else
/// `chat_template.json`.
fn chat_template(dir: &Path, config: Option<&Json>) -> Result<Option<String>> {
    match config.and_then(|c| c.get("chat_template")) {
        Some(Json::String(t)) => return Ok(Some(t.clone())),
        Some(Json::Array(list)) => {
            let named = |name: &str| {
                list.iter()
                    .find(|e| e.get("name").and_then(Json::as_str) == Some(name))
                    .and_then(|e| e.get("template")?.as_str())
            };
            let first = list.first().and_then(|e| e.get("template")?.as_str());
            if let Some(t) = named("default").or(first) {
                return Ok(Some(t.to_owned()));
            }
        }
        _ => {}
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja)
            .map(Some)
            .map_err(|e| Error::io(&jinja, e));
    }
    let json = read_json(&dir.join("chat_template.json"))?;
    Ok(json.and_then(|j| j.get("chat_template")?.as_str().map(str::to_owned)))
}

/// A JSON file's content, `None` when it does not exist.
fn read_json(path: &Path) -> Result<Option<Json>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// The text of a token entry: `"<s>"` or `{"content": "<s>", ...}`.
fn token_text(v: &Json) -> Option<&str> {
    match v {
        Json::String(s) => Some(s),
        Json::Object(o) => o.get("content")?.as_str(),
        _ => None,
    }
}

fn json_id(v: &Json) -> Option<TokenId> {
    v.as_u64().and_then(|id| TokenId::try_from(id).ok())
}
