//! Generation over a [`Session`], pushing tokens to a [`TokenSink`].
//!
//! [`generate`] continues the session it is given: the prompt holds only the new tokens of this
//! turn, and the cache of earlier turns is reused. The last sampled token (the end-of-turn
//! token of a chat answer, say) joins the stream as a pending token
//! ([`Session::accept`]), run at the start of the next turn.

use std::sync::Arc;
use std::time::Instant;

use crate::model::{Llama, OutputRows};
use crate::sample::{Sampler, Sampling};
use crate::session::{CacheStats, Session};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result, TokenId};

/// What a sink wants after a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep generating.
    Continue,
    /// Stop now.
    Stop,
}

/// Receives generated tokens as they are produced (push model, like ripgrep's `Sink`).
pub trait TokenSink {
    /// Called once per generated token with the text it adds (may be empty while a multi-byte
    /// character is incomplete).
    fn token(&mut self, id: TokenId, text: &str) -> Result<Flow>;
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// An end-of-sequence / end-of-turn token.
    Eos,
    /// `max_tokens` reached.
    Length,
    /// The context window is full.
    Context,
    /// The sink asked to stop.
    Sink,
}

/// Measurements of one generation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerationStats {
    /// Tokens prefilled by this call: the pending tokens of the previous turn plus the prompt.
    pub prompt_tokens: usize,
    /// Tokens of the stream that were already run before this call (not prefilled again).
    pub cached_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Wall time of the prefill, ms.
    pub prefill_ms: f64,
    /// Wall time of the decode steps, ms.
    pub decode_ms: f64,
    /// The cache at the end: entries and bytes now and at peak, reduction C⇓.
    pub cache: CacheStats,
    /// Why generation stopped.
    pub stop_reason: StopReason,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / (self.prefill_ms / 1e3).max(1e-9)
    }

    /// Generated tokens per second, excluding the first (which comes from the prefill).
    pub fn decode_tokens_per_s(&self) -> f64 {
        self.generated_tokens.saturating_sub(1) as f64 / (self.decode_ms / 1e3).max(1e-9)
    }
}

/// A generation request on token ids.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The new tokens of this turn (BOS included if wanted on a fresh session). May be empty
    /// when the session has pending tokens.
    pub prompt: Vec<TokenId>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling knobs.
    pub sampling: Sampling,
}

/// Errors when `needed` tokens would not fit in the model's context window.
pub fn check_context(model: &Llama, used: usize, needed: usize) -> Result<()> {
    let capacity = model.config().max_position_embeddings;
    if used + needed > capacity {
        return Err(Error::ContextFull {
            used,
            requested: needed,
            capacity,
        });
    }
    Ok(())
}

/// Continues `session` with `req.prompt` and generates, streaming text to `sink`.
pub fn generate(
    session: &mut Session,
    tokenizer: &Tokenizer,
    req: &GenerateRequest,
    sink: &mut dyn TokenSink,
) -> Result<GenerationStats> {
    let llama = Arc::clone(session.model());
    let cached = session.cache().next_pos().0 as usize;
    let prompt_tokens = session.pending().len() + req.prompt.len();
    if prompt_tokens == 0 {
        return Err(Error::config("prompt", "is empty and nothing is pending"));
    }
    check_context(&llama, session.context_used(), prompt_tokens)?;
    req.sampling.validate()?;
    let mut sampler = Sampler::new(req.sampling.clone());
    sampler.accept_stream(&[session.history(), session.pending(), &req.prompt]);
    let mut detok = Detokenizer::default();
    let started = Instant::now();
    let mut logits = match req.prompt.is_empty() {
        true => session.forward(&[], OutputRows::Last)?,
        false => session.prefill(&req.prompt, req.prompt.len() - 1)?,
    };
    let prefill_ms = started.elapsed().as_secs_f64() * 1e3;
    let decode_start = Instant::now();
    let capacity = llama.config().max_position_embeddings;
    let mut generated = 0;
    let stop_reason = loop {
        if generated == req.max_tokens {
            break StopReason::Length;
        }
        let row: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
        let next = sampler.sample(&row)?;
        generated += 1;
        session.accept(next);
        if tokenizer.specials().is_end_of_generation(next) {
            break StopReason::Eos;
        }
        let text = detok.push(tokenizer, next)?;
        if sink.token(next, &text)? == Flow::Stop {
            break StopReason::Sink;
        }
        if generated == req.max_tokens {
            break StopReason::Length;
        }
        if session.context_used() >= capacity {
            break StopReason::Context;
        }
        logits = session.forward(&[], OutputRows::Last)?;
    };
    Ok(GenerationStats {
        prompt_tokens,
        cached_tokens: cached,
        generated_tokens: generated,
        prefill_ms,
        decode_ms: decode_start.elapsed().as_secs_f64() * 1e3,
        cache: session.stats(),
        stop_reason,
    })
}

/// Incremental detokenization: emits text only once its bytes form complete characters, and
/// lets pieces that depend on their neighbours (SentencePiece's leading space) come out right.
#[derive(Debug, Default)]
pub struct Detokenizer {
    ids: Vec<TokenId>,
    prefix: usize,
    read: usize,
}

impl Detokenizer {
    /// Adds `id` and returns the new text it completes.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: TokenId) -> Result<String> {
        self.ids.push(id);
        let before = tokenizer.decode(&self.ids[self.prefix..self.read], true)?;
        let after = tokenizer.decode(&self.ids[self.prefix..], true)?;
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') {
            let text = after.get(before.len()..).unwrap_or_default().to_string();
            self.prefix = self.read;
            self.read = self.ids.len();
            return Ok(text);
        }
        Ok(String::new())
    }
}
