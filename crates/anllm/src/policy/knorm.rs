//! KNorm (Devoto et al. 2024, arXiv 2406.11430, "A simple and effective L2 norm-based strategy
//! for KV cache compression"): keys with a small L2 norm draw the most attention, so keep the
//! entries whose keys have the smallest norm.
//!
//! Parameters: `budget` (most entries kept: a number, or a share of the tokens seen). The
//! score of an entry is its key's L2 norm averaged over layers and KV heads (RoPE rotates
//! pairs of channels, so the norm is that of the key before RoPE too); the highest norms are
//! dropped, ties drop the older entry.
//!
//! Granularity: the paper and kvpress's `KnormPress` (score `-‖k‖`) keep one set per layer and
//! KV head. `knorm` keeps one set for the whole model; `knorm_head` ([`Knorm::per_head`]) one
//! per layer and KV head through [`KvPolicy::plan_heads`], scored by that head's own key norms,
//! as kvpress.
//!
//! Deviations: kvpress compresses once after the prompt; this policy plans after every step (a decode step's own entry may be dropped at once). No window and
//! no sinks, as in kvpress. Pinned entries are not protected.

use super::{Budget, Eviction, KvPolicy, Observation, keep_best};

/// Keeps the `budget` entries with the smallest key norms.
#[derive(Debug, Clone, Copy)]
pub struct Knorm {
    budget: Budget,
    per_head: bool,
}

impl Knorm {
    /// A policy keeping at most `budget` entries (callers validate through
    /// [`PolicyConfig::validate`](super::PolicyConfig::validate)).
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            per_head: false,
        }
    }

    /// `knorm_head`: at most `budget` entries in every KV head of every layer, each its own set.
    pub fn per_head(budget: Budget) -> Self {
        Self {
            budget,
            per_head: true,
        }
    }
}

impl KvPolicy for Knorm {
    fn name(&self) -> &'static str {
        match self.per_head {
            true => "knorm_head",
            false => "knorm",
        }
    }

    /// Per layer and KV head: each keeps its own smallest-norm keys (`None` for the shared set,
    /// or without norms).
    fn plan_heads(&mut self, obs: &Observation<'_>) -> Option<Vec<Eviction>> {
        let norms = obs.key_norms.filter(|_| self.per_head)?;
        let budget = self.budget.entries_for(obs.cells);
        let plans = obs.lane_plans(norms.layers(), norms.kv_heads(), |l, h, n| {
            keep_best(n, budget, || norms.lane(l, h).iter().map(|x| -x).collect())
        });
        Some(plans)
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let budget = self.budget.entries_for(obs.cells);
        keep_best(obs.cells.len(), budget, || {
            let norms = obs.key_norms.map(|k| k.per_cell()).unwrap_or_default();
            norms.iter().map(|x| -x).collect()
        })
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(*self)
    }

    fn needs_key_norms(&self) -> bool {
        true
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
    use crate::cache::{KeyNorms, Lanes};
    use crate::policy::tests::cells;
    use crate::token::Role;

    #[test]
    fn knorm_drops_the_largest_key_norms() {
        let c = cells(&[(0, Role::Token, false); 6]);
        let norms = KeyNorms::new(vec![vec![3.0, 1.0, 5.0, 2.0, 5.0, 0.5]], 1, 6, None);
        let obs = Observation {
            cells: &c,
            appended: 5..6,
            attention: None,
            key_norms: Some(&norms),
            lanes: None,
        };
        // Budget 3 keeps the three smallest (slots 1, 3, 5); of the tied 5s the older goes first.
        assert_eq!(
            Knorm::new(Budget::Entries(3)).plan(&obs).slots(),
            &[0, 2, 4]
        );
        assert_eq!(Knorm::new(Budget::Entries(5)).plan(&obs).slots(), &[2]);
        assert!(Knorm::new(Budget::Entries(6)).plan(&obs).is_empty());
        // A share of the 6 tokens seen: ceil(0.5 × 6) = 3.
        let half = Budget::share(0.5).unwrap();
        assert_eq!(Knorm::new(half).plan(&obs).slots(), &[0, 2, 4]);
    }

    #[test]
    fn each_head_keeps_its_own_smallest_key_norms() {
        let c = cells(&[(0, Role::Token, false); 4]);
        // One layer, two KV heads with opposite preferences (hand-derived), budget 2.
        let lanes = vec![vec![1.0, 4.0, 2.0, 3.0], vec![4.0, 1.0, 3.0, 2.0]];
        let norms = KeyNorms::new(lanes, 2, 4, None);
        // Per cell the mean is 2.5 for every cell: the shared set keeps the newest two.
        assert_eq!(norms.per_cell(), &[2.5; 4]);
        let obs = Observation {
            cells: &c,
            appended: 3..4,
            attention: None,
            key_norms: Some(&norms),
            lanes: None,
        };
        let plans = Knorm::per_head(Budget::Entries(2))
            .plan_heads(&obs)
            .unwrap();
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].slots(), &[1, 3]);
        assert_eq!(plans[1].slots(), &[0, 2]);
        // The shared policy plans no per-head sets.
        assert!(Knorm::new(Budget::Entries(2)).plan_heads(&obs).is_none());
        // Lanes that already hold different cells: head 0 holds cells 0, 2, head 1 holds 1, 3;
        // norms are over each lane's own entries.
        let held = Lanes::from_slots(2, vec![vec![0, 2], vec![1, 3]]);
        let norms = KeyNorms::new(vec![vec![5.0, 1.0], vec![1.0, 5.0]], 2, 4, Some(held.all()));
        let obs = Observation {
            key_norms: Some(&norms),
            lanes: Some(&held),
            ..obs
        };
        let plans = Knorm::per_head(Budget::Entries(1))
            .plan_heads(&obs)
            .unwrap();
        assert_eq!(plans[0].slots(), &[0]);
        assert_eq!(plans[1].slots(), &[3]);
    }
}
