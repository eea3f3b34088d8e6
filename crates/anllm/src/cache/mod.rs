//! The KV cache: per-entry metadata ([`Cell`]s) kept apart from the per-layer K/V tensors.
//!
//! Invariant: every layer store holds exactly `cells.len()` entries, in slot order, and slot `i`
//! of every layer belongs to `cells[i]`.

mod store;

pub use store::LayerStore;

use candle_core::Device;

use crate::config::LlamaConfig;
use crate::{Pos, Result, TokenId};

/// Metadata of one cached K/V entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// The token whose keys/values the entry holds.
    pub token: TokenId,
    /// Its absolute position (what RoPE rotated it by).
    pub pos: Pos,
}

/// The cache of one session: cells plus one [`LayerStore`] per layer.
#[derive(Debug, Clone)]
pub struct KvCache {
    cells: Vec<Cell>,
    layers: Vec<LayerStore>,
    bytes_per_entry: usize,
    peak_entries: usize,
}

impl KvCache {
    /// An empty cache for `cfg` with room for `capacity` entries before the first growth.
    pub fn new(cfg: &LlamaConfig, capacity: usize, device: &Device) -> Result<Self> {
        let (heads, dim) = (cfg.kv_heads(), cfg.head_dim());
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| LayerStore::new(heads, dim, capacity, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cells: Vec::new(),
            layers,
            bytes_per_entry: cfg.num_hidden_layers * 2 * heads * dim * std::mem::size_of::<f32>(),
            peak_entries: 0,
        })
    }

    /// Number of cached entries.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The cells, in slot order.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// Bytes of K/V held by the cached entries (all layers, keys and values).
    pub fn bytes(&self) -> usize {
        self.len() * self.bytes_per_entry
    }

    /// Bytes one entry takes across all layers.
    pub fn bytes_per_entry(&self) -> usize {
        self.bytes_per_entry
    }

    /// Largest number of entries held at once since creation.
    pub fn peak_entries(&self) -> usize {
        self.peak_entries
    }

    /// The next position after the last cached cell (0 when empty).
    pub fn next_pos(&self) -> Pos {
        self.cells.last().map_or(Pos(0), |c| Pos(c.pos.0 + 1))
    }

    /// The store of layer `i`.
    pub fn layer(&self, i: usize) -> &LayerStore {
        &self.layers[i]
    }

    /// Mutable store of layer `i` (the model appends through it).
    pub fn layer_mut(&mut self, i: usize) -> &mut LayerStore {
        &mut self.layers[i]
    }

    /// Records the cells of entries the model just appended to every layer.
    pub fn push_cells(&mut self, cells: impl IntoIterator<Item = Cell>) {
        self.cells.extend(cells);
        self.peak_entries = self.peak_entries.max(self.cells.len());
        debug_assert!(self.layers.iter().all(|l| l.len() == self.cells.len()));
    }

    /// Keeps the first `len` entries (drops the rest).
    pub fn truncate(&mut self, len: usize) {
        self.cells.truncate(len);
        for layer in &mut self.layers {
            layer.truncate(len);
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.truncate(0);
    }
}
