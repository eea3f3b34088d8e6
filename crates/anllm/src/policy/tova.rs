//! TOVA (Oren et al. 2024, arXiv 2401.06104, "Transformers are Multi-State RNNs"): when the
//! cache holds more than `budget` entries, drop those the current step's queries attend to
//! least.
//!
//! Parameters: `budget` (most entries kept: a number, or a share of the tokens seen). Scores
//! are the attention of the step's last query only (no history), as in the paper (and
//! kvpress's `TOVAPress`), summed over layers and heads; ties drop the older entry. An entry
//! appended by this step can be dropped at once, as in the paper.
//!
//! Deviations: the paper averages over the heads of each layer and keeps one set per layer
//! (kvpress: one set for all heads of a layer); this policy keeps one set for the whole model,
//! scored by the mass summed over layers. Pinned entries are not protected (as in
//! [`StreamingLlm`](super::StreamingLlm)).

use super::{Budget, Eviction, KvPolicy, Observation, keep_best};

/// Keeps the `budget` entries the step's queries attend to most.
#[derive(Debug, Clone, Copy)]
pub struct Tova {
    budget: Budget,
}

impl Tova {
    /// A policy keeping at most `budget` entries (callers validate `budget ≥ 1` through
    /// [`PolicyConfig::validate`](super::PolicyConfig::validate)).
    pub fn new(budget: Budget) -> Self {
        Self { budget }
    }
}

impl KvPolicy for Tova {
    fn name(&self) -> &'static str {
        "tova"
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let budget = self.budget.entries_for(obs.cells);
        keep_best(obs.cells.len(), budget, || {
            obs.attention.map(|a| a.total()).unwrap_or_default()
        })
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(*self)
    }

    fn needs_attention(&self) -> bool {
        true
    }

    fn attention_rows(&self) -> Option<usize> {
        Some(1)
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
            key_norms: None,
            layer_slots: None,
        };
        assert_eq!(Tova::new(Budget::Entries(3)).plan(&obs).slots(), &[0, 2, 3]);
        // Within budget: nothing; a budget of 1 keeps the single heaviest entry.
        assert!(Tova::new(Budget::Entries(6)).plan(&obs).is_empty());
        assert_eq!(
            Tova::new(Budget::Entries(1)).plan(&obs).slots(),
            &[0, 2, 3, 4, 5]
        );
        // One layer, totals 3 2 1 0.5 2.5 1, budget 4: drop slot 3 (0.5) and one of the tied
        // slots 2 and 5 (1 each): the older, slot 2.
        let mut tie = AttentionStats::new(1, 1);
        tie.push_layer(vec![3.0, 2.0, 1.0, 0.5, 2.5, 1.0]);
        let obs = Observation {
            attention: Some(&tie),
            ..obs
        };
        assert_eq!(Tova::new(Budget::Entries(4)).plan(&obs).slots(), &[2, 3]);
    }
}
