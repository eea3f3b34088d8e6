//! H2O (Zhang et al. 2023, arXiv 2306.14048): keep the "heavy hitters", the entries that have
//! received the most attention over all steps so far, plus the most recent entries.
//!
//! Parameters: `budget` (most entries kept: a number, or a share of the tokens seen) and
//! `recent` (entries always kept at the end of the cache, `recent < budget`, clipped to one
//! less than a share budget while that is small; the paper splits the budget evenly between
//! heavy hitters and recent tokens). Each entry's score is the attention mass it has received from
//! every query since it was appended (this step's included), summed over heads and layers.
//! When the cache holds more than `budget` entries, the `budget - recent` highest-scoring
//! entries outside the recent window are kept; ties drop the older entry.
//!
//! Deviations: the paper (and kvpress) keeps one set per layer and head; this policy keeps one
//! set for the whole model, scored by the mass summed over layers and heads. The scores of a
//! multi-token step sum over its query rows (the step's queries are causal, so a prompt chunk
//! scores like the same tokens decoded one by one, up to the mask). The paper evicts one entry
//! per decoded token; this policy evicts after every step, prompt chunks included, so the cache
//! holds at most `budget` entries after each step. Pinned entries are not protected (as in
//! [`StreamingLlm`](super::StreamingLlm)).

use super::{Budget, Eviction, KvPolicy, Observation, lowest};
use crate::Pos;

/// Keeps the `budget - recent` entries with the most accumulated attention and the last
/// `recent` entries.
#[derive(Debug, Clone)]
pub struct H2o {
    budget: Budget,
    recent: usize,
    /// Accumulated mass of every entry kept by the last plan, by position, ascending.
    totals: Vec<(Pos, f32)>,
}

impl H2o {
    /// A policy keeping at most `budget` entries, the last `recent` of them always (callers
    /// validate `1 ≤ budget` and `recent < budget` through
    /// [`PolicyConfig::validate`](super::PolicyConfig::validate)).
    pub fn new(budget: Budget, recent: usize) -> Self {
        Self {
            budget,
            recent,
            totals: Vec::new(),
        }
    }

    /// The accumulated mass of the entry at `pos` before this step (0 if unknown).
    fn previous(&self, pos: Pos) -> f32 {
        self.totals
            .binary_search_by_key(&pos, |&(p, _)| p)
            .map_or(0.0, |i| self.totals[i].1)
    }
}

impl KvPolicy for H2o {
    fn name(&self) -> &'static str {
        "h2o"
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let cells = obs.cells.as_slice();
        let n = cells.len();
        let mass = obs.attention.map(|a| a.total()).unwrap_or_default();
        // Entries appended by this step start from zero, even at a position seen before (a
        // step that failed and was rolled back may have left a stale total behind).
        let scores: Vec<f32> = cells
            .iter()
            .enumerate()
            .map(|(slot, c)| {
                let before = match slot < obs.appended.start {
                    true => self.previous(c.pos),
                    false => 0.0,
                };
                before + mass.get(slot).copied().unwrap_or(0.0)
            })
            .collect();
        let budget = self.budget.entries_for(obs.cells);
        let recent = self.recent.min(budget.saturating_sub(1));
        let eviction = match n > budget {
            true => {
                let candidates = n.saturating_sub(recent);
                Eviction::from_slots(lowest(&scores[..candidates], n - budget))
            }
            false => Eviction::default(),
        };
        let mut dropped = eviction.slots().iter().peekable();
        self.totals = cells
            .iter()
            .zip(&scores)
            .enumerate()
            .filter(|(slot, _)| dropped.next_if_eq(&slot).is_none())
            .map(|(_, (c, &s))| (c.pos, s))
            .collect();
        eviction
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(self.clone())
    }

    fn needs_attention(&self) -> bool {
        true
    }

    fn max_entries(&self) -> Option<usize> {
        self.budget.fixed()
    }

    fn max_entries_at(&self, tokens_seen: usize) -> Option<usize> {
        Some(self.budget.entries(tokens_seen))
    }

    fn reset(&mut self) {
        self.totals.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Cell, Cells};
    use crate::model::AttentionStats;
    use crate::policy::tests::cells;
    use crate::token::Role;

    /// Two layers whose sum is `total`.
    fn stats(total: &[f32]) -> AttentionStats {
        let mut stats = AttentionStats::new(1, 1);
        stats.push_layer(total.iter().map(|m| m / 4.0).collect());
        stats.push_layer(total.iter().map(|m| m * 3.0 / 4.0).collect());
        stats
    }

    fn step(policy: &mut H2o, cells: &Cells, appended: usize, mass: &[f32]) -> Vec<usize> {
        let stats = stats(mass);
        let n = cells.len();
        let plan = policy.plan(&Observation {
            cells,
            appended: n - appended..n,
            attention: Some(&stats),
            key_norms: None,
            lanes: None,
        });
        plan.slots().to_vec()
    }

    #[test]
    fn h2o_keeps_heavy_hitters_by_accumulated_mass_and_the_recent_window() {
        let mut h2o = H2o::new(Budget::Entries(4), 1);
        // Step 1: 5 entries (positions 0..5) with mass 1 4 0 2 3: over budget by 1; the
        // recent window is slot 4; among slots 0..4 the lowest is slot 2 (0).
        let mut c = cells(&[(0, Role::Token, false); 5]);
        assert_eq!(step(&mut h2o, &c, 5, &[1.0, 4.0, 0.0, 2.0, 3.0]), [2]);
        c.remove(&[2]);
        // Totals now: pos0 1, pos1 4, pos3 2, pos4 3. Step 2 appends pos 5; slots are
        // [pos0, pos1, pos3, pos4, pos5] with this step's mass 2.5 0 0 0 1: totals
        // 3.5 4 2 3 1. Window: slot 4 (pos5). Lowest of slots 0..4 is slot 2 (pos3, 2): the
        // newest mass on pos0 outweighs pos3 and pos4, though pos0 was lowest before.
        c.extend(&[Cell::token(1, Pos(5))]);
        assert_eq!(step(&mut h2o, &c, 1, &[2.5, 0.0, 0.0, 0.0, 1.0]), [2]);
        c.remove(&[2]);
        // Totals: pos0 3.5, pos1 4, pos4 3, pos5 1. Step 3 appends pos 6 with mass 0 everywhere
        // but itself: totals 3.5 4 3 1 1. Window slot 4 (pos6); lowest of 0..4 is slot 3
        // (pos5, 1): the recent window moved on and pos5 is no heavy hitter.
        c.extend(&[Cell::token(1, Pos(6))]);
        assert_eq!(step(&mut h2o, &c, 1, &[0.0, 0.0, 0.0, 0.0, 1.0]), [3]);
        let kept: Vec<u32> = h2o.totals.iter().map(|(p, _)| p.0).collect();
        assert_eq!(kept, [0, 1, 4, 6]);
    }

    #[test]
    fn h2o_holds_its_budget_when_one_step_appends_more_than_it() {
        let mut h2o = H2o::new(Budget::Entries(3), 1);
        let c = cells(&[(0, Role::Token, false); 6]);
        // Mass 5 0 3 1 2 0: window slot 5; keep the 2 heaviest of slots 0..5 (0 and 2).
        let dropped = step(&mut h2o, &c, 6, &[5.0, 0.0, 3.0, 1.0, 2.0, 0.0]);
        assert_eq!(dropped, [1, 3, 4]);
        // Ties drop the older entry; without attention all scores are 0.
        let plan = H2o::new(Budget::Entries(2), 0).plan(&crate::policy::tests::observe(&c, 6));
        assert_eq!(plan.slots(), &[0, 1, 2, 3]);
    }
}
