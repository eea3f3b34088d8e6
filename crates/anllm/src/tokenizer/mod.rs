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
//! The GGUF vocabulary both GGUF engines share is in `vocab.rs`, the ids with a role
//! ([`SpecialTokens`]) in `special.rs`.
//!
//! [`Tokenizer::to_hf_files`] (`export.rs`) writes any of them as HF files that load back with
//! the same ids.
//!
//! Both GGUF engines are checked against llama.cpp's `test-tokenizer-0` reference vectors and the
//! SmolLM2 ids of HF transformers (`tests/tokenizer_vectors.rs`).

mod bpe;
mod export;
mod gguf;
mod hf;
mod offsets;
mod special;
mod spm;
mod vocab;

use std::path::Path;

use candle_core::quantized::gguf_file::Content;

use crate::{Error, Result, TokenId};

use gguf::{meta_bool, meta_str};
pub use special::SpecialTokens;
use special::gguf_specials;
use vocab::Vocab;

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
