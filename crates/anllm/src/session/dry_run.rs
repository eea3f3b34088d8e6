//! The cache bookkeeping of a session without a model: the cells a stream makes and what a
//! policy keeps of them. The evaluation harness computes C⇓ this way, from the same rule
//! and the same policy code as inference, without running the network.

use crate::cache::{Cell, Cells};
use crate::policy::Observation;
use crate::session::{PositionMode, SessionConfig};
use crate::token::{Role, SegmentId};
use crate::{Error, Pos, Result, TokenId};

/// The cells of `tokens` as the next tokens of the stream after `cells`, `prev` being the
/// stream's last token before them (the cache may have evicted it): stream position, RoPE
/// position by [`PositionMode`], segment, role and pinned flag.
pub(crate) fn next_cells(
    cfg: &SessionConfig,
    cells: &Cells,
    prev: Option<TokenId>,
    tokens: &[TokenId],
) -> Vec<Cell> {
    let (first, cached) = (cells.next_pos().0, cells.len() as u32);
    let mut segment = cells.open_segment();
    let mut out = Vec::with_capacity(tokens.len());
    let before = std::iter::once(prev).chain(tokens.iter().copied().map(Some));
    for ((i, &token), prev) in (0u32..).zip(tokens).zip(before) {
        let role = cfg.anchors.classify(prev, token);
        let pos = Pos(first + i);
        let rope = match cfg.positions {
            PositionMode::Absolute => pos,
            PositionMode::Compressed => Pos(cached + i),
        };
        out.push(Cell {
            token,
            pos,
            rope,
            segment,
            role,
            pinned: cfg.is_pinned(pos) || cfg.anchors.pins(prev, token),
        });
        if role == Role::Anchor {
            segment = SegmentId(segment.0 + 1);
        }
    }
    out
}

/// The entries `cfg`'s policy keeps after a fresh stream of `tokens`, run in steps of
/// `cfg.chunk_size` as a session would. Errors for a policy that needs attention statistics
/// (those need the model).
pub fn kept_entries(cfg: &SessionConfig, tokens: &[TokenId]) -> Result<usize> {
    if cfg.chunk_size == 0 {
        return Err(Error::config("chunk_size", "must be at least 1"));
    }
    cfg.policy.validate()?;
    let mut policy = cfg.build_policy();
    if policy.needs_attention() || policy.needs_key_norms() {
        return Err(Error::unsupported(format!(
            "a dry run of the `{}` policy (it needs attention statistics or keys)",
            policy.name()
        )));
    }
    let mut cells = Cells::default();
    let mut prev = None;
    for chunk in tokens.chunks(cfg.chunk_size) {
        let new = next_cells(cfg, &cells, prev, chunk);
        prev = chunk.last().copied();
        cells.extend(&new);
        let n = cells.len();
        let eviction = policy.plan(&Observation {
            cells: &cells,
            appended: n - new.len()..n,
            attention: None,
            key_norms: None,
            lanes: None,
        });
        cells.remove(eviction.slots());
    }
    Ok(cells.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchor::AnchorSet;
    use crate::policy::PolicyConfig;

    #[test]
    fn kept_entries_counts_anchors_plus_the_open_segment() {
        // Hand-derived: t t A t t t A t t → anchors {2, 6} + open segment {7, 8} = 4.
        let cfg = SessionConfig::anchored(AnchorSet::new([9], None), 3);
        assert_eq!(kept_entries(&cfg, &[1, 1, 9, 1, 1, 1, 9, 1, 1]).unwrap(), 4);
        assert_eq!(kept_entries(&cfg, &[1, 1, 1]).unwrap(), 3);
        assert_eq!(kept_entries(&cfg, &[]).unwrap(), 0);
    }

    #[test]
    fn kept_entries_keeps_pinned_tokens_and_drops_pads() {
        let mut cfg = SessionConfig::anchored(AnchorSet::new([9], Some(0)), 1);
        cfg.pins = std::iter::once(0..1).collect();
        // pos 0 pinned (kept), pad at 1 (dropped), anchor at 3, open segment {4}.
        assert_eq!(kept_entries(&cfg, &[1, 0, 1, 9, 1]).unwrap(), 3);
        cfg.policy = PolicyConfig::Full;
        assert_eq!(kept_entries(&cfg, &[1, 0, 1, 9, 1]).unwrap(), 5);
    }

    #[test]
    fn an_anchor_right_after_a_digit_stays_open_across_chunk_boundaries() {
        // 9 = the period, 7 = a digit. Hand-derived for t 7 | 9 t 9 t (chunks of 2):
        // the first 9 follows the digit of the previous chunk, so it is an ordinary token;
        // the second 9 closes the segment {0..4}; kept: that anchor + the open segment {5}.
        let set = AnchorSet::new([9], None).with_not_after([7]);
        let cfg = SessionConfig::anchored(set, 2);
        assert_eq!(kept_entries(&cfg, &[1, 7, 9, 1, 9, 1]).unwrap(), 2);
        let cfg = SessionConfig::anchored(AnchorSet::new([9], None), 2);
        // Without the rule both periods are anchors: {2, 4} + the open segment {5}.
        assert_eq!(kept_entries(&cfg, &[1, 7, 9, 1, 9, 1]).unwrap(), 3);
    }
}
