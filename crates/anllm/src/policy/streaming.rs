//! StreamingLLM (Xiao et al. 2023, arXiv 2309.17453): keep the first `sinks` entries of the
//! stream (attention sinks) and the `window` most recent ones.
//!
//! Parameters: `sinks` (the paper uses 4), `window` (recent entries, at least 1). Deviations:
//! RoPE positions stay those of the stream (`PositionMode::Absolute`) unless the session is
//! set to `Compressed`, where they are the cache slot at the time of the step; the paper
//! re-rotates keys to their cache slot. Pads are dropped like any other entry.

use super::{Eviction, KvPolicy, Observation};

/// Keeps the first `sinks` cached entries and the last `window` ones.
#[derive(Debug, Clone, Copy)]
pub struct StreamingLlm {
    sinks: usize,
    window: usize,
}

impl StreamingLlm {
    /// A policy keeping `sinks` sink entries and a recent `window` (callers validate `window`
    /// ≥ 1 through [`PolicyConfig::validate`](super::PolicyConfig::validate)).
    pub fn new(sinks: usize, window: usize) -> Self {
        Self { sinks, window }
    }
}

impl KvPolicy for StreamingLlm {
    fn name(&self) -> &'static str {
        "streaming"
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let n = obs.cells.len();
        let budget = self.sinks + self.window;
        if n <= budget {
            return Eviction::default();
        }
        Eviction::from_slots(self.sinks..n - self.window)
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(*self)
    }

    fn max_entries(&self) -> Option<usize> {
        Some(self.sinks + self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{cells, observe};
    use crate::token::Role;

    #[test]
    fn streaming_keeps_sinks_and_the_recent_window() {
        let c = cells(&[(0, Role::Token, false); 10]);
        let plan = StreamingLlm::new(2, 3).plan(&observe(&c, 1));
        assert_eq!(plan.slots(), &[2, 3, 4, 5, 6]);
        let small = cells(&[(0, Role::Token, false); 5]);
        assert!(StreamingLlm::new(2, 3).plan(&observe(&small, 1)).is_empty());
    }
}
