//! SnapKV (Li et al. 2024, arXiv 2404.14469): score every cached entry by the attention the
//! last `window` queries of the step put on it, smooth the scores with an average pool of
//! width 5, and keep the best-scored entries plus the `window` newest ones.
//!
//! Parameters: `budget` (most entries kept: a number, or a share of the tokens seen) and
//! `window` (the observation window, `window < budget`; clipped to one less than a share
//! budget while that is small). As kvpress's `SnapKVPress` (`window_size` 64, `kernel_size`
//! 5): the window's own entries are always kept, the pool runs over the entries before the
//! window only, zero-padded at both ends and divided by 5 everywhere; ties drop the older entry.
//!
//! Granularity: kvpress scores and keeps per layer and KV head (averaging a query group).
//! `snapkv` keeps one set for the whole model, scored by the mass summed over layers and heads;
//! `snapkv_head` ([`SnapKv::per_head`]) keeps one set per layer and KV head through
//! [`KvPolicy::plan_heads`], each scored by that head's mass (summed over its query group),
//! as kvpress.
//!
//! Deviations: kvpress compresses once, after the whole prompt; this policy plans after every
//! step, so a chunked prefill is
//! compressed chunk by chunk (one prefill step gives kvpress's one-shot protocol), and a
//! decode step (one query) scores with that query alone. Pinned entries are not protected.

use super::{Budget, Eviction, KvPolicy, Observation, keep_best};

/// Width of the average pool over the scores (kvpress's `kernel_size`).
pub const POOL: usize = 5;

/// Keeps the entries the last `window` queries attend to most, pooled, and the window.
#[derive(Debug, Clone, Copy)]
pub struct SnapKv {
    budget: Budget,
    window: usize,
    per_head: bool,
}

impl SnapKv {
    /// A policy keeping at most `budget` entries with an observation window of `window`
    /// (callers validate through [`PolicyConfig::validate`](super::PolicyConfig::validate)).
    pub fn new(budget: Budget, window: usize) -> Self {
        Self {
            budget,
            window,
            per_head: false,
        }
    }

    /// `snapkv_head`: at most `budget` entries in every KV head of every layer, each its own set.
    pub fn per_head(budget: Budget, window: usize) -> Self {
        Self {
            per_head: true,
            ..Self::new(budget, window)
        }
    }

    /// What to drop of `n` entries scored by `mass` (one per entry) to keep `budget`.
    fn drop_of(&self, n: usize, budget: usize, mass: &[f32]) -> Eviction {
        let window = self.window.min(budget.saturating_sub(1)).min(n);
        // The window's own entries are kept: only the entries before it are scored.
        keep_best(n - window, budget - window.min(budget), || {
            let mut mass = mass.to_vec();
            mass.resize(n, 0.0);
            pool(&mass[..n - window])
        })
    }
}

/// Average pool of width [`POOL`], stride 1, zero padding, divided by the width.
fn pool(scores: &[f32]) -> Vec<f32> {
    let half = POOL / 2;
    (0..scores.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(scores.len());
            scores[lo..hi].iter().sum::<f32>() / POOL as f32
        })
        .collect()
}

impl KvPolicy for SnapKv {
    fn name(&self) -> &'static str {
        match self.per_head {
            true => "snapkv_head",
            false => "snapkv",
        }
    }

    /// Per layer and KV head: each keeps what its own group's window attends to most (`None`
    /// for the shared set, or without statistics).
    fn plan_heads(&mut self, obs: &Observation<'_>) -> Option<Vec<Eviction>> {
        let attention = obs.attention.filter(|_| self.per_head)?;
        let budget = self.budget.entries_for(obs.cells);
        let plans = obs.lane_plans(attention.num_layers(), attention.kv_heads(), |l, h, n| {
            self.drop_of(n, budget, attention.head(l, h).unwrap_or_default())
        });
        Some(plans)
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let budget = self.budget.entries_for(obs.cells);
        let mass = obs.attention.map(|a| a.total()).unwrap_or_default();
        self.drop_of(obs.cells.len(), budget, &mass)
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(*self)
    }

    fn needs_attention(&self) -> bool {
        true
    }

    fn attention_rows(&self) -> Option<usize> {
        Some(self.window)
    }

    fn max_entries(&self) -> Option<usize> {
        self.budget.fixed()
    }

    fn max_entries_at(&self, tokens_seen: usize) -> Option<usize> {
        Some(self.budget.entries(tokens_seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttentionStats;
    use crate::policy::tests::cells;
    use crate::token::Role;

    #[test]
    fn pool_is_a_zero_padded_mean_of_five() {
        // Hand-derived: [5, 0, 0, 0, 0, 0, 10] → (5+0+0)/5, (5+0+0+0)/5, (5+0+0+0+0)/5, 0,
        // (0+0+0+10)/5 …
        let p = pool(&[5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0]);
        assert_eq!(p, [1.0, 1.0, 1.0, 0.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn snapkv_keeps_the_window_and_the_pooled_best_before_it() {
        let c = cells(&[(0, Role::Token, false); 10]);
        // Mass 10 at slot 1 and 4 at slot 6; window 2 (slots 8, 9 kept whatever their mass).
        let mut stats = AttentionStats::new(2, 1);
        stats.push_layer(vec![0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0]);
        let obs = Observation {
            cells: &c,
            appended: 8..10,
            attention: Some(&stats),
            key_norms: None,
            lanes: None,
        };
        // Pooled over slots 0..8 (hand-derived, ÷5): 2 2 2 2 0.8 0.8 0.8 0.8. Budget 5 = the
        // window plus 3: drop the four 0.8s (the peak at slot 6 among them) and the oldest 2;
        // slot 3 stays though nothing attended to it: it neighbours the peak at slot 1.
        let plan = SnapKv::new(Budget::Entries(5), 2).plan(&obs);
        assert_eq!(plan.slots(), &[0, 4, 5, 6, 7]);
        let plan = SnapKv::new(Budget::Entries(8), 2).plan(&obs);
        assert_eq!(plan.slots(), &[4, 5]);
        assert!(SnapKv::new(Budget::Entries(10), 2).plan(&obs).is_empty());
        // Budget 2 with window 4: the window shrinks to 1 (slot 9), plus the best pooled of
        // slots 0..9 (ties at 2 keep the newest, slot 3).
        let plan = SnapKv::new(Budget::Entries(2), 4).plan(&obs);
        assert_eq!(plan.slots(), &[0, 1, 2, 4, 5, 6, 7, 8]);
    }
}
