//! Log-likelihood of a continuation given a context: the primitive the evaluation harness uses.
//!
//! Tokenized the lm-eval way: context and continuation separately, concatenated as ids.

use candle_core::D;

use crate::generate::{check_context, prefill};
use crate::model::Llama;
use crate::{Error, Result, TokenId};

/// The log-likelihood of one continuation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScoreResult {
    /// Sum of the continuation tokens' log-probabilities.
    pub logprob: f64,
    /// Number of continuation tokens.
    pub tokens: usize,
    /// Whether greedy decoding would produce exactly this continuation.
    pub is_greedy: bool,
    /// Log-probability of each continuation token.
    pub token_logprobs: Vec<f64>,
}

/// Scores `continuation` after `context` (which must not be empty; prepend a BOS or EOS id for
/// an empty context, as lm-eval does).
pub fn score(
    model: &Llama,
    context: &[TokenId],
    continuation: &[TokenId],
    chunk_size: usize,
) -> Result<ScoreResult> {
    if context.is_empty() || continuation.is_empty() {
        return Err(Error::config(
            "score",
            "context and continuation must both have at least one token",
        ));
    }
    let all: Vec<TokenId> = context.iter().chain(continuation).copied().collect();
    check_context(model, 0, all.len())?;
    let mut cache = model.new_cache(all.len())?;
    let inputs = &all[..all.len() - 1];
    let logits = prefill(model, &mut cache, inputs, chunk_size, context.len() - 1)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let greedy: Vec<u32> = logp.argmax(D::Minus1)?.to_vec1()?;
    let rows: Vec<Vec<f32>> = logp.to_vec2()?;
    let token_logprobs: Vec<f64> = continuation
        .iter()
        .zip(&rows)
        .map(|(&t, row)| f64::from(row[t as usize]))
        .collect();
    Ok(ScoreResult {
        logprob: token_logprobs.iter().sum(),
        tokens: continuation.len(),
        is_greedy: greedy == continuation,
        token_logprobs,
    })
}
