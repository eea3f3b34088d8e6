//! Prefill and generation over a [`KvCache`], pushing tokens to a [`TokenSink`].

use std::time::Instant;

use candle_core::Tensor;

use crate::cache::KvCache;
use crate::loader::LoadedModel;
use crate::model::{ForwardInput, Llama, OutputRows};
use crate::sample::{Sampler, Sampling};
use crate::tokenizer::Tokenizer;
use crate::{Error, Pos, Result, TokenId};

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
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Wall time of the prefill, ms.
    pub prefill_ms: f64,
    /// Wall time of the decode steps, ms.
    pub decode_ms: f64,
    /// Entries in the KV cache at the end.
    pub kv_entries: usize,
    /// Bytes of K/V at the end.
    pub kv_bytes: usize,
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
    /// The prompt, BOS included if wanted.
    pub prompt: Vec<TokenId>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling knobs.
    pub sampling: Sampling,
    /// Prompt tokens per forward step.
    pub chunk_size: usize,
}

/// Runs `tokens` through `model` after what `cache` holds, `chunk_size` at a time, and returns
/// the logits of the rows from stream index `rows_from` (relative to `tokens`) to the end.
pub fn prefill(
    model: &Llama,
    cache: &mut KvCache,
    tokens: &[TokenId],
    chunk_size: usize,
    rows_from: usize,
) -> Result<Tensor> {
    let chunk_size = chunk_size.max(1);
    let mut outputs = Vec::new();
    for (c, chunk) in tokens.chunks(chunk_size).enumerate() {
        let start = c * chunk_size;
        let end = start + chunk.len();
        let first = cache.next_pos().0;
        let positions: Vec<Pos> = (0..chunk.len() as u32).map(|i| Pos(first + i)).collect();
        if end <= rows_from {
            let input = ForwardInput::causal(chunk, &positions, OutputRows::Last);
            model.forward(&input, cache)?;
            continue;
        }
        let rows = OutputRows::From(rows_from.saturating_sub(start));
        outputs.push(model.forward(&ForwardInput::causal(chunk, &positions, rows), cache)?);
    }
    Ok(Tensor::cat(&outputs, 0)?)
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

/// Generates from `req.prompt`, streaming text to `sink`.
pub fn generate(
    model: &LoadedModel,
    req: &GenerateRequest,
    sink: &mut dyn TokenSink,
) -> Result<GenerationStats> {
    let llama = &model.llama;
    check_context(llama, 0, req.prompt.len().max(1))?;
    req.sampling.validate()?;
    let mut sampler = Sampler::new(req.sampling);
    let mut cache = llama.new_cache(req.prompt.len() + req.max_tokens.min(4096))?;
    let mut detok = Detokenizer::default();
    let started = Instant::now();
    let last = req.prompt.len().saturating_sub(1);
    let mut logits = prefill(llama, &mut cache, &req.prompt, req.chunk_size, last)?;
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
        if model.tokenizer.specials().is_end_of_generation(next) {
            break StopReason::Eos;
        }
        let text = detok.push(&model.tokenizer, next)?;
        if sink.token(next, &text)? == Flow::Stop {
            break StopReason::Sink;
        }
        if generated == req.max_tokens {
            break StopReason::Length;
        }
        if cache.len() >= capacity {
            break StopReason::Context;
        }
        let pos = [cache.next_pos()];
        let input = ForwardInput::causal(std::slice::from_ref(&next), &pos, OutputRows::Last);
        logits = llama.forward(&input, &mut cache)?;
    };
    Ok(GenerationStats {
        prompt_tokens: req.prompt.len(),
        generated_tokens: generated,
        prefill_ms,
        decode_ms: decode_start.elapsed().as_secs_f64() * 1e3,
        kv_entries: cache.len(),
        kv_bytes: cache.bytes(),
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
