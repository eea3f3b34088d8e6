//! SepLLM, training-free (Chen et al. 2024, arXiv 2412.12094): keep the first `sinks` entries,
//! every separator entry, and the `window` most recent ones.
//!
//! Parameters: `sinks` (the paper uses 4 "initial tokens"), `window` (recent entries, at least
//! 1). Separators are the entries whose cell is an anchor (`Role::Anchor`): a session marks as
//! anchors the tokens of its anchor set, so the separator set is the anchor set (e.g.
//! `--anchors ep-sentence`, sentence-final punctuation; the paper's set also has `,` `;` `:`
//! and newlines: pass them with `--anchors ids:…`). Without anchors it degrades to
//! [`StreamingLlm`](super::StreamingLlm).
//!
//! Deviations: the training-free SepLLM attends with a plain causal mask over what is kept.
//! The policy does not choose the mask: for the paper's setting give the session an anchor set
//! with `MaskRule::Causal` (library). A session with anchors on the CLI uses AnSAN, under which
//! a token no longer sees the closed segments' tokens anyway. No bound: separators accumulate
//! (the paper's runtime caps them separately; not done here). Pinned entries are not
//! protected, and pads are dropped like any other entry.

use super::{Eviction, KvPolicy, Observation};
use crate::token::Role;

/// Keeps the first `sinks` entries, every anchor (separator) entry and the last `window`.
#[derive(Debug, Clone, Copy)]
pub struct SepLlm {
    sinks: usize,
    window: usize,
}

impl SepLlm {
    /// A policy keeping `sinks` sink entries, every separator and a recent `window` (callers
    /// validate `window ≥ 1` through [`PolicyConfig::validate`](super::PolicyConfig::validate)).
    pub fn new(sinks: usize, window: usize) -> Self {
        Self { sinks, window }
    }
}

impl KvPolicy for SepLlm {
    fn name(&self) -> &'static str {
        "sepllm"
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let n = obs.cells.len();
        let recent = n.saturating_sub(self.window);
        Eviction::from_slots(
            obs.cells
                .iter()
                .filter(|&(slot, c)| slot >= self.sinks && slot < recent && c.role != Role::Anchor)
                .map(|(slot, _)| slot),
        )
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(*self)
    }

    /// Separators grow slowly: sinks, window and one chunk, plus room for a few hundred.
    fn capacity_hint(&self, expected_tokens: usize, chunk_size: usize) -> usize {
        let base = self
            .sinks
            .saturating_add(self.window)
            .saturating_add(chunk_size);
        expected_tokens.min(base.saturating_add(256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{cells, observe};

    #[test]
    fn sepllm_keeps_sinks_separators_and_the_recent_window() {
        // Slots: 0 t, 1 t, 2 A, 3 t, 4 t, 5 A, 6 t, 7 Pad, 8 t, 9 t.
        let c = cells(&[
            (0, Role::Token, false),
            (0, Role::Token, false),
            (0, Role::Anchor, false),
            (1, Role::Token, false),
            (1, Role::Token, false),
            (1, Role::Anchor, false),
            (2, Role::Token, false),
            (2, Role::Pad, false),
            (2, Role::Token, false),
            (2, Role::Token, false),
        ]);
        // sinks 1, window 2: keep 0, anchors 2 and 5, and 8, 9.
        let plan = SepLlm::new(1, 2).plan(&observe(&c, 1));
        assert_eq!(plan.slots(), &[1, 3, 4, 6, 7]);
        // No sinks, window 1: only the anchors and the newest entry.
        let plan = SepLlm::new(0, 1).plan(&observe(&c, 1));
        assert_eq!(plan.slots(), &[0, 1, 3, 4, 6, 7, 8]);
        // Without anchors it is StreamingLLM.
        let plain = cells(&[(0, Role::Token, false); 10]);
        let plan = SepLlm::new(2, 3).plan(&observe(&plain, 1));
        assert_eq!(plan.slots(), &[2, 3, 4, 5, 6]);
    }
}
