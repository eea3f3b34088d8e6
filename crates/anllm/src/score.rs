//! Log-likelihood of a continuation given a context: the primitive the evaluation harness uses.
//!
//! Tokenized the lm-eval way: context and continuation separately, concatenated as ids.

use std::sync::Arc;

use candle_core::D;

use crate::generate::check_context;
use crate::model::Llama;
use crate::policy::PolicyConfig;
use crate::session::{CacheStats, Session, SessionConfig};
use crate::{Error, Result, TokenId};

/// How the sequence is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreMode {
    /// Chunked prefill through the session's cache and policy (anchor pruning included).
    #[default]
    Cached,
    /// One masked full-sequence forward, nothing dropped: what the paper's accuracy used
    /// (spec §6.1, §9.11).
    MaskOnly,
}

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
    /// The cache after the last token.
    pub cache: CacheStats,
}

/// Scores `continuation` after `context` (which must not be empty; prepend a BOS or EOS id for
/// an empty context, as lm-eval does) with the anchors, rule and policy of `cfg`.
pub fn score(
    model: &Arc<Llama>,
    context: &[TokenId],
    continuation: &[TokenId],
    cfg: &SessionConfig,
    mode: ScoreMode,
) -> Result<ScoreResult> {
    if context.is_empty() || continuation.is_empty() {
        return Err(Error::config(
            "score",
            "context and continuation must both have at least one token",
        ));
    }
    let all: Vec<TokenId> = context.iter().chain(continuation).copied().collect();
    // The last token is only a target: the model never sees it, so check it (and all) here.
    check_token_ids(model, &all)?;
    check_context(model, 0, all.len() - 1)?;
    let inputs = &all[..all.len() - 1];
    let cfg = match mode {
        ScoreMode::Cached => cfg.clone(),
        ScoreMode::MaskOnly => SessionConfig {
            policy: PolicyConfig::Full,
            chunk_size: inputs.len(),
            ..cfg.clone()
        },
    };
    let mut session = Session::new(Arc::clone(model), cfg, all.len())?;
    let logits = session.prefill(inputs, context.len() - 1)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let greedy: Vec<u32> = logp.argmax(D::Minus1)?.to_vec1()?;
    let rows: Vec<Vec<f32>> = logp.to_vec2()?;
    let token_logprobs: Vec<f64> = continuation
        .iter()
        .zip(&rows)
        .map(|(&t, row)| target_logprob(row, t))
        .collect::<Result<_>>()?;
    Ok(ScoreResult {
        logprob: token_logprobs.iter().sum(),
        tokens: continuation.len(),
        is_greedy: greedy == continuation,
        token_logprobs,
        cache: session.stats(),
    })
}

/// Errors unless every id of `ids` is a row of the model's vocabulary. Inputs are checked by
/// the forward step; ids that are only targets (the last continuation token) must be checked
/// here before they index a row of logits.
pub fn check_token_ids(model: &Llama, ids: &[TokenId]) -> Result<()> {
    let vocab = model.config().vocab_size;
    match ids.iter().find(|&&id| id as usize >= vocab) {
        Some(&bad) => Err(Error::Shape {
            op: "token id (past the model vocabulary)".into(),
            expected: format!("< {vocab}"),
            got: bad.to_string(),
        }),
        None => Ok(()),
    }
}

/// The log-probability of `target` in one row of log-probabilities.
pub fn target_logprob(row: &[f32], target: TokenId) -> Result<f64> {
    row.get(target as usize)
        .map(|&lp| f64::from(lp))
        .ok_or_else(|| Error::Shape {
            op: "target token id (past the logits row)".into(),
            expected: format!("< {}", row.len()),
            got: target.to_string(),
        })
}
