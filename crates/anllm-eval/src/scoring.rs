//! Scoring the choices of one item: either every request recomputes its whole context
//! ("non-caching", one forward per request) or the choices share the context's work: the
//! common prefix is prefilled once (pruned to anchors + open segment under the anchor policy)
//! and each choice continues from a fork of that cache.

use candle_core::{D, Tensor};

use super::prompt::Request;
use anllm::generate::check_context;
use anllm::model::Llama;
use anllm::score::{ScoreMode, check_token_ids, score, target_logprob};
use anllm::session::{CacheStats, Session, SessionConfig};
use anllm::{Error, Result, TokenId};
use std::sync::Arc;

/// Summed continuation log-likelihoods, one forward over context + continuation per request
/// under `cfg`'s rule, nothing cached or dropped (the paper's scoring).
pub fn score_each(
    model: &Arc<Llama>,
    cfg: &SessionConfig,
    requests: &[Request],
) -> Result<Vec<f64>> {
    requests
        .iter()
        .map(|r| Ok(score(model, &r.context, &r.continuation, cfg, ScoreMode::MaskOnly)?.logprob))
        .collect()
}

/// Summed continuation log-likelihoods with the context work shared through `cfg`'s cache and
/// policy, and the cache statistics after the shared prefix.
pub fn score_shared(
    model: &Arc<Llama>,
    cfg: &SessionConfig,
    requests: &[Request],
) -> Result<(Vec<f64>, CacheStats)> {
    let first = requests
        .first()
        .ok_or_else(|| Error::config("requests", "an item needs at least one choice"))?;
    for r in requests {
        if r.context.is_empty() || r.continuation.is_empty() {
            return Err(Error::config(
                "requests",
                "context and continuation must both have at least one token",
            ));
        }
        // The last continuation token is only a target, never an input: the model does not
        // check it, so every id is checked here before it indexes a row of logits.
        check_token_ids(model, &r.context)?;
        check_token_ids(model, &r.continuation)?;
        check_context(model, 0, r.context.len() + r.continuation.len() - 1)?;
    }
    let lcp = requests.iter().fold(first.context.len(), |n, r| {
        n.min(common_prefix(&first.context[..n], &r.context))
    });
    let longest = requests
        .iter()
        .map(|r| r.context.len() + r.continuation.len())
        .max()
        .unwrap_or(0);
    let mut base = Session::new(Arc::clone(model), cfg.clone(), longest)?;
    if requests.iter().all(|r| r.context.len() == lcp) {
        // One context: its last row predicts every continuation's first token.
        let last = base.prefill(&first.context, lcp - 1)?;
        let stats = base.stats();
        let head = log_probs(&last)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Shape {
                op: "score rows of the shared context".into(),
                expected: "1".into(),
                got: "0".into(),
            })?;
        let scores = fan_out(base, requests, |session, r| {
            let mut total = target_logprob(&head, r.continuation[0])?;
            if r.continuation.len() > 1 {
                let inputs = &r.continuation[..r.continuation.len() - 1];
                total += sum_targets(&session.prefill(inputs, 0)?, &r.continuation[1..])?;
            }
            Ok(total)
        })?;
        return Ok((scores, stats));
    }
    // Contexts that differ (WinoGrande): share the common prefix, each choice runs the rest.
    let shared = lcp.min(requests.iter().map(|r| r.context.len()).min().unwrap_or(1) - 1);
    if shared > 0 {
        base.prefill(&first.context[..shared], shared - 1)?;
    }
    let stats = base.stats();
    let scores = fan_out(base, requests, |session, r| {
        let mut inputs: Vec<TokenId> = r.context[shared..].to_vec();
        inputs.extend_from_slice(&r.continuation[..r.continuation.len() - 1]);
        let rows_from = r.context.len() - 1 - shared;
        sum_targets(&session.prefill(&inputs, rows_from)?, &r.continuation)
    })?;
    Ok((scores, stats))
}

/// Runs `each` on a fork of `base` per request (the last one takes `base` itself).
fn fan_out(
    base: Session,
    requests: &[Request],
    mut each: impl FnMut(&mut Session, &Request) -> Result<f64>,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(requests.len());
    let Some((last, rest)) = requests.split_last() else {
        return Err(Error::config(
            "requests",
            "an item needs at least one choice",
        ));
    };
    for r in rest {
        let mut session = base.fork()?;
        out.push(each(&mut session, r)?);
    }
    let mut base = base;
    out.push(each(&mut base, last)?);
    Ok(out)
}

fn common_prefix(a: &[TokenId], b: &[TokenId]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Rows of log-probabilities of `[n, vocab]` logits.
fn log_probs(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(candle_nn::ops::log_softmax(logits, D::Minus1)?.to_vec2()?)
}

/// Σ log p(targets[i] | row i).
fn sum_targets(logits: &Tensor, targets: &[TokenId]) -> Result<f64> {
    let rows = log_probs(logits)?;
    if rows.len() != targets.len() {
        return Err(Error::Shape {
            op: "score rows".into(),
            expected: targets.len().to_string(),
            got: rows.len().to_string(),
        });
    }
    rows.iter()
        .zip(targets)
        .map(|(row, &t)| target_logprob(row, t))
        .sum()
}
