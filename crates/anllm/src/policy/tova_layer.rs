//! TOVA per layer (`tova_layer`): each layer keeps the `budget` entries that the step's last
//! query of that layer attends to most, summed over the layer's heads, as the paper and
//! kvpress's `TOVAPress` do. Layers then hold different entries; an entry's K/V is freed in a
//! layer as soon as that layer drops it, and the cell goes when no layer holds it.
//!
//! This is [`Tova`](super::Tova) at kvpress's granularity: `tova` keeps one set for the whole
//! model, scored by the mass summed over layers. Causal steps only (the cache's per-layer form
//! has no visibility grid), so it runs without anchors.

use super::{Budget, Eviction, KvPolicy, Observation, keep_best};

/// Keeps, in every layer, the `budget` entries that layer's last query attends to most.
#[derive(Debug, Clone, Copy)]
pub struct TovaLayer {
    budget: Budget,
}

impl TovaLayer {
    /// A policy keeping at most `budget` entries per layer.
    pub fn new(budget: Budget) -> Self {
        Self { budget }
    }
}

impl KvPolicy for TovaLayer {
    fn name(&self) -> &'static str {
        "tova_layer"
    }

    /// The shared-set fallback (what a caller that does not apply per-layer plans gets):
    /// [`Tova`](super::Tova) over the mass summed over layers.
    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        super::Tova::new(self.budget).plan(obs)
    }

    fn plan_layers(&mut self, obs: &Observation<'_>) -> Option<Vec<Eviction>> {
        let attention = obs.attention?;
        let budget = self.budget.entries_for(obs.cells);
        let plans = (0..attention.num_layers())
            .map(|l| {
                let mass = attention.layer(l).unwrap_or_default();
                let cell = |i: usize| obs.layer_slots.map_or(i, |h| h[l][i] as usize);
                let held = obs.layer_slots.map_or(obs.cells.len(), |h| h[l].len());
                let drop = keep_best(held, budget, || mass.to_vec());
                Eviction::from_slots(drop.slots().iter().map(|&i| cell(i)))
            })
            .collect();
        Some(plans)
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
            layer_slots: None,
        };
        let plans = TovaLayer::new(Budget::Entries(2))
            .plan_layers(&obs)
            .unwrap();
        assert_eq!(plans[0].slots(), &[0, 2, 4]);
        // Ties (slots 2 and 3, 0.1 each) drop the older.
        assert_eq!(plans[1].slots(), &[1, 2, 3]);
        // Layers that already hold different cells: layer 0 holds cells 1, 3, 4, layer 1
        // holds 0, 2, 4; the mass is over each layer's own entries.
        let held = vec![vec![1, 3, 4], vec![0, 2, 4]];
        let mut stats = AttentionStats::new(1, 1);
        stats.push_layer(vec![0.2, 0.7, 0.1]);
        stats.push_layer(vec![0.6, 0.3, 0.1]);
        let obs = Observation {
            attention: Some(&stats),
            layer_slots: Some(&held),
            ..obs
        };
        let plans = TovaLayer::new(Budget::Entries(2))
            .plan_layers(&obs)
            .unwrap();
        assert_eq!(plans[0].slots(), &[4]);
        assert_eq!(plans[1].slots(), &[4]);
    }
}
