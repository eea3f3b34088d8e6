//! KV policies: after every forward step a policy *plans* which entries to drop; only the
//! cache *applies* the plan ([`KvCache::apply`](crate::cache::KvCache::apply)), as in
//! llama.cpp's memory interface. (kvpress calls the same idea a "press".)
//!
//! A policy sees an [`Observation`] of the step: the cells after the step's append, which
//! slots the step appended, and, when it asks for them ([`KvPolicy::needs_attention`]), the
//! attention mass the step's queries put on every cached key, per layer. Policies are trait
//! objects, so a user can pass their own to [`Session::with_policy`](crate::Session::with_policy);
//! [`PolicyConfig`] names the built-in ones for configuration files, the CLI and the server.
//!
//! Adding a policy: one file here, one [`PolicyConfig`] variant, one entry in
//! [`PolicyConfig::examples`] (which puts it in the session test matrix, `tests/policies.rs`).

mod anchor;
mod budget;
mod full;
mod h2o;
mod knorm;
mod parse;
mod sepllm;
mod snapkv;
mod streaming;
mod tova;

use std::ops::Range;

pub use anchor::AnchorPolicy;
pub use budget::Budget;
pub use full::Full;
pub use h2o::H2o;
pub use knorm::Knorm;
pub use sepllm::SepLlm;
pub use snapkv::SnapKv;
pub use streaming::StreamingLlm;
pub use tova::Tova;

use crate::cache::Cells;
pub use crate::cache::Eviction;
use crate::model::AttentionStats;
use crate::{Error, Result};

/// What a policy sees after a step.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The cached cells, this step's included.
    pub cells: &'a Cells,
    /// The slots of this step's entries (the tail of the cache).
    pub appended: Range<usize>,
    /// Attention mass of the step's queries (its last [`KvPolicy::attention_rows`] rows) over
    /// the cached keys, per layer; `Some` when the policy [needs it](KvPolicy::needs_attention).
    pub attention: Option<&'a AttentionStats>,
    /// Per slot, the L2 norm of the cached key averaged over layers and KV heads; `Some` when
    /// the policy [needs it](KvPolicy::needs_key_norms).
    pub key_norms: Option<&'a [f32]>,
    /// Per layer, the cells it holds, when a per-layer plan made the layers differ
    /// ([`KvCache::layer_slots`](crate::KvCache::layer_slots)); the attention mass of layer
    /// `l` is then over those entries, in that order.
    pub layer_slots: Option<&'a [Vec<u32>]>,
}

/// Decides what the cache keeps.
///
/// Three required methods: a name, the plan, and a fresh copy for
/// [`Session::fork`](crate::Session::fork); the rest have defaults.
pub trait KvPolicy: Send + std::fmt::Debug {
    /// Stable short name used by the CLI, reports and golden files (`"full"`, `"anchor"`, …).
    fn name(&self) -> &'static str;

    /// Called after every forward step, before anything is dropped; returns what to drop.
    /// The cache applies it; a policy never mutates the cache.
    fn plan(&mut self, obs: &Observation<'_>) -> Eviction;

    /// A plan per layer (cells to drop from each layer's store), for policies that keep a
    /// set per layer; `None` (the default): [`plan`](KvPolicy::plan)'s one set for all
    /// layers. A session applies this one when it returns `Some`.
    fn plan_layers(&mut self, obs: &Observation<'_>) -> Option<Vec<Eviction>> {
        let _ = obs;
        None
    }

    /// A copy of this policy in its current state, for a forked session.
    fn fork(&self) -> Box<dyn KvPolicy>;

    /// Whether [`Observation::attention`] must be filled (costs a dense attention pass).
    fn needs_attention(&self) -> bool {
        false
    }

    /// How many of a step's last query rows the attention statistics sum over (`None`: all
    /// of them). TOVA scores with the last query, SnapKV with an observation window.
    fn attention_rows(&self) -> Option<usize> {
        None
    }

    /// Whether [`Observation::key_norms`] must be filled (one pass over the cached keys).
    fn needs_key_norms(&self) -> bool {
        false
    }

    /// Most entries the cache holds after any [`plan`](KvPolicy::plan), if bounded by a fixed
    /// number: the session test matrix asserts it after every step.
    fn max_entries(&self) -> Option<usize> {
        None
    }

    /// Most entries the cache holds after a plan once `tokens_seen` tokens have been run (a
    /// budget that is a share of the stream grows with it); the test matrix asserts it.
    fn max_entries_at(&self, tokens_seen: usize) -> Option<usize> {
        let _ = tokens_seen;
        self.max_entries()
    }

    /// Entries to preallocate for a stream of about `expected_tokens` tokens prefilled in
    /// chunks of `chunk_size` (the cache still grows if needed).
    fn capacity_hint(&self, expected_tokens: usize, chunk_size: usize) -> usize {
        match self.max_entries() {
            Some(max) => expected_tokens.min(max.saturating_add(chunk_size)),
            None => expected_tokens,
        }
    }

    /// Forgets per-stream state when the session is reset.
    fn reset(&mut self) {}
}

/// The built-in policies by name, for configuration (serde: `{"kind": "streaming", "sinks":
/// 4, "window": 256}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// [`Full`]: keep everything.
    #[default]
    Full,
    /// [`AnchorPolicy`]: anchors, pinned entries and the open segment (AnLLM).
    Anchor,
    /// [`StreamingLlm`]: the first `sinks` entries and the last `window` ones.
    Streaming {
        /// Attention-sink entries kept from the start of the stream.
        sinks: usize,
        /// Most recent entries kept.
        window: usize,
    },
    /// [`H2o`]: heavy hitters by accumulated attention plus the most recent entries.
    H2o {
        /// Most entries kept.
        budget: Budget,
        /// Most recent entries always kept (less than `budget`).
        recent: usize,
    },
    /// [`Tova`]: the entries the current query attends to most.
    Tova {
        /// Most entries kept.
        budget: Budget,
    },
    /// [`Tova::per_layer`]: TOVA with one set per layer (kvpress's granularity).
    TovaLayer {
        /// Most entries kept per layer.
        budget: Budget,
    },
    /// [`SnapKv`]: attention of the step's last `window` queries, pooled, plus the window.
    Snapkv {
        /// Most entries kept.
        budget: Budget,
        /// Observation window: the queries that score, and the newest entries always kept.
        window: usize,
    },
    /// [`Knorm`]: the entries whose keys have the smallest L2 norm.
    Knorm {
        /// Most entries kept.
        budget: Budget,
    },
    /// [`SepLlm`]: the first `sinks` entries, every separator (anchor) and the last `window`.
    Sepllm {
        /// Attention-sink entries kept from the start of the stream.
        sinks: usize,
        /// Most recent entries kept.
        window: usize,
    },
}

impl PolicyConfig {
    /// The policy object.
    pub fn build(&self) -> Box<dyn KvPolicy> {
        match *self {
            Self::Full => Box::new(Full),
            Self::Anchor => Box::new(AnchorPolicy),
            Self::Streaming { sinks, window } => Box::new(StreamingLlm::new(sinks, window)),
            Self::H2o { budget, recent } => Box::new(H2o::new(budget, recent)),
            Self::Tova { budget } => Box::new(Tova::new(budget)),
            Self::TovaLayer { budget } => Box::new(Tova::per_layer(budget)),
            Self::Sepllm { sinks, window } => Box::new(SepLlm::new(sinks, window)),
            Self::Snapkv { budget, window } => Box::new(SnapKv::new(budget, window)),
            Self::Knorm { budget } => Box::new(Knorm::new(budget)),
        }
    }

    /// The policy's stable name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Anchor => "anchor",
            Self::Streaming { .. } => "streaming",
            Self::H2o { .. } => "h2o",
            Self::Tova { .. } => "tova",
            Self::TovaLayer { .. } => "tova_layer",
            Self::Sepllm { .. } => "sepllm",
            Self::Snapkv { .. } => "snapkv",
            Self::Knorm { .. } => "knorm",
        }
    }

    /// Every built-in policy with an easy and a hard setting: the session test matrix.
    pub fn examples() -> Vec<Self> {
        vec![
            Self::Full,
            Self::Anchor,
            Self::Streaming {
                sinks: 4,
                window: 8,
            },
            Self::Streaming {
                sinks: 0,
                window: 1,
            },
            Self::H2o {
                budget: Budget::Entries(12),
                recent: 4,
            },
            // Smaller than a prefill chunk: the bound must hold within the prompt too.
            Self::H2o {
                budget: Budget::Entries(2),
                recent: 1,
            },
            Self::H2o {
                budget: Budget::SharePpm(250_000),
                recent: 2,
            },
            Self::Tova {
                budget: Budget::Entries(8),
            },
            Self::Tova {
                budget: Budget::Entries(1),
            },
            Self::Tova {
                budget: Budget::SharePpm(100_000),
            },
            Self::TovaLayer {
                budget: Budget::Entries(6),
            },
            Self::TovaLayer {
                budget: Budget::Entries(1),
            },
            Self::TovaLayer {
                budget: Budget::SharePpm(250_000),
            },
            Self::Snapkv {
                budget: Budget::Entries(12),
                window: 4,
            },
            Self::Snapkv {
                budget: Budget::Entries(2),
                window: 1,
            },
            Self::Snapkv {
                budget: Budget::SharePpm(500_000),
                window: 3,
            },
            Self::Knorm {
                budget: Budget::Entries(8),
            },
            Self::Knorm {
                budget: Budget::SharePpm(250_000),
            },
            Self::Sepllm {
                sinks: 4,
                window: 8,
            },
            Self::Sepllm {
                sinks: 0,
                window: 1,
            },
        ]
    }

    /// Whether the policy needs anchors to do anything (it keeps whole segments).
    pub fn is_anchor_based(&self) -> bool {
        matches!(self, Self::Anchor)
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::H2o { budget, .. }
            | Self::Tova { budget }
            | Self::TovaLayer { budget }
            | Self::Snapkv { budget, .. }
            | Self::Knorm { budget } => check_budget(budget)?,
            _ => {}
        }
        match *self {
            Self::Streaming { window: 0, .. }
            | Self::Sepllm { window: 0, .. }
            | Self::Snapkv { window: 0, .. } => Err(Error::config(
                "kv_policy.window",
                "must be at least 1 (the newest entry)",
            )),
            Self::H2o {
                budget: Budget::Entries(budget),
                recent,
            } if recent >= budget => Err(Error::config(
                "kv_policy.recent",
                format!("must be less than the budget ({budget}): {recent}"),
            )),
            Self::Snapkv {
                budget: Budget::Entries(budget),
                window,
            } if window >= budget => Err(Error::config(
                "kv_policy.window",
                format!("must be less than the budget ({budget}): {window}"),
            )),
            _ => Ok(()),
        }
    }
}

fn check_budget(budget: Budget) -> Result<()> {
    match budget {
        Budget::Entries(0) => Err(Error::config("kv_policy.budget", "must be at least 1")),
        Budget::SharePpm(ppm) if ppm == 0 || ppm >= 1_000_000 => Err(Error::config(
            "kv_policy.budget",
            "a share must lie strictly between 0 and 1",
        )),
        _ => Ok(()),
    }
}

/// Drops the lowest-scored entries of a cache of `n` holding more than `budget`: `scores` (called
/// only then) gives one score per slot, missing slots scoring 0.
pub(crate) fn keep_best(n: usize, budget: usize, scores: impl FnOnce() -> Vec<f32>) -> Eviction {
    if n <= budget {
        return Eviction::default();
    }
    let mut scores = scores();
    scores.resize(n, 0.0);
    Eviction::from_slots(lowest(&scores, n - budget))
}

/// The `count` slots of `scores` with the lowest score, ties broken toward the lower (older)
/// slot; NaN scores count as highest.
pub(crate) fn lowest(scores: &[f32], count: usize) -> Vec<usize> {
    let mut slots: Vec<usize> = (0..scores.len()).collect();
    slots.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    slots.truncate(count);
    slots
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Pos;
    use crate::cache::Cell;
    use crate::token::{Role, SegmentId};

    /// Cells with `(segment, role, pinned)` at positions 0, 1, 2, …
    pub(crate) fn cells(spec: &[(u32, Role, bool)]) -> Cells {
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

    /// The observation of a step that appended the last `appended` cells.
    pub(crate) fn observe(cells: &Cells, appended: usize) -> Observation<'_> {
        Observation {
            cells,
            appended: cells.len() - appended..cells.len(),
            attention: None,
            key_norms: None,
            layer_slots: None,
        }
    }

    #[test]
    fn lowest_breaks_ties_toward_the_older_slot() {
        assert_eq!(lowest(&[2.0, 1.0, 1.0, f32::NAN, 0.5], 3), [4, 1, 2]);
    }
}
