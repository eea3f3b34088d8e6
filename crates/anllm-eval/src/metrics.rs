//! Accuracy, KV-cache reduction C⇓ and testing acceleration T⇑ (spec §6.2, §6.4).

use serde::Serialize;

use anllm::{PolicyConfig, Result, SessionConfig, TokenId};

/// Index of the largest value; the first one on ties (numpy's `argmax`).
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// `acc_norm`'s prediction: log-likelihood divided by the choice's length in characters (the
/// harness's `len(choice)`, i.e. the continuation without its leading space).
pub fn argmax_norm(loglikelihoods: &[f64], continuations: &[String]) -> usize {
    let normed: Vec<f64> = loglikelihoods
        .iter()
        .zip(continuations)
        .map(|(&ll, c)| {
            let chars = c.strip_prefix(' ').unwrap_or(c).chars().count();
            ll / chars.max(1) as f64
        })
        .collect();
    argmax(&normed)
}

/// Entries the anchor policy keeps after `tokens`, with the anchors, pins and chunking of
/// `cfg`: the policy itself, dry-run over the cells ([`anllm::session::kept_entries`]).
pub fn anchor_kept(cfg: &SessionConfig, tokens: &[TokenId]) -> Result<usize> {
    let anchored = SessionConfig {
        policy: PolicyConfig::Anchor,
        ..cfg.clone()
    };
    anllm::session::kept_entries(&anchored, tokens)
}

/// C⇓ aggregated over a task, both ways the paper leaves open: ratio of sums and mean of
/// per-item ratios.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Reduction {
    /// Entries kept, summed.
    pub kept: usize,
    /// Tokens seen, summed.
    pub seen: usize,
    /// Sum of the per-item reductions.
    ratio_sum: f64,
    /// Items with at least one token.
    pub items: usize,
}

impl Reduction {
    /// Adds one item (ignored when `seen` is 0: a zero-shot item has no demonstrations).
    pub fn add(&mut self, kept: usize, seen: usize) {
        if seen == 0 {
            return;
        }
        self.kept += kept;
        self.seen += seen;
        self.ratio_sum += 1.0 - kept as f64 / seen as f64;
        self.items += 1;
    }

    /// `1 − Σ kept / Σ seen`.
    pub fn ratio_of_sums(&self) -> Option<f64> {
        (self.seen > 0).then(|| 1.0 - self.kept as f64 / self.seen as f64)
    }

    /// Mean over items of `1 − kept / seen`.
    pub fn mean_of_ratios(&self) -> Option<f64> {
        (self.items > 0).then(|| self.ratio_sum / self.items as f64)
    }
}

/// T⇑: wall time without caching over wall time with caching.
pub fn speedup(seconds_without: f64, seconds_with: f64) -> Option<f64> {
    (seconds_with > 0.0 && seconds_without > 0.0).then(|| seconds_without / seconds_with)
}

/// Mean of the values that are present (`None` when none is).
pub fn mean(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anllm::AnchorSet;

    #[test]
    fn kept_is_anchors_plus_open_segment() {
        // t0 t1 A2 t3 t4 t5 A6 t7 t8 → A2, A6, t7, t8 (the config's full policy is overridden).
        const A: TokenId = 9;
        let cfg = SessionConfig {
            anchors: AnchorSet::new([A], None),
            chunk_size: 4,
            ..SessionConfig::default()
        };
        assert_eq!(anchor_kept(&cfg, &[1, 1, A, 1, 1, 1, A, 1, 1]).unwrap(), 4);
        assert_eq!(anchor_kept(&cfg, &[1, 1, 1]).unwrap(), 3);
        assert_eq!(anchor_kept(&cfg, &[1, A]).unwrap(), 1);
        assert_eq!(anchor_kept(&cfg, &[]).unwrap(), 0);
    }

    #[test]
    fn kept_counts_pinned_tokens_of_closed_segments() {
        const A: TokenId = 9;
        let cfg = SessionConfig {
            anchors: AnchorSet::new([A], None),
            pins: std::iter::once(0..2).collect(),
            chunk_size: 1,
            ..SessionConfig::default()
        };
        // Pinned t0 t1 stay after A2 closes their segment: t0 t1 A2 t4.
        assert_eq!(anchor_kept(&cfg, &[1, 1, A, 1, 1, A, 1]).unwrap(), 5);
    }

    #[test]
    fn reduction_ratio_of_sums_and_mean_of_ratios_on_a_toy_run() {
        let mut r = Reduction::default();
        r.add(1, 10); // 0.9
        r.add(5, 10); // 0.5
        r.add(0, 0); // zero-shot: no demonstrations, ignored
        r.add(2, 80); // 0.975
        assert_eq!(r.items, 3);
        assert!((r.ratio_of_sums().unwrap() - (1.0 - 8.0 / 100.0)).abs() < 1e-12);
        let mean = (0.9 + 0.5 + 0.975) / 3.0;
        assert!((r.mean_of_ratios().unwrap() - mean).abs() < 1e-12);
        assert_eq!(Reduction::default().ratio_of_sums(), None);
    }

    #[test]
    fn speedup_and_means() {
        assert_eq!(speedup(3.5, 1.0), Some(3.5));
        assert_eq!(speedup(1.0, 0.0), None);
        assert_eq!(mean([Some(1.0), None, Some(2.0)]), Some(1.5));
        assert_eq!(mean([None]), None);
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_norm_divides_by_characters() {
        assert_eq!(argmax(&[-3.0, -1.0, -1.0]), 1);
        // " ab" (2 chars) at -4 → -2 per char beats " abcdef" (6) at -18 → -3.
        let conts = vec![" ab".to_string(), " abcdef".to_string()];
        assert_eq!(argmax(&[-4.0, -3.0]), 1);
        assert_eq!(argmax_norm(&[-4.0, -18.0], &conts), 0);
        assert_eq!(argmax_norm(&[-4.0, -3.0], &conts), 1);
    }
}
