//! KV policies: after every forward step a policy *plans* which entries to drop; only the
//! cache *applies* the plan ([`KvCache::apply`](crate::cache::KvCache::apply)), as in
//! llama.cpp's memory interface. (kvpress calls the same idea a "press".)

use crate::cache::Cells;
use crate::token::Role;

/// The slots to drop after a step: sorted and unique by construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eviction {
    slots: Vec<usize>,
}

impl Eviction {
    /// An eviction of `slots` (any order, duplicates allowed).
    pub fn from_slots(slots: impl IntoIterator<Item = usize>) -> Self {
        let mut slots: Vec<usize> = slots.into_iter().collect();
        slots.sort_unstable();
        slots.dedup();
        Self { slots }
    }

    /// The slots, ascending.
    pub fn slots(&self) -> &[usize] {
        &self.slots
    }

    /// Whether nothing is dropped.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Decides what the cache keeps.
pub trait KvPolicy: Send + std::fmt::Debug {
    /// Stable short name used by the CLI and reports (`"full"`, `"anchor"`).
    fn name(&self) -> &'static str;
    /// Called after every forward step; must not mutate anything, returns what to drop.
    fn plan(&self, cells: &Cells) -> Eviction;
}

/// Never drops anything: the dense baseline.
#[derive(Debug, Clone, Copy, Default)]
pub struct Full;

impl KvPolicy for Full {
    fn name(&self) -> &'static str {
        "full"
    }

    fn plan(&self, _cells: &Cells) -> Eviction {
        Eviction::default()
    }
}

/// The AnLLM reduction (spec §3.2, §3.5): every non-anchor, non-pinned entry of a closed
/// segment is dropped, and pads (never visible) wherever they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnchorPolicy;

impl KvPolicy for AnchorPolicy {
    fn name(&self) -> &'static str {
        "anchor"
    }

    fn plan(&self, cells: &Cells) -> Eviction {
        let open = cells.open_segment();
        let doomed = |c: &crate::cache::Cell| match c.role {
            Role::Pad => true,
            Role::Token => c.segment < open && !c.pinned,
            Role::Anchor => false,
        };
        Eviction::from_slots(cells.iter().filter(|(_, c)| doomed(c)).map(|(s, _)| s))
    }
}

/// The policies by name, for configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// [`Full`].
    #[default]
    Full,
    /// [`AnchorPolicy`].
    Anchor,
}

impl PolicyKind {
    /// The policy object.
    pub fn build(self) -> Box<dyn KvPolicy> {
        match self {
            Self::Full => Box::new(Full),
            Self::Anchor => Box::new(AnchorPolicy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pos;
    use crate::cache::Cell;
    use crate::token::SegmentId;

    fn cells(spec: &[(u32, Role, bool)]) -> Cells {
        let mut cells = Cells::default();
        let new: Vec<Cell> = spec
            .iter()
            .enumerate()
            .map(|(i, &(segment, role, pinned))| Cell {
                segment: SegmentId(segment),
                role,
                pinned,
                ..Cell::token(1, Pos(i as u32))
            })
            .collect();
        cells.extend(&new);
        cells
    }

    #[test]
    fn anchor_policy_keeps_anchors_pins_and_the_open_segment() {
        let c = cells(&[
            (0, Role::Token, false),
            (0, Role::Token, true),
            (0, Role::Anchor, false),
            (1, Role::Pad, false),
            (1, Role::Token, false),
        ]);
        assert_eq!(AnchorPolicy.plan(&c).slots(), &[0, 3]);
        assert!(Full.plan(&c).is_empty());
    }

    #[test]
    fn eviction_is_sorted_and_unique() {
        assert_eq!(Eviction::from_slots([3, 1, 3]).slots(), &[1, 3]);
    }
}
