//! The AnLLM reduction (Pang et al. 2024, arXiv 2402.07616; spec §3.2, §3.5): once a segment
//! is closed by its anchor, its non-anchor entries are dropped.
//!
//! Parameters: the local window of [`MaskRule::AnSanWindow`](crate::mask::MaskRule) (0 for
//! the paper's rule). Keeps anchors, pinned entries (spec §3.6, "Src Cach"), the open segment
//! and the tokens the window still shows to the next query; drops pads (never visible)
//! wherever they are. Deviation from the authors' code: segments are tracked per cell, not
//! through a global anchor index (spec §9.3).

use super::{Eviction, KvPolicy, Observation};
use crate::cache::{Cell, Cells};
use crate::token::Role;

/// Drops every non-anchor, non-pinned entry of a closed segment once it is outside the local
/// window, and every pad.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnchorPolicy {
    window: u32,
}

impl AnchorPolicy {
    /// The policy of [`MaskRule::AnSanWindow`](crate::mask::MaskRule)`(window)`: a closed
    /// segment's token stays while the next query is less than `window` positions after it.
    pub fn with_window(window: u32) -> Self {
        Self { window }
    }

    /// The slots this policy drops from `cells` (used by the evaluation harness to compute
    /// C⇓ from the rule itself). The next query sits at `cells.next_pos()`, and every later
    /// one after it, so what the window hides from it stays hidden.
    pub fn doomed(&self, cells: &Cells) -> Eviction {
        let open = cells.open_segment();
        let next = u64::from(cells.next_pos().0);
        let in_window = |c: &Cell| u64::from(c.pos.0) + u64::from(self.window) > next;
        let doomed = |c: &Cell| match c.role {
            Role::Pad => true,
            Role::Token => c.segment < open && !c.pinned && !in_window(c),
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
        self.doomed(obs.cells)
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
        assert_eq!(
            AnchorPolicy::default().plan(&observe(&c, 1)).slots(),
            &[0, 3]
        );
        assert!(Full.plan(&observe(&c, 1)).is_empty());
    }

    #[test]
    fn a_window_keeps_closed_tokens_the_next_query_still_sees() {
        // Positions 0..5, next query at 5; window W shows it positions p with 5 − p < W. The
        // pad at 3 goes anyway, the anchor at 2 and the open token at 4 stay regardless; the
        // closed tokens at 0 and 1 stay once W reaches 6 and 5.
        let c = cells(&[
            (0, Role::Token, false),
            (0, Role::Token, false),
            (0, Role::Anchor, false),
            (1, Role::Pad, false),
            (1, Role::Token, false),
        ]);
        let plan = |w| AnchorPolicy::with_window(w).plan(&observe(&c, 1));
        assert_eq!(plan(3).slots(), &[0, 1, 3]);
        assert_eq!(plan(4).slots(), &[0, 1, 3]);
        assert_eq!(plan(5).slots(), &[0, 3]);
        assert_eq!(plan(6).slots(), &[3]);
    }
}
