//! TOVA (Oren et al. 2024, arXiv 2401.06104, "Transformers are Multi-State RNNs"): when the
//! cache holds more than `budget` entries, drop those the current step's queries attend to
//! least.
//!
//! Parameters: `budget` (most entries kept: a number, or a share of the tokens seen). Scores
//! are the attention of the step's last query only (no history), as in the paper (and
//! kvpress's `TOVAPress`), summed over layers and heads; ties drop the older entry. An entry
//! appended by this step can be dropped at once, as in the paper.
//!
//! Granularity: the paper and kvpress's `TOVAPress` keep one set per layer (scored over that
//! layer's heads). `tova` keeps one set for the whole model, scored by the mass summed over
//! layers; `tova_layer` ([`Tova::per_layer`]) keeps one set per layer through
//! [`KvPolicy::plan_layers`]: layers then hold different entries, an entry's K/V is freed in a
//! layer as soon as that layer drops it, and the cell goes when no layer holds it. Pinned
//! entries are not protected (as in [`StreamingLlm`](super::StreamingLlm)).

use super::{Budget, Eviction, KvPolicy, Observation, keep_best};

/// Keeps the `budget` entries the step's queries attend to most (per layer with `per_layer`).
#[derive(Debug, Clone, Copy)]
pub struct Tova {
    budget: Budget,
    per_layer: bool,
}

impl Tova {
    /// A policy keeping at most `budget` entries, one set for the model (callers validate
    /// `budget ≥ 1` through [`PolicyConfig::validate`](super::PolicyConfig::validate)).
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            per_layer: false,
        }
    }

    /// `tova_layer`: at most `budget` entries in every layer, each layer its own set.
    pub fn per_layer(budget: Budget) -> Self {
        Self {
            budget,
            per_layer: true,
        }
    }
}

impl KvPolicy for Tova {
    fn name(&self) -> &'static str {
        match self.per_layer {
            true => "tova_layer",
            false => "tova",
        }
    }

    /// Per layer: each layer keeps what its own last query attends to most (`None` for the
    /// shared set, or without statistics).
    fn plan_layers(&mut self, obs: &Observation<'_>) -> Option<Vec<Eviction>> {
        let attention = obs.attention.filter(|_| self.per_layer)?;
        let budget = self.budget.entries_for(obs.cells);
        // One lane per layer (its heads hold the same cells); the mass is per cell.
        let plans = obs.lane_plans(attention.num_layers(), 1, |l, _, n| {
            let mass = attention.layer(l).unwrap_or_default();
            let cells = obs.lane_cells(l, 0);
            keep_best(n, budget, || {
                cells
                    .iter()
                    .map(|&c| mass.get(c as usize).copied().unwrap_or(0.0))
                    .collect()
            })
        });
        Some(plans)
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
    use crate::cache::Lanes;
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
            lanes: None,
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

    #[test]
    fn each_layer_keeps_what_its_own_query_attends_to_most() {
        let c = cells(&[(0, Role::Token, false); 5]);
        // Layer 0 prefers slots 1 and 3, layer 1 slots 0 and 4 (hand-derived), budget 2.
        let mut stats = AttentionStats::new(1, 1);
        stats.push_layer(vec![0.1, 0.4, 0.0, 0.3, 0.2]);
        stats.push_layer(vec![0.5, 0.0, 0.1, 0.1, 0.3]);
        let obs = Observation {
            cells: &c,
            appended: 4..5,
            attention: Some(&stats),
            key_norms: None,
            lanes: None,
        };
        let plans = Tova::per_layer(Budget::Entries(2))
            .plan_layers(&obs)
            .unwrap();
        assert_eq!(plans[0].slots(), &[0, 2, 4]);
        // Ties (slots 2 and 3, 0.1 each) drop the older.
        assert_eq!(plans[1].slots(), &[1, 2, 3]);
        // Layers that already hold different cells: layer 0 holds cells 1, 3, 4, layer 1
        // holds 0, 2, 4 (one KV head each); the mass is per cell, 0 where a layer holds none.
        let held = Lanes::from_slots(1, vec![vec![1, 3, 4], vec![0, 2, 4]]);
        let mut stats = AttentionStats::new(1, 1);
        stats.push_layer(vec![0.0, 0.2, 0.0, 0.7, 0.1]);
        stats.push_layer(vec![0.6, 0.0, 0.3, 0.0, 0.1]);
        let obs = Observation {
            attention: Some(&stats),
            lanes: Some(&held),
            ..obs
        };
        let plans = Tova::per_layer(Budget::Entries(2))
            .plan_layers(&obs)
            .unwrap();
        assert_eq!(plans[0].slots(), &[4]);
        assert_eq!(plans[1].slots(), &[4]);
    }
}
