//! TOVA (Oren et al. 2024, arXiv 2401.06104, "Transformers are Multi-State RNNs"): when the
//! cache holds more than `budget` entries, drop those the current step's queries attend to
//! least.
//!
//! Parameters: `budget` (most entries kept, at least 1). Scores are this step's attention
//! mass only (no history), summed over layers and heads; ties drop the older entry. An entry
//! appended by this step can be dropped at once, as in the paper.
//!
//! Deviations: the paper scores with the last query only, averaged over the heads of each
//! layer, and keeps one set per layer; this policy keeps one set for the whole model, and for a
//! multi-token step (a prompt chunk) its statistics sum over all of the step's query rows, not
//! the last one. With one token per step (decoding) the scores are the paper's, summed over
//! layers. Pinned entries are not protected (as in [`StreamingLlm`](super::StreamingLlm)).

use super::{Eviction, KvPolicy, Observation, lowest};

/// Keeps the `budget` entries the step's queries attend to most.
#[derive(Debug, Clone, Copy)]
pub struct Tova {
    budget: usize,
}

impl Tova {
    /// A policy keeping at most `budget` entries (callers validate `budget ≥ 1` through
    /// [`PolicyConfig::validate`](super::PolicyConfig::validate)).
    pub fn new(budget: usize) -> Self {
        Self { budget }
    }
}

impl KvPolicy for Tova {
    fn name(&self) -> &'static str {
        "tova"
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let n = obs.cells.len();
        if n <= self.budget {
            return Eviction::default();
        }
        let mut scores = obs.attention.map(|a| a.total()).unwrap_or_default();
        scores.resize(n, 0.0);
        Eviction::from_slots(lowest(&scores, n - self.budget))
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(*self)
    }

    fn needs_attention(&self) -> bool {
        true
    }

    fn max_entries(&self) -> Option<usize> {
        Some(self.budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttentionStats;
    use crate::policy::tests::cells;
    use crate::token::Role;

    #[test]
    fn tova_drops_what_this_step_attends_to_least() {
        let c = cells(&[(0, Role::Token, false); 6]);
        // Two layers: totals 0.5 3 1 0 2 1.5 → keep the 3 largest (slots 1, 4, 5).
        let mut stats = AttentionStats::new(1, 2);
        stats.push_layer(vec![0.5, 1.0, 0.0, 0.0, 1.0, 0.5]);
        stats.push_layer(vec![0.0, 2.0, 1.0, 0.0, 1.0, 1.0]);
        let obs = Observation {
            cells: &c,
            appended: 5..6,
            attention: Some(&stats),
        };
        assert_eq!(Tova::new(3).plan(&obs).slots(), &[0, 2, 3]);
        // Within budget: nothing; a budget of 1 keeps the single heaviest entry.
        assert!(Tova::new(6).plan(&obs).is_empty());
        assert_eq!(Tova::new(1).plan(&obs).slots(), &[0, 2, 3, 4, 5]);
        // One layer, totals 3 2 1 0.5 2.5 1, budget 4: drop slot 3 (0.5) and one of the tied
        // slots 2 and 5 (1 each): the older, slot 2.
        let mut tie = AttentionStats::new(1, 1);
        tie.push_layer(vec![3.0, 2.0, 1.0, 0.5, 2.5, 1.0]);
        let obs = Observation {
            attention: Some(&tie),
            ..obs
        };
        assert_eq!(Tova::new(4).plan(&obs).slots(), &[2, 3]);
    }
}
