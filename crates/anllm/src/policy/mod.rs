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
mod config;
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
pub use config::PolicyConfig;
pub use full::Full;
pub use h2o::H2o;
pub use knorm::Knorm;
pub use sepllm::SepLlm;
pub use snapkv::SnapKv;
pub use streaming::StreamingLlm;
pub use tova::Tova;

pub use crate::cache::Eviction;
use crate::cache::{Cells, KeyNorms, Lanes};
use crate::model::AttentionStats;

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
    /// The L2 norms of the cached keys, per cell and per lane; `Some` when the policy
    /// [needs them](KvPolicy::needs_key_norms).
    pub key_norms: Option<&'a KeyNorms>,
    /// Per layer and KV head (lane), the cells it holds, when a per-layer or per-head plan
    /// made them differ ([`KvCache::lanes`](crate::KvCache::lanes)); `None`: every lane holds
    /// every cell. The per-head attention mass and key norms are over a lane's entries, in
    /// this order.
    pub lanes: Option<&'a Lanes>,
}

impl Observation<'_> {
    /// The cells lane (`layer`, `head`) holds, ascending.
    pub fn lane_cells(&self, layer: usize, head: usize) -> std::borrow::Cow<'_, [u32]> {
        match self.lanes {
            Some(lanes) => std::borrow::Cow::Borrowed(lanes.of(layer, head)),
            None => std::borrow::Cow::Owned((0..self.cells.len() as u32).collect()),
        }
    }

    /// One plan per lane (layer-major) for `layers` × `kv_heads` lanes: `drop(layer, head,
    /// held)` names the entries to drop by their index among the `held` the lane holds.
    pub fn lane_plans(
        &self,
        layers: usize,
        kv_heads: usize,
        mut drop: impl FnMut(usize, usize, usize) -> Eviction,
    ) -> Vec<Eviction> {
        let mut plans = Vec::with_capacity(layers * kv_heads);
        for layer in 0..layers {
            for head in 0..kv_heads {
                let cells = self.lane_cells(layer, head);
                let gone = drop(layer, head, cells.len());
                plans.push(Eviction::from_slots(
                    gone.slots().iter().map(|&i| cells[i] as usize),
                ));
            }
        }
        plans
    }
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

    /// A plan per layer and KV head (lane, layer-major: cells to drop from each), for
    /// policies that keep a set per head; every head of a layer must keep equally many
    /// entries. `None` (the default): [`plan_layers`](KvPolicy::plan_layers). A session
    /// applies this one first when it returns `Some`.
    fn plan_heads(&mut self, obs: &Observation<'_>) -> Option<Vec<Eviction>> {
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
            lanes: None,
        }
    }

    #[test]
    fn lowest_breaks_ties_toward_the_older_slot() {
        assert_eq!(lowest(&[2.0, 1.0, 1.0, f32::NAN, 0.5], 3), [4, 1, 2]);
    }
}
