//! Perplexity of a token stream in sliding windows (the Hugging Face recipe): windows of
//! `window` tokens starting every `stride` tokens; each window scores only the tokens no
//! earlier window scored, with the rest of the window as context. Modes as in QA: `full`
//! (causal), `mask` (one AnSAN-masked forward per window, as the authors' `eval_ppl.py`) and
//! `cache` (chunked prefill with anchor pruning; equals `mask`).

use std::time::Instant;

use serde::Serialize;

use super::metrics::{self, Reduction};
use super::qa::EvalMode;
use anllm::model::Llama;
use anllm::policy::PolicyConfig;
use anllm::score::{ScoreMode, score};
use anllm::session::SessionConfig;
use anllm::{Error, MaskRule, Result, TokenId};
use std::sync::Arc;

/// Perplexity settings.
#[derive(Debug, Clone)]
pub struct PplConfig {
    /// Tokens per window.
    pub window: usize,
    /// Tokens between window starts (at most `window`).
    pub stride: usize,
    /// The mode.
    pub mode: EvalMode,
    /// Anchors, rule and chunk size (the rule is replaced by causal in `full` mode).
    pub anchored: SessionConfig,
}

/// The result.
#[derive(Debug, Clone, Serialize)]
pub struct PplResult {
    /// Tokens scored.
    pub tokens: usize,
    /// Windows run.
    pub windows: usize,
    /// Mean negative log-likelihood per scored token (nats).
    pub nll: f64,
    /// `exp(nll)`.
    pub ppl: f64,
    /// Wall seconds.
    pub seconds: f64,
    /// C⇓ of an anchor-pruned cache at the end of each window.
    pub c_window: Reduction,
    /// Largest measured cache (entries) over the windows (`full` and `cache` modes).
    pub peak_entries: Option<usize>,
}

/// Perplexity of `tokens` under `cfg`; `on_window(done, total)` after each window.
pub fn perplexity(
    model: &Arc<Llama>,
    tokens: &[TokenId],
    cfg: &PplConfig,
    on_window: &mut dyn FnMut(usize, usize),
) -> Result<PplResult> {
    if cfg.window < 2 || cfg.stride == 0 || cfg.stride > cfg.window {
        return Err(Error::config(
            "window/stride",
            format!(
                "need window ≥ 2 and 1 ≤ stride ≤ window (got window {}, stride {})",
                cfg.window, cfg.stride
            ),
        ));
    }
    if tokens.len() < 2 {
        return Err(Error::config("text", "needs at least 2 tokens"));
    }
    let (session, mode) = match cfg.mode {
        EvalMode::Full => (
            SessionConfig {
                rule: MaskRule::Causal,
                policy: PolicyConfig::Full,
                ..cfg.anchored.clone()
            },
            ScoreMode::Cached,
        ),
        EvalMode::Mask => (cfg.anchored.clone(), ScoreMode::MaskOnly),
        EvalMode::Cache => (
            SessionConfig {
                policy: PolicyConfig::Anchor,
                ..cfg.anchored.clone()
            },
            ScoreMode::Cached,
        ),
    };
    let spans = windows(tokens.len(), cfg.window, cfg.stride);
    let started = Instant::now();
    let (mut nll_sum, mut scored, mut peak) = (0.0, 0, 0);
    let mut c_window = Reduction::default();
    for (i, &(begin, target, end)) in spans.iter().enumerate() {
        let r = score(
            model,
            &tokens[begin..target],
            &tokens[target..end],
            &session,
            mode,
        )?;
        nll_sum -= r.logprob;
        scored += r.tokens;
        peak = peak.max(r.cache.peak_entries);
        c_window.add(
            metrics::anchor_kept(&cfg.anchored, &tokens[begin..end])?,
            end - begin,
        );
        on_window(i + 1, spans.len());
    }
    let nll = nll_sum / scored as f64;
    Ok(PplResult {
        tokens: scored,
        windows: spans.len(),
        nll,
        ppl: nll.exp(),
        seconds: started.elapsed().as_secs_f64(),
        c_window,
        peak_entries: (mode == ScoreMode::Cached).then_some(peak),
    })
}

/// `(begin, first scored, end)` of each window over `n` tokens.
pub fn windows(n: usize, window: usize, stride: usize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let (mut begin, mut prev_end) = (0, 0);
    loop {
        let end = (begin + window).min(n);
        let target = prev_end.max(begin + 1);
        if target < end {
            out.push((begin, target, end));
        }
        prev_end = end;
        if end == n {
            return out;
        }
        begin += stride;
    }
}

#[cfg(test)]
mod tests {
    use super::windows;

    #[test]
    fn windows_score_each_token_at_most_once_and_all_when_they_overlap() {
        for (n, w, s) in [(10, 4, 4), (10, 4, 2), (10, 4, 1), (3, 8, 8), (9, 3, 3)] {
            let spans = windows(n, w, s);
            let mut scored = vec![0; n];
            for &(b, t, e) in &spans {
                assert!(b < t && t < e && e - b <= w, "{spans:?}");
                for c in &mut scored[t..e] {
                    *c += 1;
                }
            }
            assert_eq!(scored[0], 0);
            assert!(scored.iter().all(|&c| c <= 1), "{n} {w} {s}: {spans:?}");
            if s < w {
                assert!(
                    scored[1..].iter().all(|&c| c == 1),
                    "{n} {w} {s}: {spans:?}"
                );
            }
        }
        // Disjoint windows: a window's first token has no context inside it (as in HF's recipe).
        assert_eq!(windows(10, 4, 4), vec![(0, 1, 4), (4, 5, 8), (8, 9, 10)]);
        assert_eq!(windows(6, 4, 2), vec![(0, 1, 4), (2, 4, 6)]);
    }
}
