//! A session: one token stream over an immutable [`Llama`], with its [`KvCache`], anchors,
//! visibility rule, KV policy and position mode.
//!
//! The step contract ([`Session::forward`]), in this order:
//!
//! 1. the anchor set classifies each new token (token, anchor or pad);
//! 2. the new [`Cell`]s are made: stream position, RoPE position by [`PositionMode`], segment,
//!    pinned flag;
//! 3. [`mask::step_mask`] is built over the cached cells plus the new ones;
//! 4. the model runs the step, appending K/V and cells;
//! 5. the policy plans an [`Eviction`](crate::policy::Eviction);
//! 6. the cache applies it.
//!
//! New tokens see their own segment before it is pruned, so a chunked prefill with pruning
//! gives the same logits as one masked full-sequence forward (spec §3.5, §10.4–5).

use std::ops::Range;

use candle_core::Tensor;

use crate::anchor::AnchorSet;
use crate::cache::{Cell, KvCache};
use crate::mask::{self, MaskRule};
use crate::model::{ForwardInput, Llama, OutputRows, Visibility};
use crate::policy::{KvPolicy, PolicyKind};
use crate::token::{Role, SegmentId};
use crate::{Error, Pos, Result, TokenId};

/// Which position RoPE gives a new token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionMode {
    /// Its index in the stream, evicted tokens counted (spec §3.4 recommendation): cached
    /// inference equals the masked full forward.
    #[default]
    Absolute,
    /// The current cache length plus its index in the step: the authors' stack (spec §3.4,
    /// §9.1), for reproducing their cached-generation numbers.
    Compressed,
}

/// Everything that shapes a session besides the model.
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    /// Who is an anchor or a pad.
    pub anchors: AnchorSet,
    /// The visibility rule.
    pub rule: MaskRule,
    /// What the cache keeps.
    pub policy: PolicyKind,
    /// RoPE positions.
    pub positions: PositionMode,
    /// Stream positions whose entries are never dropped and stay visible to later tokens.
    pub pins: Vec<Range<u32>>,
    /// Tokens per forward step during prefill (at least 1).
    pub chunk_size: usize,
}

impl SessionConfig {
    /// Plain causal attention with a full cache.
    pub fn causal(chunk_size: usize) -> Self {
        Self {
            chunk_size,
            ..Self::default()
        }
    }

    /// AnSAN attention over `anchors`, with the anchor-pruned cache.
    pub fn anchored(anchors: AnchorSet, chunk_size: usize) -> Self {
        Self {
            anchors,
            rule: MaskRule::AnSan,
            policy: PolicyKind::Anchor,
            chunk_size,
            ..Self::default()
        }
    }

    fn is_pinned(&self, pos: Pos) -> bool {
        self.pins.iter().any(|r| r.contains(&pos.0))
    }
}

/// Cache statistics of a session.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CacheStats {
    /// Tokens processed so far.
    pub tokens_seen: usize,
    /// Entries in the cache now.
    pub entries: usize,
    /// Most entries held at once.
    pub peak_entries: usize,
    /// Bytes of K/V now.
    pub kv_bytes: usize,
    /// Most bytes of K/V held at once.
    pub peak_kv_bytes: usize,
    /// Bytes a full cache would hold now (`tokens_seen` entries).
    pub full_kv_bytes: usize,
    /// C⇓ = 1 − entries / tokens_seen: the share of a full cache not kept.
    pub reduction: f64,
}

/// One token stream with its cache.
#[derive(Debug)]
pub struct Session<'m> {
    model: &'m Llama,
    cache: KvCache,
    cfg: SessionConfig,
    policy: Box<dyn KvPolicy>,
}

impl<'m> Session<'m> {
    /// A session with a cache preallocated for about `expected_tokens` entries (a pruning policy
    /// allocates for one chunk plus room to grow instead).
    pub fn new(model: &'m Llama, cfg: SessionConfig, expected_tokens: usize) -> Result<Self> {
        if cfg.chunk_size == 0 {
            return Err(Error::config("chunk_size", "must be at least 1"));
        }
        // No stream holds more entries than the context window: a huge estimate must not size
        // the allocation.
        let expected_tokens = expected_tokens.min(model.config().max_position_embeddings);
        let capacity = match cfg.policy {
            PolicyKind::Full => expected_tokens,
            PolicyKind::Anchor => expected_tokens.min(cfg.chunk_size.saturating_add(256)),
        };
        Ok(Self {
            cache: model.new_cache(capacity.max(16))?,
            policy: cfg.policy.build(),
            model,
            cfg,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Llama {
        self.model
    }

    /// The cache.
    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Pins stream positions `range` (for tokens not processed yet, or still cached).
    pub fn pin(&mut self, range: Range<u32>) {
        self.cfg.pins.push(range);
    }

    /// A second session continuing from the same point, with its own copy of the cache.
    pub fn fork(&self) -> Result<Self> {
        Ok(Self {
            model: self.model,
            cache: self.cache.deep_copy()?,
            cfg: self.cfg.clone(),
            policy: self.cfg.policy.build(),
        })
    }

    /// Forgets the stream: empty cache, positions and segments from 0.
    pub fn reset(&mut self) {
        self.cache.clear();
    }

    /// Runs one step over `tokens` (the contract in the module docs) and returns logits of
    /// `rows`.
    pub fn forward(&mut self, tokens: &[TokenId], rows: OutputRows) -> Result<Tensor> {
        let cells = self.new_cells(tokens);
        let positions: Vec<Pos> = cells.iter().map(|c| c.rope).collect();
        let grid = mask::step_mask(self.cfg.rule, self.cache.cells().as_slice(), &cells);
        let visibility = if grid.is_causal() {
            Visibility::Causal
        } else {
            Visibility::Mask(&grid)
        };
        let input = ForwardInput {
            tokens,
            positions: &positions,
            visibility,
            rows,
            cells: Some(&cells),
        };
        let logits = self.model.forward(&input, &mut self.cache)?;
        let eviction = self.policy.plan(self.cache.cells());
        self.cache.apply(&eviction)?;
        Ok(logits)
    }

    /// Runs `tokens` in steps of `chunk_size` and returns the logits of the rows from index
    /// `rows_from` (relative to `tokens`) to the end, `[tokens.len() - rows_from, vocab]`.
    pub fn prefill(&mut self, tokens: &[TokenId], rows_from: usize) -> Result<Tensor> {
        if rows_from >= tokens.len() {
            return Err(Error::config(
                "rows_from",
                format!("{rows_from} is past the {} tokens", tokens.len()),
            ));
        }
        let size = self.cfg.chunk_size;
        let mut outputs = Vec::new();
        for (c, chunk) in tokens.chunks(size).enumerate() {
            let start = c * size;
            if start + chunk.len() <= rows_from {
                self.forward(chunk, OutputRows::Last)?;
                continue;
            }
            let rows = OutputRows::From(rows_from.saturating_sub(start));
            outputs.push(self.forward(chunk, rows)?);
        }
        Ok(Tensor::cat(&outputs, 0)?)
    }

    /// Cache statistics now.
    pub fn stats(&self) -> CacheStats {
        let per = self.cache.bytes_per_entry();
        let seen = self.cache.next_pos().0 as usize;
        let entries = self.cache.len();
        CacheStats {
            tokens_seen: seen,
            entries,
            peak_entries: self.cache.peak_entries(),
            kv_bytes: entries * per,
            peak_kv_bytes: self.cache.peak_entries() * per,
            full_kv_bytes: seen * per,
            reduction: if seen == 0 {
                0.0
            } else {
                1.0 - entries as f64 / seen as f64
            },
        }
    }

    /// Cells of `tokens` as the next tokens of the stream.
    fn new_cells(&self, tokens: &[TokenId]) -> Vec<Cell> {
        let cells = self.cache.cells();
        let (first, cached) = (cells.next_pos().0, cells.len() as u32);
        let mut segment = cells.open_segment();
        let mut out = Vec::with_capacity(tokens.len());
        for (i, &token) in (0u32..).zip(tokens) {
            let role = self.cfg.anchors.classify(token);
            let pos = Pos(first + i);
            let rope = match self.cfg.positions {
                PositionMode::Absolute => pos,
                PositionMode::Compressed => Pos(cached + i),
            };
            out.push(Cell {
                token,
                pos,
                rope,
                segment,
                role,
                pinned: self.cfg.is_pinned(pos),
            });
            if role == Role::Anchor {
                segment = SegmentId(segment.0 + 1);
            }
        }
        out
    }
}
