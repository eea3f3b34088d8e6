//! KNorm (Devoto et al. 2024, arXiv 2406.11430, "A simple and effective L2 norm-based strategy
//! for KV cache compression"): keys with a small L2 norm draw the most attention, so keep the
//! entries whose keys have the smallest norm.
//!
//! Parameters: `budget` (most entries kept: a number, or a share of the tokens seen). The
//! score of an entry is its key's L2 norm averaged over layers and KV heads (RoPE rotates
//! pairs of channels, so the norm is that of the key before RoPE too); the highest norms are
//! dropped, ties drop the older entry.
//!
//! Deviations: the paper and kvpress's `KnormPress` (score `-‖k‖`) keep one set per layer and
//! KV head and compress once after the prompt; this policy keeps one set for the whole model
//! and plans after every step (a decode step's own entry may be dropped at once). No window and
//! no sinks, as in kvpress. Pinned entries are not protected.

use super::{Budget, Eviction, KvPolicy, Observation, keep_best};

/// Keeps the `budget` entries with the smallest key norms.
#[derive(Debug, Clone, Copy)]
pub struct Knorm {
    budget: Budget,
}

impl Knorm {
    /// A policy keeping at most `budget` entries (callers validate through
    /// [`PolicyConfig::validate`](super::PolicyConfig::validate)).
    pub fn new(budget: Budget) -> Self {
        Self { budget }
    }
}

impl KvPolicy for Knorm {
    fn name(&self) -> &'static str {
        "knorm"
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let budget = self.budget.entries_for(obs.cells);
        keep_best(obs.cells.len(), budget, || {
            let norms = obs.key_norms.unwrap_or_default();
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
    use crate::policy::tests::cells;
    use crate::token::Role;

    #[test]
    fn knorm_drops_the_largest_key_norms() {
        let c = cells(&[(0, Role::Token, false); 6]);
        let norms = [3.0, 1.0, 5.0, 2.0, 5.0, 0.5];
        let obs = Observation {
            cells: &c,
            appended: 5..6,
            attention: None,
            key_norms: Some(&norms),
            layer_slots: None,
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
}
