//! The AnLLM reduction (Pang et al. 2024, arXiv 2402.07616; spec §3.2, §3.5): once a segment
//! is closed by its anchor, its non-anchor entries are dropped.
//!
//! Parameters: none. Keeps anchors, pinned entries (spec §3.6, "Src Cach") and the open
//! segment; drops pads (never visible) wherever they are. Deviation from the authors' code:
//! segments are tracked per cell, not through a global anchor index (spec §9.3).

use super::{Eviction, KvPolicy, Observation};
use crate::cache::{Cell, Cells};
use crate::token::Role;

/// Drops every non-anchor, non-pinned entry of a closed segment, and every pad.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnchorPolicy;

impl AnchorPolicy {
    /// The slots this policy drops from `cells` (used by the evaluation harness to compute
    /// C⇓ from the rule itself).
    pub fn doomed(cells: &Cells) -> Eviction {
        let open = cells.open_segment();
        let doomed = |c: &Cell| match c.role {
            Role::Pad => true,
            Role::Token => c.segment < open && !c.pinned,
            Role::Anchor => false,
        };
        Eviction::from_slots(cells.iter().filter(|(_, c)| doomed(c)).map(|(s, _)| s))
    }
}

impl KvPolicy for AnchorPolicy {
    fn name(&self) -> &'static str {
        "anchor"
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        Self::doomed(obs.cells)
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(*self)
    }

    /// Anchors grow slowly: one chunk plus room for a few hundred entries, then growth.
    fn capacity_hint(&self, expected_tokens: usize, chunk_size: usize) -> usize {
        expected_tokens.min(chunk_size.saturating_add(256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Full;
    use crate::policy::tests::{cells, observe};

    #[test]
    fn anchor_policy_keeps_anchors_pins_and_the_open_segment() {
        let c = cells(&[
            (0, Role::Token, false),
            (0, Role::Token, true),
            (0, Role::Anchor, false),
            (1, Role::Pad, false),
            (1, Role::Token, false),
        ]);
        assert_eq!(AnchorPolicy.plan(&observe(&c, 1)).slots(), &[0, 3]);
        assert!(Full.plan(&observe(&c, 1)).is_empty());
    }
}
