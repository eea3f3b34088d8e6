//! The KV cache: per-entry metadata ([`Cells`]) kept apart from the per-layer K/V tensors.
//!
//! Invariant: every layer store holds exactly `cells.len()` entries, in slot order, and slot `i`
//! of every layer belongs to cell `i` — unless a per-layer or per-head plan made the layers
//! (or heads) hold different entries ([`KvCache::apply_layers`], [`KvCache::apply_lanes`],
//! `layers.rs`): then head `h` of layer `l` holds the cells `lanes().of(l, h)`, in order. Only
//! [`KvCache::apply`], [`KvCache::apply_layers`] and [`KvCache::apply_lanes`] drop entries, and
//! only what a policy planned ([`Eviction`]).

mod cells;
mod eviction;
mod layers;
mod norms;
mod store;

pub use cells::{Cell, Cells};
pub use eviction::Eviction;
pub use layers::{Lanes, LayerCells};
pub use norms::KeyNorms;
pub(crate) use store::LayerStore;

use cells::CellsMark;

use candle_core::{DType, Device};

use crate::config::LlamaConfig;
use crate::{Pos, Result};

/// Element type of the cached keys and values.
///
/// f16 halves the cache's memory and the bytes a decode step reads at depth; keys and values are
/// rounded once when stored (about 3 significant digits), and attention still computes in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvDtype {
    /// 4 bytes per value: exact against the uncached forward.
    #[default]
    F32,
    /// 2 bytes per value (IEEE half).
    F16,
}

impl KvDtype {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
        }
    }

    /// Bytes per stored value.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }

    /// The name used by `--kv-dtype`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }

    /// F16 for a half-precision tensor, F32 otherwise.
    pub(crate) fn of(dtype: DType) -> Self {
        match dtype {
            DType::F16 => Self::F16,
            _ => Self::F32,
        }
    }
}

/// The cache of one session: cells plus one K/V store per layer.
#[derive(Debug)]
pub struct KvCache {
    cells: Cells,
    layers: Vec<LayerStore>,
    held: Option<Lanes>, // per layer and KV head, the cells it holds; None: all of them
    kv_heads: usize,
    bytes_per_entry: usize,
    peak_entries: usize,
}

impl KvCache {
    /// An empty f32 cache for `cfg` with room for `capacity` entries before the first growth.
    pub fn new(cfg: &LlamaConfig, capacity: usize, device: &Device) -> Result<Self> {
        Self::with_dtype(cfg, capacity, KvDtype::F32, device)
    }

    /// An empty cache of `dtype` entries for `cfg` with room for `capacity` of them.
    pub fn with_dtype(
        cfg: &LlamaConfig,
        capacity: usize,
        dtype: KvDtype,
        device: &Device,
    ) -> Result<Self> {
        let (heads, dim) = (cfg.kv_heads(), cfg.head_dim());
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| LayerStore::new(heads, dim, capacity, dtype, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cells: Cells::default(),
            layers,
            held: None,
            kv_heads: heads,
            bytes_per_entry: cfg.num_hidden_layers * 2 * heads * dim * dtype.size(),
            peak_entries: 0,
        })
    }

    /// The element type of the stored keys and values.
    pub fn dtype(&self) -> KvDtype {
        self.layers
            .first()
            .map_or(KvDtype::F32, |l| KvDtype::of(l.dtype()))
    }

    /// A copy with its own K/V memory, to branch a stream (e.g. score several continuations
    /// after one prefilled context).
    pub fn deep_copy(&self) -> Result<Self> {
        Ok(Self {
            cells: self.cells.clone(),
            layers: (self.layers.iter())
                .map(LayerStore::deep_copy)
                .collect::<Result<_>>()?,
            held: self.held.clone(),
            kv_heads: self.kv_heads,
            bytes_per_entry: self.bytes_per_entry,
            peak_entries: self.peak_entries,
        })
    }

    /// A cache rebuilt from its cells, its lanes when its layers or heads hold different
    /// entries, and per layer the K/V `[kv_heads, len, head_dim]` of the entries the layer holds
    /// (a restored session). Checks shapes, the lanes and the cell invariants.
    pub(crate) fn from_parts(
        cfg: &LlamaConfig,
        cells: Cells,
        lanes: Option<Lanes>,
        layers: &[(candle_core::Tensor, candle_core::Tensor)],
        peak_entries: usize,
        dtype: KvDtype,
        device: &Device,
    ) -> Result<Self> {
        let mut cache = Self::with_dtype(cfg, cells.len(), dtype, device)?;
        if layers.len() != cfg.num_hidden_layers {
            return Err(crate::Error::Shape {
                op: "restored cache layers".into(),
                expected: cfg.num_hidden_layers.to_string(),
                got: layers.len().to_string(),
            });
        }
        if let Some(lanes) = &lanes {
            lanes
                .check(cfg.num_hidden_layers, cfg.kv_heads(), cells.len())
                .map_err(|e| crate::Error::config("session", format!("restored lanes: {e}")))?;
        }
        for (l, (store, (k, v))) in cache.layers.iter_mut().zip(layers).enumerate() {
            let len = lanes.as_ref().map_or(cells.len(), |h| h.of(l, 0).len());
            let want = [cfg.kv_heads(), len, cfg.head_dim()];
            if k.dims() != want || v.dims() != want {
                return Err(crate::Error::Shape {
                    op: "restored K/V".into(),
                    expected: format!("{want:?}"),
                    got: format!("{:?} / {:?}", k.dims(), v.dims()),
                });
            }
            if !want.contains(&0) {
                store.append(&k.to_device(device)?, &v.to_device(device)?)?;
            }
        }
        cells
            .check_invariants()
            .map_err(|e| crate::Error::config("session", format!("restored cells: {e}")))?;
        cache.cells = cells;
        cache.held = lanes;
        cache.peak_entries = peak_entries.max(cache.held_entries());
        Ok(cache)
    }

    /// Per layer, views of what its store holds `[kv_heads, len, head_dim]` (in the cache's
    /// dtype; for a ragged cache, head `h`'s entries are the cells of `lanes().of(l, h)`).
    pub fn store_views(&self) -> Result<Vec<(candle_core::Tensor, candle_core::Tensor)>> {
        self.layers.iter().map(LayerStore::view).collect()
    }

    /// Per layer, views of the held keys and values `[kv_heads, len, head_dim]` (RoPE
    /// applied to the keys, in the cache's dtype), slot `i` belonging to cell `i`.
    /// Fails when the layers hold different entries.
    pub fn layer_views(&self) -> Result<Vec<(candle_core::Tensor, candle_core::Tensor)>> {
        if self.is_ragged() {
            return Err(crate::Error::unsupported(
                "the K/V of a cache whose layers hold different entries (per-layer or per-head \
                 policy)",
            ));
        }
        self.layers.iter().map(LayerStore::view).collect()
    }

    /// Number of cells (entries held by at least one layer).
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The cells, with the stream counters.
    pub fn cells(&self) -> &Cells {
        &self.cells
    }

    /// Bytes one entry takes across all layers.
    pub fn bytes_per_entry(&self) -> usize {
        self.bytes_per_entry
    }

    /// Largest number of entries held at once since creation.
    pub fn peak_entries(&self) -> usize {
        self.peak_entries
    }

    /// Entries the stores can hold without reallocating (the allocated K/V memory).
    pub fn capacity(&self) -> usize {
        self.layers.first().map_or(0, LayerStore::capacity)
    }

    /// Position of the next token of the stream (tokens seen so far, evicted ones included).
    pub fn next_pos(&self) -> Pos {
        self.cells.next_pos()
    }

    /// Mutable store of layer `i` (the model appends through it).
    pub(crate) fn layer_mut(&mut self, i: usize) -> &mut LayerStore {
        &mut self.layers[i]
    }

    /// Records the cells of entries the model just appended to every layer.
    pub(crate) fn push_cells(&mut self, new: &[Cell]) {
        self.cells.extend(new);
        self.extend_held(new.len());
        self.peak_entries = self.peak_entries.max(self.held_entries());
        debug_assert!(self.is_consistent());
    }

    /// The state to come back to if the next step fails ([`KvCache::rollback`]).
    pub(crate) fn mark(&self) -> CacheMark {
        CacheMark {
            cells: self.cells.mark(),
            peak_entries: self.peak_entries,
            layer_lens: (self.held.as_ref())
                .map(|h| (0..h.layers()).map(|l| h.of(l, 0).len()).collect()),
        }
    }

    /// Undoes everything appended since `mark` (cells and every layer's K/V), after a step
    /// that failed part-way. Nothing may have been evicted since the mark.
    pub(crate) fn rollback(&mut self, mark: CacheMark) {
        self.cells.rollback(mark.cells);
        let len = self.cells.len();
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let keep = mark.layer_lens.as_ref().map_or(len, |lens| lens[l]);
            layer.truncate(keep.min(layer.len()));
        }
        self.peak_entries = mark.peak_entries;
    }

    /// Pins the cached entries whose stream position lies in `range`.
    pub(crate) fn pin(&mut self, range: std::ops::Range<u32>) {
        self.cells.pin(range);
    }

    /// Whether every layer holds exactly one entry per cell.
    pub fn is_consistent(&self) -> bool {
        match &self.held {
            None => self.layers.iter().all(|l| l.len() == self.cells.len()),
            Some(h) => (self.layers.iter().enumerate())
                .all(|(l, store)| (0..h.kv_heads()).all(|k| store.len() == h.of(l, k).len())),
        }
    }

    /// Drops the planned entries from the cells and every layer.
    ///
    /// Cost is proportional to the entries from the first evicted slot to the end, not to
    /// the whole cache: the kept tail is moved down in place.
    pub fn apply(&mut self, eviction: &Eviction) -> Result<()> {
        let slots = eviction.slots();
        let Some(&first) = slots.first() else {
            return Ok(());
        };
        if self.is_ragged() {
            return self.apply_shared_to_lanes(eviction);
        }
        let mut drop = slots.iter().peekable();
        let keep: Vec<u32> = (first..self.len())
            .filter(|slot| drop.next_if_eq(&slot).is_none())
            .map(|slot| (slot - first) as u32)
            .collect();
        for layer in &mut self.layers {
            layer.retain_tail(first, &keep)?;
        }
        self.cells.remove(slots);
        Ok(())
    }

    /// Releases reserved K/V memory beyond the held entries plus `headroom` per layer (a
    /// session going idle: its next turn grows the stores again by doubling).
    pub fn shrink_to_fit(&mut self, headroom: usize) -> Result<()> {
        self.layers
            .iter_mut()
            .try_for_each(|layer| layer.shrink_to_fit(headroom))
    }

    /// Drops every entry and resets the stream and the peak.
    pub fn clear(&mut self) {
        self.cells = Cells::default();
        self.held = None;
        self.peak_entries = 0;
        for layer in &mut self.layers {
            layer.truncate(0);
        }
    }
}

/// The state of a [`KvCache`] before a step.
#[derive(Debug, Clone)]
pub(crate) struct CacheMark {
    cells: CellsMark,
    peak_entries: usize,
    layer_lens: Option<Vec<usize>>, // per layer, when ragged
}
