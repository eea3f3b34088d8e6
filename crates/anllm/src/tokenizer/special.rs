//! The ids with a role (bos, eos, unk, pad, end of turn) and how a GGUF file names them.

use candle_core::quantized::gguf_file::Content;

use super::gguf::meta_u32;
use super::vocab::{TokenKind, Vocab};
use crate::TokenId;

/// Pieces that end a turn in common chat formats (the end-of-generation list of llama.cpp).
pub(super) const END_OF_TURN_PIECES: &[&str] = &[
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

/// Special ids from GGUF metadata (llama.cpp's SentencePiece defaults when keys are missing).
pub(super) fn gguf_specials(content: &Content, vocab: &Vocab, spm_defaults: bool) -> SpecialTokens {
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
