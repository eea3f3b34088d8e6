//! A request's sampling and stopping fields, checked against OpenAI's ranges and the model.

use anllm::sample::{Penalties, Sampling};
use anllm::{LlamaConfig, TokenId};

use crate::engine::GenParams;
use crate::error::ApiError;
use crate::types::{CommonParams, StopField};

/// The request's sampling and stopping, each field checked.
pub fn params(
    c: &CommonParams,
    logprobs: Option<usize>,
    config: &LlamaConfig,
) -> Result<GenParams, ApiError> {
    let ctx = config.max_position_embeddings;
    if c.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n", "only n = 1 is supported"));
    }
    let (max, field) = match (c.max_completion_tokens, c.max_tokens) {
        (Some(m), _) => (Some(m), "max_completion_tokens"),
        (None, m) => (m, "max_tokens"),
    };
    if let Some(m) = max
        && !(1..=ctx as i64).contains(&m)
    {
        return Err(ApiError::invalid(
            field,
            format!("must be between 1 and the context length {ctx}, got {m}"),
        ));
    }
    let temperature = c.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid("temperature", "must be between 0 and 2"));
    }
    let top_p = c.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid("top_p", "must be in (0, 1]"));
    }
    let top_k = match c.top_k {
        Some(k) if k < 0 => return Err(ApiError::invalid("top_k", "must be at least 0")),
        k => k.unwrap_or(0) as usize,
    };
    let stop = match &c.stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s.clone()],
        Some(StopField::Many(v)) if v.len() <= 16 => v.clone(),
        Some(StopField::Many(_)) => {
            return Err(ApiError::invalid("stop", "at most 16 stop strings"));
        }
    };
    let seed = match c.seed {
        Some(s) => s as u64,
        None => random_seed(),
    };
    Ok(GenParams {
        max_tokens: max.map(|m| m as usize),
        sampling: Sampling {
            temperature: temperature as f32,
            top_k,
            top_p: top_p as f32,
            seed,
            logit_bias: logit_bias(c, config.vocab_size)?,
            penalties: penalties(c)?,
        },
        stop,
        logprobs,
        token_ids: c.return_token_ids,
    })
}

/// The repetition penalties: OpenAI's ranges for frequency and presence, llama-server's
/// window (64 tokens by default, -1 for all).
fn penalties(c: &CommonParams) -> Result<Penalties, ApiError> {
    let openai = |v: Option<f64>, field: &'static str| match v {
        Some(x) if !(-2.0..=2.0).contains(&x) => {
            Err(ApiError::invalid(field, "must be between -2 and 2"))
        }
        x => Ok(x.unwrap_or(0.0) as f32),
    };
    let repeat = c.repeat_penalty.unwrap_or(1.0) as f32;
    if !(repeat > 0.0 && repeat.is_finite()) {
        return Err(ApiError::invalid("repeat_penalty", "must be a number > 0"));
    }
    let last_n = match c.repeat_last_n {
        None => Penalties::default().last_n,
        Some(n) => Penalties::last_n_of(n)
            .ok_or_else(|| ApiError::invalid("repeat_last_n", "must be -1 or more"))?,
    };
    Ok(Penalties {
        repeat,
        frequency: openai(c.frequency_penalty, "frequency_penalty")?,
        presence: openai(c.presence_penalty, "presence_penalty")?,
        last_n,
    })
}

/// OpenAI's `logit_bias`: token ids (as strings) to biases from -100 to 100.
fn logit_bias(c: &CommonParams, vocab: usize) -> Result<Vec<(TokenId, f32)>, ApiError> {
    let Some(map) = &c.logit_bias else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, &bias) in map {
        let id = match key.parse::<usize>() {
            Ok(id) if id < vocab => id as TokenId,
            _ => {
                return Err(ApiError::invalid(
                    "logit_bias",
                    format!("key {key:?} is not a token id of the vocabulary (0..{vocab})"),
                ));
            }
        };
        if !(-100.0..=100.0).contains(&bias) {
            return Err(ApiError::invalid(
                "logit_bias",
                format!("the bias of token {id} must be between -100 and 100, got {bias}"),
            ));
        }
        out.push((id, bias as f32));
    }
    out.sort_by_key(|&(id, _)| id);
    Ok(out)
}

/// A seed for a request without one (OpenAI's default is not reproducible).
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ 0x9e37_79b9_7f4a_7c15
}
