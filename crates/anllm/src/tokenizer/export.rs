//! Writing a tokenizer as Hugging Face files (`tokenizer.json`, `tokenizer_config.json`), so a
//! checkpoint directory loads with [`Tokenizer::from_hf_dir`] and gives the same ids.
//!
//! * `hf-json`: the `tokenizers` crate serializes its own JSON.
//! * `gpt2-bpe` (GGUF): a byte-level BPE model with the vocabulary and merges; the pre-tokenizer
//!   is one `Split` (isolated) per llama.cpp regex of the `tokenizer.ggml.pre` type, then
//!   `ByteLevel` without its own regex, so the words are cut exactly as in `bpe.rs`.
//! * `llama-spm` (GGUF): HF's Llama layout: `Prepend("▁")` + `Replace(" ", "▁")` normalizer and a
//!   BPE model with byte fallback whose merges are every split of every piece, ranked by the
//!   merged piece's score (transformers' `SentencePieceExtractor`).
//!
//! GGUF control and unknown tokens become special added tokens, user-defined ones non-special
//! added tokens (matched even when special tokens are read as text, as in llama.cpp).

use serde_json::{Map, Value as Json, json};

use super::special::END_OF_TURN_PIECES;
use super::vocab::{TokenKind, Vocab};
use super::{Engine, Tokenizer, bpe::Bpe, spm::Spm};
use crate::{Error, Result, TokenId};

/// Name of the tokenizer file in a Hugging Face directory.
const TOKENIZER_JSON: &str = "tokenizer.json";
/// Name of the tokenizer configuration file (roles, `add_bos_token`, chat template).
const TOKENIZER_CONFIG_JSON: &str = "tokenizer_config.json";
/// Name of the generation configuration file (only written for extra end-of-turn ids).
const GENERATION_CONFIG_JSON: &str = "generation_config.json";

impl Tokenizer {
    /// The Hugging Face files of this tokenizer as `(file name, bytes)`: `tokenizer.json` and
    /// `tokenizer_config.json` (bos/eos/unk/pad as strings, `add_bos_token`, `chat_template`),
    /// plus `generation_config.json` with `eos_token_id` only when the end-of-turn ids could not
    /// be derived from the added tokens. Loading them with [`Tokenizer::from_hf_dir`] gives the
    /// same ids, [`Tokenizer::specials`] and [`Tokenizer::add_bos`].
    pub fn to_hf_files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let tokenizer_json = match &self.engine {
            Engine::Hf(hf) => serde_json::from_str(&hf.to_json()?).map_err(Error::tokenizer)?,
            Engine::Bpe(vocab, bpe) => self.bpe_json(vocab, bpe),
            Engine::Spm(vocab, spm) => self.spm_json(vocab, spm),
        };
        let added = added_ids(&tokenizer_json);
        let mut files = vec![
            (TOKENIZER_JSON.to_owned(), to_bytes(&tokenizer_json)?),
            (
                TOKENIZER_CONFIG_JSON.to_owned(),
                to_bytes_pretty(&self.config_json())?,
            ),
        ];
        if let Some(generation) = self.generation_json(&added) {
            files.push((
                GENERATION_CONFIG_JSON.to_owned(),
                to_bytes_pretty(&generation)?,
            ));
        }
        Ok(files)
    }

    /// `tokenizer_config.json`: the roles as token strings, `add_bos_token`, the chat template.
    fn config_json(&self) -> Json {
        let mut config = Map::new();
        config.insert("add_bos_token".into(), json!(self.add_bos));
        config.insert("add_eos_token".into(), json!(false));
        let s = &self.specials;
        for (name, id) in [
            ("bos_token", s.bos),
            ("eos_token", s.eos),
            ("unk_token", s.unk),
            ("pad_token", s.pad),
        ] {
            let piece = id.and_then(|id| self.piece(id));
            config.insert(name.into(), piece.map_or(Json::Null, |p| json!(p)));
        }
        if let Some(template) = &self.chat_template {
            config.insert("chat_template".into(), json!(template));
        }
        config.insert("clean_up_tokenization_spaces".into(), json!(false));
        config.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
        Json::Object(config)
    }

    /// `generation_config.json` listing eos and the end-of-turn ids, or `None` when the HF
    /// loader finds the same end-of-turn ids among the added tokens `added` by itself.
    fn generation_json(&self, added: &[TokenId]) -> Option<Json> {
        let s = &self.specials;
        let mut derived: Vec<TokenId> = Vec::new();
        for id in END_OF_TURN_PIECES.iter().filter_map(|p| self.token_id(p)) {
            if added.contains(&id) && Some(id) != s.eos && !derived.contains(&id) {
                derived.push(id);
            }
        }
        if derived == s.eot {
            return None;
        }
        let ids: Vec<TokenId> = s.eos.into_iter().chain(s.eot.iter().copied()).collect();
        Some(json!({ "eos_token_id": ids }))
    }

    /// `tokenizer.json` of a GGUF byte-level BPE vocabulary.
    fn bpe_json(&self, vocab: &Vocab, bpe: &Bpe) -> Json {
        let mut pre: Vec<Json> = bpe
            .patterns()
            .iter()
            .map(|p| {
                json!({"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated",
                       "invert": false})
            })
            .collect();
        pre.push(byte_level());
        let merges = merge_pairs(vocab, bpe.merge_list());
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added_tokens(vocab),
            "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": pre},
            "post_processor": self.bos_template(),
            "decoder": byte_level(),
            "model": bpe_model(vocab, merges, None, false, bpe.ignore_merges()),
        })
    }

    /// `tokenizer.json` of a GGUF SentencePiece vocabulary in HF's Llama layout.
    fn spm_json(&self, vocab: &Vocab, spm: &Spm) -> Json {
        let replace = |from: &str, to: &str| json!({"type": "Replace", "pattern": {"String": from}, "content": to});
        let mut normalizers = Vec::new();
        let mut decoders = vec![
            replace("▁", " "),
            json!({"type": "ByteFallback"}),
            json!({"type": "Fuse"}),
        ];
        if spm.add_space_prefix() {
            normalizers.push(json!({"type": "Prepend", "prepend": "▁"}));
            decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
        }
        normalizers.push(replace(" ", "▁"));
        let unk = self
            .specials
            .unk
            .and_then(|id| vocab.pieces.get(id as usize));
        let merges = merge_pairs(vocab, spm_merges(vocab, spm.scores()));
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added_tokens(vocab),
            "normalizer": {"type": "Sequence", "normalizers": normalizers},
            "pre_tokenizer": null,
            "post_processor": self.bos_template(),
            "decoder": {"type": "Sequence", "decoders": decoders},
            "model": bpe_model(vocab, merges, unk.map(String::as_str), true, false),
        })
    }

    /// A `TemplateProcessing` that puts BOS first when the model wants it, else `null`.
    fn bos_template(&self) -> Json {
        let bos = self.specials.bos.filter(|_| self.add_bos);
        let Some((id, piece)) = bos.and_then(|id| Some((id, self.piece(id)?))) else {
            return Json::Null;
        };
        let token = |type_id: u32| json!({"SpecialToken": {"id": piece, "type_id": type_id}});
        let seq = |name: &str, type_id: u32| json!({"Sequence": {"id": name, "type_id": type_id}});
        json!({
            "type": "TemplateProcessing",
            "single": [token(0), seq("A", 0)],
            "pair": [token(0), seq("A", 0), token(1), seq("B", 1)],
            "special_tokens": {piece: {"id": piece, "ids": [id], "tokens": [piece]}},
        })
    }
}

/// The `ByteLevel` pre-tokenizer / decoder without prefix space, offset trimming or regex.
fn byte_level() -> Json {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
           "use_regex": false})
}

/// A `BPE` model over the GGUF pieces (an earlier duplicate piece is left out, as the later
/// one is the one llama.cpp looks up).
fn bpe_model(
    vocab: &Vocab,
    merges: Vec<Json>,
    unk: Option<&str>,
    byte_fallback: bool,
    ignore_merges: bool,
) -> Json {
    let map: Map<String, Json> = vocab
        .pieces
        .iter()
        .enumerate()
        .map(|(id, piece)| (piece.clone(), json!(id)))
        .collect();
    json!({
        "type": "BPE",
        "dropout": null,
        "unk_token": unk,
        "continuing_subword_prefix": null,
        "end_of_word_suffix": null,
        "fuse_unk": byte_fallback,
        "byte_fallback": byte_fallback,
        "ignore_merges": ignore_merges,
        "vocab": map,
        "merges": merges,
    })
}

/// The `added_tokens` of a GGUF vocabulary: control and unknown tokens special, user-defined
/// ones not; none normalized or stripped.
fn added_tokens(vocab: &Vocab) -> Vec<Json> {
    (0..)
        .zip(&vocab.pieces)
        .filter(|&(id, piece)| vocab.index.get(piece) == Some(&id))
        .filter_map(|(id, piece)| {
            let special = match vocab.kind(id) {
                TokenKind::Control | TokenKind::Unknown => true,
                TokenKind::UserDefined => false,
                _ => return None,
            };
            Some(json!({
                "id": id, "content": piece, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": special,
            }))
        })
        .collect()
}

/// Merges as `[left, right]` piece pairs (the format that allows spaces in pieces).
fn merge_pairs(vocab: &Vocab, merges: Vec<(TokenId, TokenId)>) -> Vec<Json> {
    let piece = |id: TokenId| vocab.pieces[id as usize].as_str();
    merges
        .into_iter()
        .map(|(l, r)| json!([piece(l), piece(r)]))
        .collect()
}

/// Every split `(left, right)` of every piece into two pieces, ordered as transformers'
/// `generate_merges`: score of the merged piece (highest first), then longer left, then
/// longer right; ties kept in id order, splits of one piece in `(left id, right id)` order.
fn spm_merges(vocab: &Vocab, scores: &[f32]) -> Vec<(TokenId, TokenId)> {
    let mut merges: Vec<(f32, usize, usize, TokenId, TokenId)> = Vec::new();
    for (id, piece) in (0..).zip(&vocab.pieces) {
        if vocab.index.get(piece) != Some(&id) {
            continue;
        }
        let mut local: Vec<(TokenId, TokenId, usize, usize)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (left, right) = piece.split_at(at);
                let (&l, &r) = (vocab.index.get(left)?, vocab.index.get(right)?);
                Some((l, r, left.chars().count(), right.chars().count()))
            })
            .collect();
        local.sort_unstable();
        let score = scores.get(id as usize).copied().unwrap_or(0.0);
        merges.extend(
            local
                .into_iter()
                .map(|(l, r, nl, nr)| (score, nl, nr, l, r)),
        );
    }
    merges.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| b.1.cmp(&a.1))
            .then_with(|| b.2.cmp(&a.2))
    });
    merges.into_iter().map(|(.., l, r)| (l, r)).collect()
}

/// Ids of the `added_tokens` of a `tokenizer.json`.
fn added_ids(tokenizer_json: &Json) -> Vec<TokenId> {
    let Some(list) = tokenizer_json.get("added_tokens").and_then(Json::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|t| t.get("id")?.as_u64())
        .filter_map(|id| TokenId::try_from(id).ok())
        .collect()
}

/// Compact JSON bytes.
fn to_bytes(json: &Json) -> Result<Vec<u8>> {
    serde_json::to_vec(json).map_err(Error::tokenizer)
}

/// Indented JSON bytes.
fn to_bytes_pretty(json: &Json) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(json).map_err(Error::tokenizer)
}
