//! Text ⇄ token ids, exactly as the model was trained to see them.
//!
//! Three engines sit behind one [`Tokenizer`]:
//!
//! * `llama-spm`: a GGUF `tokenizer.ggml.model = "llama"` vocabulary (SentencePiece pieces with
//!   scores), tokenized by our port of llama.cpp's `llm_tokenizer_spm` (bigram merging by score,
//!   `<0xXX>` byte fallback, dummy-prefix space) in `spm.rs`.
//! * `gpt2-bpe`: a GGUF `tokenizer.ggml.model = "gpt2"` vocabulary (byte-level BPE with merges),
//!   pre-tokenized by the regexes llama.cpp uses for `tokenizer.ggml.pre`, in `bpe.rs`.
//! * `hf-json`: a Hugging Face directory (`tokenizer.json` and friends) through the `tokenizers`
//!   crate, in `hf.rs`.
//!
//! [`Tokenizer::to_hf_files`] (`export.rs`) writes any of them as HF files that load back with
//! the same ids.
//!
//! Both GGUF engines are checked against llama.cpp's `test-tokenizer-0` reference vectors and the
//! SmolLM2 ids of HF transformers (`tests/tokenizer_vectors.rs`).

mod bpe;
mod export;
mod hf;
mod offsets;
mod spm;

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};

use crate::{Error, Result, TokenId};

/// Pieces that end a turn in common chat formats (the end-of-generation list of llama.cpp).
const END_OF_TURN_PIECES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "<|end_of_text|>",
    "<｜end▁of▁sentence｜>",
];

/// Ids of the tokens with a role: sequence start and end, unknown, padding, end of turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence (`<s>`, `<|im_start|>` for SmolLM2).
    pub bos: Option<TokenId>,
    /// End of sequence (`</s>`, `<|im_end|>` for SmolLM2).
    pub eos: Option<TokenId>,
    /// Unknown-piece token (`<unk>`).
    pub unk: Option<TokenId>,
    /// Padding token (`[PAD]` for the AnLLM checkpoints).
    pub pad: Option<TokenId>,
    /// Extra end-of-turn ids besides `eos` (e.g. `<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`).
    pub eot: Vec<TokenId>,
}

impl SpecialTokens {
    /// Whether generation should stop at `id`: it is `eos` or one of `eot`.
    pub fn is_end_of_generation(&self, id: TokenId) -> bool {
        self.eos == Some(id) || self.eot.contains(&id)
    }
}

/// A tokenizer loaded from a GGUF file or a Hugging Face model directory.
#[derive(Debug)]
pub struct Tokenizer {
    engine: Engine,
    specials: SpecialTokens,
    add_bos: bool,
    chat_template: Option<String>,
}

#[derive(Debug)]
enum Engine {
    Spm(Vocab, spm::Spm),
    Bpe(Vocab, bpe::Bpe),
    Hf(Box<hf::HfTokenizer>),
}

impl Tokenizer {
    /// From a GGUF file's metadata: `tokenizer.ggml.model = "llama"` (SentencePiece with scores,
    /// token types and byte fallback) or `"gpt2"` (byte-level BPE with merges and
    /// `tokenizer.ggml.pre`). Other models give [`Error::Unsupported`], malformed metadata
    /// [`Error::Tokenizer`].
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let model = meta_str(content, "tokenizer.ggml.model")?
            .ok_or_else(|| Error::tokenizer("GGUF has no `tokenizer.ggml.model`"))?;
        if model != "llama" && model != "gpt2" {
            return Err(Error::unsupported(format!(
                "GGUF tokenizer model `{model}`"
            )));
        }
        let vocab = Vocab::from_gguf(content)?;
        let specials = gguf_specials(content, &vocab, model == "llama");
        let (engine, default_bos) = if model == "llama" {
            let spm = spm::Spm::from_gguf(content, &vocab)?;
            (Engine::Spm(vocab, spm), true)
        } else {
            let bpe = bpe::Bpe::from_gguf(content, &vocab)?;
            let add_bos = bpe.default_add_bos();
            (Engine::Bpe(vocab, bpe), add_bos)
        };
        Ok(Self {
            specials,
            add_bos: meta_bool(content, "tokenizer.ggml.add_bos_token").unwrap_or(default_bos),
            chat_template: meta_str(content, "tokenizer.chat_template")?.map(str::to_owned),
            engine,
        })
    }

    /// From a Hugging Face model directory: `tokenizer.json` via the `tokenizers` crate, plus
    /// `tokenizer_config.json`, `special_tokens_map.json` and `generation_config.json` when
    /// present (bos/eos/pad/unk, `add_bos_token`, `chat_template`). Added tokens such as `[PAD]`
    /// and `<AC>` are found by [`Tokenizer::token_id`].
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let loaded = hf::HfTokenizer::load(dir)?;
        Ok(Self {
            specials: loaded.specials,
            add_bos: loaded.add_bos,
            chat_template: loaded.chat_template,
            engine: Engine::Hf(Box::new(loaded.tokenizer)),
        })
    }

    /// Token ids of `text`, never adding BOS/EOS.
    ///
    /// With `parse_special = false`, control-token strings such as `<|im_start|>` are tokenized
    /// as plain text, as llama.cpp's `test-tokenizer-0` does (user-defined GGUF tokens and
    /// non-special HF added tokens are still matched, as in llama.cpp and `tokenizers`). With
    /// `true`, the text of control and added special tokens is matched first (longest first)
    /// and mapped to their ids.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<TokenId>> {
        match &self.engine {
            Engine::Spm(vocab, spm) => spm.encode(vocab, text, parse_special),
            Engine::Bpe(vocab, bpe) => bpe.encode(vocab, text, parse_special),
            Engine::Hf(hf) => hf.encode(text, parse_special),
        }
    }

    /// Text of `ids`; with `skip_special`, control tokens (bos, eos, `<|im_end|>`…) are left
    /// out. Byte-fallback pieces are joined into UTF-8 (lossy for incomplete sequences). For
    /// SentencePiece vocabularies the dummy-prefix space of the first token is removed, as HF
    /// does.
    pub fn decode(&self, ids: &[TokenId], skip_special: bool) -> Result<String> {
        match &self.engine {
            Engine::Spm(vocab, spm) => {
                vocab.decode(ids, skip_special, spm.add_space_prefix(), |p, out| {
                    spm::unescape_whitespace(p, out)
                })
            }
            Engine::Bpe(vocab, _) => vocab.decode(ids, skip_special, false, bpe::decode_byte_level),
            Engine::Hf(hf) => hf.decode(ids, skip_special),
        }
    }

    /// Number of ids (vocabulary plus added tokens).
    pub fn vocab_size(&self) -> usize {
        match &self.engine {
            Engine::Spm(v, _) | Engine::Bpe(v, _) => v.pieces.len(),
            Engine::Hf(hf) => hf.vocab_size(),
        }
    }

    /// The raw vocabulary piece of `id` (e.g. `"▁Hello"`, `"Ġworld"`, `"<0x0A>"`).
    pub fn piece(&self, id: TokenId) -> Option<&str> {
        match &self.engine {
            Engine::Spm(v, _) | Engine::Bpe(v, _) => v.pieces.get(id as usize).map(String::as_str),
            Engine::Hf(hf) => hf.piece(id),
        }
    }

    /// Id of an exact piece or added token (`"<AC>"`, `"[PAD]"`, `"<|im_start|>"`).
    pub fn token_id(&self, piece: &str) -> Option<TokenId> {
        match &self.engine {
            Engine::Spm(v, _) | Engine::Bpe(v, _) => v.index.get(piece).copied(),
            Engine::Hf(hf) => hf.token_id(piece),
        }
    }

    /// The ids with a role (bos, eos, unk, pad, end of turn).
    pub fn specials(&self) -> &SpecialTokens {
        &self.specials
    }

    /// Whether the model wants BOS prepended (GGUF `tokenizer.ggml.add_bos_token`, HF
    /// `add_bos_token`; by default true for SentencePiece, false for GPT-2 BPE).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Jinja chat template from the metadata (`tokenizer.chat_template`,
    /// `tokenizer_config.json`), if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// `"llama-spm"`, `"gpt2-bpe"` or `"hf-json"`.
    pub fn kind(&self) -> &'static str {
        match &self.engine {
            Engine::Spm(..) => "llama-spm",
            Engine::Bpe(..) => "gpt2-bpe",
            Engine::Hf(_) => "hf-json",
        }
    }
}

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_gguf(v: i64) -> Self {
        match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }
}

/// A GGUF vocabulary: pieces, their kinds and the reverse index.
#[derive(Debug)]
struct Vocab {
    pieces: Vec<String>,
    kinds: Vec<TokenKind>,
    index: HashMap<String, TokenId>,
    /// Control, user-defined and unknown ids, longest text first (llama.cpp's special cache).
    specials_longest_first: Vec<TokenId>,
}

/// A piece of input after matching special tokens.
enum Fragment<'a> {
    Text(&'a str),
    Token(TokenId),
}

impl Vocab {
    fn from_gguf(content: &Content) -> Result<Self> {
        let pieces = meta_array(content, "tokenizer.ggml.tokens")?
            .ok_or_else(|| Error::tokenizer("GGUF has no `tokenizer.ggml.tokens`"))?
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(Error::tokenizer(format!(
                    "`tokenizer.ggml.tokens` holds a non-string {other:?}"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        if u32::try_from(pieces.len()).is_err() {
            return Err(Error::tokenizer("vocabulary larger than u32 ids"));
        }
        let kinds = match meta_array(content, "tokenizer.ggml.token_type")? {
            Some(types) if types.len() == pieces.len() => types
                .iter()
                .map(|v| as_i64(v).map(TokenKind::from_gguf))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::tokenizer("`tokenizer.ggml.token_type` is not numeric"))?,
            Some(types) => {
                return Err(Error::tokenizer(format!(
                    "{} token types for {} tokens",
                    types.len(),
                    pieces.len()
                )));
            }
            None => vec![TokenKind::Normal; pieces.len()],
        };
        let mut index = HashMap::with_capacity(pieces.len());
        for (id, piece) in (0..).zip(&pieces) {
            index.insert(piece.clone(), id); // a later duplicate wins, as in llama.cpp
        }
        let mut specials_longest_first: Vec<TokenId> = (0..)
            .zip(&kinds)
            .filter(|(_, k)| {
                matches!(
                    k,
                    TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
                )
            })
            .map(|(id, _)| id)
            .collect();
        specials_longest_first.sort_by_key(|&id| std::cmp::Reverse(pieces[id as usize].len()));
        Ok(Self {
            pieces,
            kinds,
            index,
            specials_longest_first,
        })
    }

    fn kind(&self, id: TokenId) -> TokenKind {
        self.kinds
            .get(id as usize)
            .copied()
            .unwrap_or(TokenKind::Undefined)
    }

    /// Splits `text` on the special tokens' strings as llama.cpp's `tokenizer_st_partition`:
    /// longest token first, each over the raw fragments left so far. User-defined tokens are
    /// always matched, control and unknown ones only with `parse_special`.
    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments = if text.is_empty() {
            Vec::new()
        } else {
            vec![Fragment::Text(text)]
        };
        for &id in &self.specials_longest_first {
            if !parse_special && self.kind(id) != TokenKind::UserDefined {
                continue;
            }
            let piece = self.pieces[id as usize].as_str();
            let found = fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(piece)));
            if piece.is_empty() || !found {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = rest.find(piece) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Token(id));
                    rest = &rest[at + piece.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// llama.cpp's `token_to_piece` over `ids`, with `normal` writing a normal piece's bytes.
    fn decode(
        &self,
        ids: &[TokenId],
        skip_special: bool,
        strip_first_space: bool,
        normal: impl Fn(&str, &mut Vec<u8>),
    ) -> Result<String> {
        let bytes = self.decode_bytes(ids, skip_special, strip_first_space, normal)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The bytes [`Vocab::decode`] joins into text.
    fn decode_bytes(
        &self,
        ids: &[TokenId],
        skip_special: bool,
        strip_first_space: bool,
        normal: impl Fn(&str, &mut Vec<u8>),
    ) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut strip = strip_first_space;
        for &id in ids {
            let piece = self.pieces.get(id as usize).ok_or_else(|| {
                Error::tokenizer(format!("token id {id} is outside the vocabulary"))
            })?;
            let start = bytes.len();
            match self.kind(id) {
                TokenKind::Normal => normal(piece, &mut bytes),
                TokenKind::Byte => match byte_piece_value(piece) {
                    Some(b) => bytes.push(b),
                    None => normal(piece, &mut bytes),
                },
                TokenKind::UserDefined => bytes.extend_from_slice(piece.as_bytes()),
                TokenKind::Control | TokenKind::Unknown if !skip_special => {
                    bytes.extend_from_slice(piece.as_bytes());
                }
                _ => continue,
            }
            if std::mem::take(&mut strip) && bytes.get(start) == Some(&b' ') {
                bytes.remove(start);
            }
        }
        Ok(bytes)
    }
}

/// The byte of a `<0xXX>` piece.
fn byte_piece_value(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Special ids from GGUF metadata (llama.cpp's SentencePiece defaults when keys are missing).
fn gguf_specials(content: &Content, vocab: &Vocab, spm_defaults: bool) -> SpecialTokens {
    let n = vocab.pieces.len();
    let id = |key: &str, default: Option<TokenId>| {
        meta_u32(content, key)
            .or(default)
            .filter(|&id| (id as usize) < n)
    };
    let (bos, eos, unk) = if spm_defaults {
        (Some(1), Some(2), Some(0))
    } else {
        (None, None, None)
    };
    let mut specials = SpecialTokens {
        bos: id("tokenizer.ggml.bos_token_id", bos),
        eos: id("tokenizer.ggml.eos_token_id", eos),
        unk: id("tokenizer.ggml.unknown_token_id", unk),
        pad: id("tokenizer.ggml.padding_token_id", None),
        eot: Vec::new(),
    };
    let listed = ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
        .into_iter()
        .filter_map(|key| id(key, None));
    let known = END_OF_TURN_PIECES.iter().filter_map(|p| {
        let id = *vocab.index.get(*p)?;
        matches!(vocab.kind(id), TokenKind::Control | TokenKind::UserDefined).then_some(id)
    });
    for candidate in listed.chain(known) {
        if Some(candidate) != specials.eos && !specials.eot.contains(&candidate) {
            specials.eot.push(candidate);
        }
    }
    specials
}

fn meta_str<'a>(content: &'a Content, key: &str) -> Result<Option<&'a str>> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Error::tokenizer(format!(
            "`{key}` is not a string: {other:?}"
        ))),
    }
}

fn meta_array<'a>(content: &'a Content, key: &str) -> Result<Option<&'a [Value]>> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(Error::tokenizer(format!("`{key}` is not an array"))),
    }
}

fn meta_u32(content: &Content, key: &str) -> Option<TokenId> {
    content
        .metadata
        .get(key)
        .and_then(as_i64)
        .and_then(|v| u32::try_from(v).ok())
}

fn meta_bool(content: &Content, key: &str) -> Option<bool> {
    match content.metadata.get(key)? {
        Value::Bool(b) => Some(*b),
        other => as_i64(other).map(|v| v != 0),
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}
