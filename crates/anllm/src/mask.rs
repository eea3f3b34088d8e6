//! The one visibility rule of AnLLM (spec §2.3, §3.5) and the grids built from it.
//!
//! [`visible`] decides whether a query cell may attend to a key cell. The full-sequence mask
//! of training and masked evaluation ([`training_mask`]) and the mask of one cached forward
//! step over several new tokens ([`step_mask`]) are built from it, and from nothing else.
//! Rows are new (query) tokens, columns are cached entries followed by the new tokens.

use candle_core::{Device, Tensor};

use crate::Result;
use crate::cache::Cell;
use crate::token::Role;

/// Additive bias of a blocked (query, key) pair. Finite, as in the authors' code (`finfo.min`),
/// so a fully blocked row (a pad) gives a uniform softmax instead of NaN (spec §9.16).
pub const BLOCKED: f32 = -1.0e30;

/// Which attention pattern the model runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskRule {
    /// Plain causal attention (pads still invisible).
    #[default]
    Causal,
    /// AnSAN (spec §2.3, the authors' `_new` file): a token sees its own segment and every
    /// earlier anchor; an anchor sees only its own segment.
    AnSan,
    /// The authors' older variant (spec §2.4, `llamamodel_forward_noflashattn`): anchors may
    /// also see earlier anchors. For experiments only.
    AnSanLegacy,
    /// AnSAN plus a local window (our extension, not the paper's): a non-anchor token also
    /// sees the tokens less than `W` positions before it (itself included), in closed
    /// segments too, as SepLLM's neighbouring tokens; an anchor still sees only its own
    /// segment. The cache then holds anchors, the open segment and the last `W − 1` tokens.
    AnSanWindow(u32),
    /// The older variant with the local window (our extension): every query, anchor or not,
    /// sees its own segment, every earlier anchor and the tokens less than `W` positions
    /// before it. An anchor then reads the context before its sentence, so the token after
    /// it (a sentence's first word, the end of a turn) is predicted from more than one
    /// sentence. The cache is [`MaskRule::AnSanWindow`]'s: anchors, the open segment and the
    /// last `W − 1` tokens.
    AnSanLegacyWindow(u32),
}

impl MaskRule {
    /// The local window of [`MaskRule::AnSanWindow`], 0 for every other rule.
    pub fn window(self) -> u32 {
        match self {
            Self::AnSanWindow(w) | Self::AnSanLegacyWindow(w) => w,
            _ => 0,
        }
    }

    /// AnSAN with a local window of `window` positions; plain [`MaskRule::AnSan`] for 0.
    pub fn ansan_window(window: u32) -> Self {
        match window {
            0 => Self::AnSan,
            w => Self::AnSanWindow(w),
        }
    }
}

/// Whether `query` may attend to `key` under `rule`: causal order, pads never visible,
/// pinned keys visible to every later query, and the segment rule of `rule` (with its local
/// window, if any).
pub fn visible(rule: MaskRule, query: &Cell, key: &Cell) -> bool {
    if key.pos > query.pos || query.role == Role::Pad || key.role == Role::Pad {
        return false;
    }
    if key.segment == query.segment || key.pinned {
        return true;
    }
    match rule {
        MaskRule::Causal => true,
        MaskRule::AnSan => key.is_anchor() && !query.is_anchor(),
        MaskRule::AnSanLegacy => key.is_anchor(),
        MaskRule::AnSanWindow(w) => {
            !query.is_anchor() && (key.is_anchor() || query.pos.0 - key.pos.0 < w)
        }
        MaskRule::AnSanLegacyWindow(w) => key.is_anchor() || query.pos.0 - key.pos.0 < w,
    }
}

/// The full-sequence mask `[t, t]` of `cells` (training, masked evaluation).
pub fn training_mask(rule: MaskRule, cells: &[Cell]) -> Mask {
    step_mask(rule, &[], cells)
}

/// The mask `[t, t]` of a packed training row: `doc[i]` names the document of cell `i`,
/// documents are contiguous runs, and each sees only itself, through [`training_mask`]
/// (attention never crosses a document boundary).
pub fn packed_training_mask(rule: MaskRule, cells: &[Cell], doc: &[u32]) -> Mask {
    let t = cells.len();
    let mut allowed = vec![false; t * t];
    let mut start = 0;
    while start < t {
        let end = (start..t)
            .find(|&i| doc.get(i) != doc.get(start))
            .unwrap_or(t);
        let block = training_mask(rule, &cells[start..end]);
        for r in 0..end - start {
            for c in 0..end - start {
                allowed[(start + r) * t + start + c] = block.get(r, c);
            }
        }
        start = end;
    }
    Mask {
        rows: t,
        cols: t,
        allowed,
    }
}

/// The mask `[new, cached + new]` of one cached forward step.
pub fn step_mask(rule: MaskRule, cached: &[Cell], new: &[Cell]) -> Mask {
    let cols = cached.len() + new.len();
    let allowed = new
        .iter()
        .flat_map(|q| cached.iter().chain(new).map(move |k| visible(rule, q, k)))
        .collect();
    Mask {
        rows: new.len(),
        cols,
        allowed,
    }
}

/// A `[rows, cols]` grid of "query row may attend to key column".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    rows: usize,
    cols: usize,
    allowed: Vec<bool>,
}

impl Mask {
    /// Plain causal visibility of `new` tokens over `cached` earlier entries plus themselves.
    pub fn causal(cached: usize, new: usize) -> Self {
        let cols = cached + new;
        let allowed = (0..new)
            .flat_map(|r| (0..cols).map(move |c| c <= cached + r))
            .collect();
        Self {
            rows: new,
            cols,
            allowed,
        }
    }

    /// Number of query rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of key columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Whether `row` may attend to `col`.
    pub fn get(&self, row: usize, col: usize) -> bool {
        self.allowed[row * self.cols + col]
    }

    /// Whether the grid is exactly [`Mask::causal`] of its shape.
    pub fn is_causal(&self) -> bool {
        let Some(cached) = self.cols.checked_sub(self.rows) else {
            return false;
        };
        (0..self.rows).all(|r| (0..self.cols).all(|c| self.get(r, c) == (c <= cached + r)))
    }

    /// Additive values, row-major `[rows, cols]`: 0 where visible, [`BLOCKED`] where not.
    pub fn additive(&self) -> Vec<f32> {
        let value = |&a: &bool| if a { 0.0 } else { BLOCKED };
        self.allowed.iter().map(value).collect()
    }

    /// Additive form `[rows, cols]` as a tensor on `device`.
    pub fn to_additive(&self, device: &Device) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.additive(),
            (self.rows, self.cols),
            device,
        )?)
    }

    /// Renders the grid with `.` for visible and `x` for blocked, one line per row.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.rows * (self.cols + 1));
        for r in 0..self.rows {
            for c in 0..self.cols {
                out.push(if self.get(r, c) { '.' } else { 'x' });
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SegmentId;
    use crate::{Pos, TokenId};

    /// Cells of a role string: `t` token, `A` anchor, `P` pad, `*` pinned token.
    fn cells(roles: &str) -> Vec<Cell> {
        let mut segment = 0;
        let mut out = Vec::new();
        for (i, ch) in roles.chars().enumerate() {
            let role = match ch {
                'A' => Role::Anchor,
                'P' => Role::Pad,
                _ => Role::Token,
            };
            out.push(Cell {
                segment: SegmentId(segment),
                role,
                pinned: ch == '*',
                ..Cell::token(i as TokenId, Pos(i as u32))
            });
            segment += u32::from(role == Role::Anchor);
        }
        out
    }

    /// Spec §2.4: tokens t0 t1 t2 A3 t4 t5 t6 A7 t8.
    const SPEC_2_4: &str = "\
.xxxxxxxx
..xxxxxxx
...xxxxxx
....xxxxx
xxx..xxxx
xxx...xxx
xxx....xx
xxxx....x
xxx.xxx..
";

    #[test]
    fn causal_mask_over_cache_renders_as_staircase() {
        assert_eq!(Mask::causal(2, 3).render(), "...xx\n....x\n.....\n");
    }

    #[test]
    fn ansan_mask_renders_the_spec_example() {
        let grid = training_mask(MaskRule::AnSan, &cells("tttAtttAt"));
        assert_eq!(grid.render(), SPEC_2_4);
    }

    #[test]
    fn legacy_mask_differs_only_where_an_anchor_sees_an_earlier_anchor() {
        let c = cells("tttAtttAt");
        let (new, old) = (
            training_mask(MaskRule::AnSan, &c),
            training_mask(MaskRule::AnSanLegacy, &c),
        );
        let diff: Vec<(usize, usize)> = (0..9)
            .flat_map(|r| (0..9).map(move |k| (r, k)))
            .filter(|&(r, k)| new.get(r, k) != old.get(r, k))
            .collect();
        assert_eq!(diff, vec![(7, 3)]);
        assert!(old.get(7, 3));
    }

    #[test]
    fn window_mask_adds_the_last_w_positions_to_token_queries_only() {
        // Hand-derived from the spec example with W = 3: t4 now sees t2 (4 − 2 < 3) and t8
        // sees t6; t5 and t6 already saw everything within 3; anchors A3 and A7 still see only
        // their own segment; nothing else changes.
        let c = cells("tttAtttAt");
        let (plain, windowed) = (
            training_mask(MaskRule::AnSan, &c),
            training_mask(MaskRule::ansan_window(3), &c),
        );
        let diff: Vec<(usize, usize)> = (0..9)
            .flat_map(|r| (0..9).map(move |k| (r, k)))
            .filter(|&(r, k)| plain.get(r, k) != windowed.get(r, k))
            .collect();
        assert_eq!(diff, vec![(4, 2), (8, 6)]);
        assert!(windowed.get(4, 2) && windowed.get(8, 6));
        assert_eq!(MaskRule::ansan_window(0), MaskRule::AnSan);
        assert_eq!(MaskRule::ansan_window(3).window(), 3);
    }

    #[test]
    fn legacy_window_mask_adds_the_window_to_every_query_and_earlier_anchors_to_anchors() {
        // Hand-derived from the spec example with W = 3: the window rule's (4, 2) and (8, 6);
        // the legacy rule's (7, 3), A7 seeing A3; and the anchors' own window, A3 nothing new
        // (t0–t2 are its segment) and A7 seeing t5 and t6 (its segment) plus nothing before
        // t5 but A3. So the only differences from plain AnSAN are those three cells.
        let c = cells("tttAtttAt");
        let (plain, chained) = (
            training_mask(MaskRule::AnSan, &c),
            training_mask(MaskRule::AnSanLegacyWindow(3), &c),
        );
        let diff: Vec<(usize, usize)> = (0..9)
            .flat_map(|r| (0..9).map(move |k| (r, k)))
            .filter(|&(r, k)| plain.get(r, k) != chained.get(r, k))
            .collect();
        assert_eq!(diff, vec![(4, 2), (7, 3), (8, 6)]);
        assert_eq!(MaskRule::AnSanLegacyWindow(3).window(), 3);
        // An anchor sees the window into the segment before: A7 with W = 3 sees A2 (an
        // anchor) but not t1 (7 − 1 ≥ 3); with W = 7 it sees t1 (7 − 1 < 7), not t0.
        let long = training_mask(MaskRule::AnSanLegacyWindow(3), &cells("ttAttttA"));
        assert!(long.get(7, 2) && !long.get(7, 1));
        let long = training_mask(MaskRule::AnSanLegacyWindow(7), &cells("ttAttttA"));
        assert!(long.get(7, 2) && long.get(7, 1) && !long.get(7, 0));
    }

    #[test]
    fn pad_rows_and_columns_are_blocked() {
        for rule in [
            MaskRule::Causal,
            MaskRule::AnSan,
            MaskRule::AnSanLegacy,
            MaskRule::AnSanWindow(4),
            MaskRule::AnSanLegacyWindow(4),
        ] {
            let grid = training_mask(rule, &cells("ttPtAtP"));
            for i in 0..7 {
                for pad in [2, 6] {
                    assert!(!grid.get(pad, i) && !grid.get(i, pad), "{rule:?} {pad} {i}");
                }
            }
        }
    }

    #[test]
    fn pinned_tokens_stay_visible_to_later_queries() {
        // t0 *1 t2 A3 t4 A5 t6 t7: the pinned token of the closed segment 0 stays visible.
        let grid = training_mask(MaskRule::AnSan, &cells("t*tAtAtt"));
        for q in 4..8 {
            assert!(grid.get(q, 1), "query {q} must see the pinned token");
            assert!(
                !grid.get(q, 0) && !grid.get(q, 2),
                "query {q} sees a dropped token"
            );
        }
        assert!(grid.get(5, 1), "an anchor query sees pinned tokens too");
    }

    #[test]
    fn packed_mask_is_block_diagonal_over_documents() {
        // Two documents "tAt" and "tt": each block is its own training mask, nothing across.
        let mut c = cells("tAt");
        c.extend(cells("tt"));
        let grid = packed_training_mask(MaskRule::AnSan, &c, &[0, 0, 0, 1, 1]);
        assert_eq!(grid.render(), ".xxxx\n..xxx\nx..xx\nxxx.x\nxxx..\n");
    }

    #[test]
    fn causal_rule_equals_plain_causal_without_pads() {
        let grid = training_mask(MaskRule::Causal, &cells("tAttAt"));
        assert!(grid.is_causal());
        assert_eq!(grid, Mask::causal(0, 6));
    }

    #[test]
    fn step_mask_is_the_lower_rows_of_the_training_mask() {
        let c = cells("ttAttAtAtt");
        let full = training_mask(MaskRule::AnSan, &c);
        let step = step_mask(MaskRule::AnSan, &c[..6], &c[6..]);
        for r in 0..4 {
            for k in 0..10 {
                assert_eq!(step.get(r, k), full.get(6 + r, k));
            }
        }
    }
}
