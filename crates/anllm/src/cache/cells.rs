//! Cache metadata: one [`Cell`] per cached K/V entry, kept apart from the tensors (like
//! llama.cpp's kv-cells).

use crate::token::{Role, SegmentId};
use crate::{Pos, TokenId};

/// Metadata of one cached K/V entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// The token whose keys/values the entry holds.
    pub token: TokenId,
    /// Absolute position in the stream (order of arrival); causality is decided on it.
    pub pos: Pos,
    /// The position RoPE rotated the entry by: `pos` in [`PositionMode::Absolute`], the cache
    /// length at the time in [`PositionMode::Compressed`].
    ///
    /// [`PositionMode::Absolute`]: crate::session::PositionMode::Absolute
    /// [`PositionMode::Compressed`]: crate::session::PositionMode::Compressed
    pub rope: Pos,
    /// The segment the token belongs to (an anchor belongs to the segment it closes).
    pub segment: SegmentId,
    /// Token, anchor or pad.
    pub role: Role,
    /// Pinned entries are never evicted and are visible to every later query (spec §3.6).
    pub pinned: bool,
}

impl Cell {
    /// An ordinary token at `pos` in segment 0, rotated by `pos`: what plain causal decoding uses.
    pub fn token(token: TokenId, pos: Pos) -> Self {
        Self {
            token,
            pos,
            rope: pos,
            segment: SegmentId(0),
            role: Role::Token,
            pinned: false,
        }
    }

    /// Whether the entry is an anchor.
    pub fn is_anchor(&self) -> bool {
        self.role == Role::Anchor
    }
}

/// The cells of one cache in slot order, plus the stream counters that survive eviction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cells {
    cells: Vec<Cell>,
    next_pos: Pos,
    open_segment: SegmentId,
}

impl Cells {
    /// Cells rebuilt from their parts (a restored session); the caller checks the invariants.
    pub(crate) fn from_parts(cells: Vec<Cell>, next_pos: Pos, open_segment: SegmentId) -> Self {
        Self {
            cells,
            next_pos,
            open_segment,
        }
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether there is no cell.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The cells in slot order.
    pub fn as_slice(&self) -> &[Cell] {
        &self.cells
    }

    /// `(slot, cell)` pairs in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Cell)> {
        self.cells.iter().enumerate()
    }

    /// Position of the next token of the stream: tokens seen so far, evicted ones included.
    pub fn next_pos(&self) -> Pos {
        self.next_pos
    }

    /// The segment the next token joins: anchors seen so far.
    pub fn open_segment(&self) -> SegmentId {
        self.open_segment
    }

    /// Appends cells of new tokens, in stream order, and advances the counters.
    pub fn extend(&mut self, new: &[Cell]) {
        for cell in new {
            self.next_pos = self.next_pos.max(Pos(cell.pos.0 + 1));
            let after = cell.segment.0 + u32::from(cell.is_anchor());
            self.open_segment = self.open_segment.max(SegmentId(after));
        }
        self.cells.extend_from_slice(new);
    }

    /// Drops the cells at `slots` (sorted, unique). Only the cache calls it, together with
    /// the same eviction of every layer's K/V.
    pub(crate) fn remove(&mut self, slots: &[usize]) {
        let mut drop = slots.iter().peekable();
        let mut slot = 0;
        self.cells.retain(|_| {
            let evict = drop.next_if_eq(&&slot).is_some();
            slot += 1;
            !evict
        });
    }

    /// The state to come back to if the next step fails ([`Cells::rollback`]).
    pub(crate) fn mark(&self) -> CellsMark {
        CellsMark {
            len: self.cells.len(),
            next_pos: self.next_pos,
            open_segment: self.open_segment,
        }
    }

    /// Forgets every cell and counter advance since `mark` (nothing may have been evicted since).
    pub(crate) fn rollback(&mut self, mark: CellsMark) {
        self.cells.truncate(mark.len);
        self.next_pos = mark.next_pos;
        self.open_segment = mark.open_segment;
    }

    /// Pins the cells whose stream position lies in `range`.
    pub(crate) fn pin(&mut self, range: std::ops::Range<u32>) {
        for cell in &mut self.cells {
            if range.contains(&cell.pos.0) {
                cell.pinned = true;
            }
        }
    }

    /// Checks the invariants: positions strictly increase with the slot, segments never
    /// decrease, every cell lies before `next_pos` and in a segment no later than the open
    /// one, and only the last cell of a segment can be its anchor.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        for (slot, pair) in self.cells.windows(2).enumerate() {
            let (a, b) = (&pair[0], &pair[1]);
            if b.pos <= a.pos {
                return Err(format!(
                    "slot {}: position {:?} after {:?}",
                    slot + 1,
                    b.pos,
                    a.pos
                ));
            }
            if b.segment < a.segment || (a.is_anchor() && b.segment == a.segment) {
                return Err(format!("slot {}: segment order broken", slot + 1));
            }
        }
        if let Some(c) = self.cells.iter().find(|c| c.pos >= self.next_pos) {
            return Err(format!("cell at {:?} is not before next_pos", c.pos));
        }
        if let Some(c) = self.cells.iter().find(|c| c.segment > self.open_segment) {
            return Err(format!("cell at {:?} is past the open segment", c.pos));
        }
        Ok(())
    }
}

/// The length and counters of [`Cells`] before a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CellsMark {
    len: usize,
    next_pos: Pos,
    open_segment: SegmentId,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(pos: u32, segment: u32, role: Role) -> Cell {
        Cell {
            segment: SegmentId(segment),
            role,
            ..Cell::token(7, Pos(pos))
        }
    }

    #[test]
    fn extend_counts_anchors_into_the_open_segment() {
        let mut cells = Cells::default();
        cells.extend(&[cell(0, 0, Role::Token), cell(1, 0, Role::Anchor)]);
        assert_eq!(cells.open_segment(), SegmentId(1));
        assert_eq!(cells.next_pos(), Pos(2));
        assert!(cells.check_invariants().is_ok());
    }

    #[test]
    fn remove_keeps_counters_and_order() {
        let mut cells = Cells::default();
        cells.extend(&[
            cell(0, 0, Role::Token),
            cell(1, 0, Role::Anchor),
            cell(2, 1, Role::Token),
        ]);
        cells.remove(&[0, 2]);
        assert_eq!(cells.as_slice(), &[cell(1, 0, Role::Anchor)]);
        assert_eq!(cells.next_pos(), Pos(3));
        assert_eq!(cells.open_segment(), SegmentId(1));
    }

    #[test]
    fn invariants_reject_a_token_after_its_segment_anchor() {
        let mut cells = Cells::default();
        cells.extend(&[cell(0, 0, Role::Anchor), cell(1, 0, Role::Token)]);
        assert!(cells.check_invariants().is_err());
    }
}
