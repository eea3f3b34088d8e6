//! A session: one token stream over a shared [`Llama`], with its [`KvCache`], anchors,
//! visibility rule, KV policy and position mode. It owns an `Arc` of its model, so a server
//! task can hold the model and many sessions, and it continues: the next turn of a
//! conversation prefills only its own tokens.
//!
//! The step contract ([`Session::forward`]), in this order:
//!
//! 1. the anchor set classifies each new token (token, anchor or pad);
//! 2. the new [`Cell`](crate::cache::Cell)s are made: stream position, RoPE position by [`PositionMode`], segment,
//!    pinned flag;
//! 3. [`mask::step_mask`] is built over the cached cells plus the new ones;
//! 4. the model runs the step, appending K/V and cells (a step that fails leaves the cache as
//!    it was);
//! 5. the policy plans an [`Eviction`](crate::cache::Eviction) from an [`Observation`];
//! 6. the cache applies it.
//!
//! New tokens see their own segment before it is pruned, so a chunked prefill with pruning
//! gives the same logits as one masked full-sequence forward (spec §3.5, §10.4–5).

mod batch;
mod config;
mod dry_run;
mod persist;

use std::ops::Range;
use std::sync::Arc;

use candle_core::Tensor;

pub use config::{CacheStats, PositionMode, SessionConfig};
pub use dry_run::kept_entries;

use crate::cache::KvCache;
use crate::mask;
use crate::model::{AttentionStats, ForwardInput, Llama, OutputRows, Visibility};
use crate::policy::{KvPolicy, Observation};
use crate::threads;
use crate::{Error, Pos, Result, TokenId};

/// One token stream with its cache.
#[derive(Debug)]
pub struct Session {
    model: Arc<Llama>,
    cache: KvCache,
    cfg: SessionConfig,
    policy: Box<dyn KvPolicy>,
    /// Every token of the stream that has been run, in order.
    history: Vec<TokenId>,
    /// Tokens accepted into the stream (a sampled token) but not run yet: the next step runs
    /// them first.
    pending: Vec<TokenId>,
    /// Set when applying an eviction failed part-way: the cache can no longer be trusted.
    poisoned: bool,
}

// A server moves sessions between tasks (checked at compile time).
const _: () = {
    const fn movable<T: Send>() {}
    movable::<Session>();
};

impl Session {
    /// A session with the built-in policy of `cfg.policy` and a cache preallocated for about
    /// `expected_tokens` tokens (as the policy hints).
    pub fn new(model: Arc<Llama>, cfg: SessionConfig, expected_tokens: usize) -> Result<Self> {
        cfg.policy.validate()?;
        // The heads of a layer then hold different cells, and one visibility grid serves
        // every head only when it shows every cached entry (no anchor grid, no hidden pads).
        if cfg.policy.is_per_head() && !cfg.anchors.is_empty() {
            return Err(Error::config(
                "kv_policy",
                format!(
                    "`{}` keeps a set per KV head, which needs plain causal attention: not \
                     with anchors (use a shared policy, or no --anchors)",
                    cfg.policy.name()
                ),
            ));
        }
        let policy = cfg.build_policy();
        Self::with_policy(model, cfg, policy, expected_tokens)
    }

    /// A session with a policy of the caller's (`cfg.policy` is then only a label).
    pub fn with_policy(
        model: Arc<Llama>,
        cfg: SessionConfig,
        policy: Box<dyn KvPolicy>,
        expected_tokens: usize,
    ) -> Result<Self> {
        if cfg.chunk_size == 0 {
            return Err(Error::config("chunk_size", "must be at least 1"));
        }
        // No stream holds more entries than the context window: a huge estimate must not size
        // the allocation.
        let expected_tokens = expected_tokens.min(model.config().max_position_embeddings);
        let capacity = policy.capacity_hint(expected_tokens, cfg.chunk_size);
        Ok(Self {
            cache: model.new_cache(capacity.max(16))?,
            model,
            cfg,
            policy,
            history: Vec::new(),
            pending: Vec::new(),
            poisoned: false,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Llama> {
        &self.model
    }

    /// The cache.
    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// Every token of the stream so far, run or pending, in order.
    pub fn tokens(&self) -> Vec<TokenId> {
        [self.history.as_slice(), &self.pending].concat()
    }

    /// Length of the stream so far, run or pending: [`Session::tokens`]'s length, without the copy.
    pub fn stream_len(&self) -> usize {
        self.history.len() + self.pending.len()
    }

    /// The tokens already run, in order (the stream without [`Session::pending`]).
    pub fn history(&self) -> &[TokenId] {
        &self.history
    }

    /// The last token of the stream, run or pending.
    pub fn last_token(&self) -> Option<TokenId> {
        self.pending.last().or(self.history.last()).copied()
    }

    /// Tokens accepted but not run yet (see [`Session::accept`]).
    pub fn pending(&self) -> &[TokenId] {
        &self.pending
    }

    /// Appends `token` to the stream without running it: the next step runs it first. This is
    /// how a generated token joins the conversation without a forward pass of its own.
    pub fn accept(&mut self, token: TokenId) {
        self.pending.push(token);
    }

    /// Pins stream positions `range`: tokens not processed yet, and those still cached, are
    /// never dropped and stay visible to every later token (spec §3.6).
    pub fn pin(&mut self, range: Range<u32>) {
        self.cache.pin(range.clone());
        self.cfg.pins.push(range);
    }

    /// A second session continuing from the same point, with its own copy of the cache and
    /// of the policy's state.
    pub fn fork(&self) -> Result<Self> {
        self.check_usable()?;
        Ok(Self {
            model: Arc::clone(&self.model),
            cache: self.cache.deep_copy()?,
            cfg: self.cfg.clone(),
            policy: self.policy.fork(),
            history: self.history.clone(),
            pending: self.pending.clone(),
            poisoned: false,
        })
    }

    /// A second session continuing from the same point with its own copy of the cache, under
    /// another policy (e.g. one context prefilled once, then compressed by several policies).
    /// The policy starts fresh; `cfg.policy` becomes `label`.
    pub fn fork_with_policy(
        &self,
        policy: Box<dyn KvPolicy>,
        label: crate::policy::PolicyConfig,
    ) -> Result<Self> {
        let mut fork = self.fork()?;
        fork.policy = policy;
        fork.cfg.policy = label;
        Ok(fork)
    }

    /// Lets the policy plan once on the cache as it stands, every entry counted as appended
    /// by this call, with `attention` as the statistics of the step that produced it, and
    /// applies the plan: a one-shot compression after a prefill (kvpress's protocol; record
    /// the statistics with [`Llama::forward_observed`] or an observing policy).
    pub fn compress(&mut self, attention: Option<&AttentionStats>) -> Result<()> {
        self.check_usable()?;
        let n = self.cache.len();
        self.plan_and_apply(n, attention)
    }

    /// Forgets the stream: empty cache, positions and segments from 0, policy state reset,
    /// and no pins (they named positions of the stream that is gone).
    pub fn reset(&mut self) {
        self.cfg.pins.clear();
        self.cache.clear();
        self.policy.reset();
        self.history.clear();
        self.pending.clear();
        self.poisoned = false;
    }

    /// Runs the pending tokens and `tokens` as one step (the contract in the module docs) and
    /// returns logits of `rows` (relative to `tokens`; `Last` is the last token run). On error
    /// the session is as it was before the call.
    pub fn forward(&mut self, tokens: &[TokenId], rows: OutputRows) -> Result<Tensor> {
        let p = self.pending.len();
        let rows = match rows {
            OutputRows::Last => OutputRows::Last,
            OutputRows::All => OutputRows::From(p),
            OutputRows::From(i) => OutputRows::From(i + p),
        };
        if p == 0 {
            return self.step(tokens, rows);
        }
        let all = [self.pending.as_slice(), tokens].concat();
        let logits = self.step(&all, rows)?;
        self.pending.clear();
        Ok(logits)
    }

    /// Runs the pending tokens and `tokens` in steps of `chunk_size` and returns the logits of
    /// the rows from index `rows_from` (relative to `tokens`) to the end,
    /// `[tokens.len() - rows_from, vocab]`. A failed chunk is rolled back; earlier chunks stay.
    pub fn prefill(&mut self, tokens: &[TokenId], rows_from: usize) -> Result<Tensor> {
        if rows_from >= tokens.len() {
            return Err(Error::config(
                "rows_from",
                format!("{rows_from} is past the {} tokens", tokens.len()),
            ));
        }
        let p = self.pending.len();
        let all = [std::mem::take(&mut self.pending).as_slice(), tokens].concat();
        let (rows_from, size) = (rows_from + p, self.cfg.chunk_size);
        let mut outputs = Vec::new();
        for (c, chunk) in all.chunks(size).enumerate() {
            let start = c * size;
            let rows = match start + chunk.len() <= rows_from {
                true => OutputRows::Last,
                false => OutputRows::From(rows_from.saturating_sub(start)),
            };
            match self.step(chunk, rows) {
                Ok(out) if rows != OutputRows::Last => outputs.push(out),
                Ok(_) => {}
                Err(e) => {
                    self.pending = all[start.min(p)..p].to_vec();
                    return Err(e);
                }
            }
        }
        Ok(Tensor::cat(&outputs, 0)?)
    }

    /// Releases the cache's reserved memory beyond its entries plus `headroom` (see
    /// [`KvCache::shrink_to_fit`]): what an idle session in a server's store should hold.
    pub fn shrink_to_fit(&mut self, headroom: usize) -> Result<()> {
        self.cache.shrink_to_fit(headroom)
    }

    /// Positions of the model's context this stream uses: every token run so far with
    /// absolute positions, only the kept entries with compressed ones (their RoPE positions
    /// count from the cache length), so an anchored stream in compressed mode can outrun
    /// the context.
    pub fn context_used(&self) -> usize {
        match self.cfg.positions {
            PositionMode::Absolute => self.cache.next_pos().0 as usize,
            PositionMode::Compressed => self.cache.len(),
        }
    }

    /// Cache statistics now.
    pub fn stats(&self) -> CacheStats {
        CacheStats::of(&self.cache)
    }

    fn check_usable(&self) -> Result<()> {
        match self.poisoned {
            true => Err(Error::unsupported(
                "this session's cache failed to compact and must be reset",
            )),
            false => Ok(()),
        }
    }

    /// One step over `tokens`: cells, mask, forward (rolled back on error), plan, apply.
    fn step(&mut self, tokens: &[TokenId], rows: OutputRows) -> Result<Tensor> {
        self.check_usable()?;
        let prev = self.history.last().copied();
        let cells = dry_run::next_cells(&self.cfg, self.cache.cells(), prev, tokens);
        let positions: Vec<Pos> = cells.iter().map(|c| c.rope).collect();
        let grid = mask::step_mask(self.cfg.rule, self.cache.cells().as_slice(), &cells);
        let visibility = match grid.is_causal() {
            true => Visibility::Causal,
            false => Visibility::Mask(&grid),
        };
        let input = ForwardInput {
            tokens,
            positions: &positions,
            visibility,
            rows,
            cells: Some(&cells),
        };
        let (model, cache) = (&self.model, &mut self.cache);
        let observe = self.policy.needs_attention();
        let rows = self.policy.attention_rows();
        let (logits, attention) =
            threads::run_step(self.cfg.keep_warm, tokens.len(), || match observe {
                true => model
                    .forward_observed(&input, cache, rows)
                    .map(|(l, a)| (l, Some(a))),
                false => model.forward(&input, cache).map(|l| (l, None)),
            })?;
        self.history.extend_from_slice(tokens);
        self.plan_and_apply(tokens.len(), attention.as_ref())?;
        Ok(logits)
    }

    /// The policy plans on the cache as it stands (the last `appended` entries being this
    /// step's) and the cache applies the plan; a failed apply poisons the session.
    fn plan_and_apply(
        &mut self,
        appended: usize,
        attention: Option<&AttentionStats>,
    ) -> Result<()> {
        let norms = match self.policy.needs_key_norms() {
            true => Some(self.cache.key_norms()?),
            false => None,
        };
        let n = self.cache.len();
        let obs = Observation {
            cells: self.cache.cells(),
            appended: n - appended.min(n)..n,
            attention,
            key_norms: norms.as_ref(),
            lanes: self.cache.lanes(),
        };
        let applied = if let Some(per_lane) = self.policy.plan_heads(&obs) {
            self.cache.apply_lanes(&per_lane)
        } else if let Some(per_layer) = self.policy.plan_layers(&obs) {
            self.cache.apply_layers(&per_layer)
        } else {
            let eviction = self.policy.plan(&obs);
            self.cache.apply(&eviction)
        };
        if let Err(e) = applied {
            self.poisoned = true;
            return Err(e);
        }
        Ok(())
    }
}
