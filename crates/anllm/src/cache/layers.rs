//! Per-layer and per-head keeping: layers, or the KV heads of a layer, that hold different
//! entries (kvpress keeps one set per layer for TOVA, one per layer and KV head for SnapKV and
//! KNorm).
//!
//! A *lane* is one KV head of one layer. [`Lanes`] lists, per lane and ascending, the cells it
//! holds: entry `i` of head `h` in layer `l`'s store belongs to cell `lanes.of(l, h)[i]`. All
//! heads of a layer hold equally many entries (the store is one `[kv_heads, n, head_dim]`
//! tensor). The cells are the union, and a cell stays while at least one lane holds it; its
//! K/V memory is freed lane by lane. `None` (every cache starts so) means every lane holds
//! every cell. A step's visibility grid (one column per cell) is narrowed to each layer's cells
//! by the model; heads of one layer that hold different cells need a causal step (every cached
//! entry visible), so the narrowing does not depend on the head.

use super::{Eviction, KvCache};
use crate::{Error, Result};

/// Per lane (layer × KV head), the cells it holds, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lanes {
    kv_heads: usize,
    slots: Vec<Vec<u32>>, // [layer * kv_heads + head]
}

/// Which cells a layer's store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCells<'a> {
    /// Every cell, in slot order (the shared form).
    All,
    /// These cells, for every head of the layer.
    Shared(&'a [u32]),
    /// Heads hold different cells (the same number each): head 0's are given.
    PerHead(&'a [u32]),
}

impl Lanes {
    fn full(layers: usize, kv_heads: usize, cells: usize) -> Self {
        Self {
            kv_heads,
            slots: vec![(0..cells as u32).collect(); layers * kv_heads],
        }
    }

    /// Lanes from their cells (layer-major, `kv_heads` per layer; each ascending).
    pub fn from_slots(kv_heads: usize, slots: Vec<Vec<u32>>) -> Self {
        Self { kv_heads, slots }
    }

    /// Checks the lanes of a cache of `layers` × `kv_heads` lanes over `cells` cells: each
    /// ascending and within the cells, the heads of a layer holding equally many, and every
    /// cell held by some lane.
    pub(crate) fn check(
        &self,
        layers: usize,
        kv_heads: usize,
        cells: usize,
    ) -> std::result::Result<(), String> {
        if self.kv_heads != kv_heads || self.slots.len() != layers * kv_heads {
            return Err(format!(
                "{} lanes of {} heads for {layers} layers of {kv_heads} KV heads",
                self.slots.len(),
                self.kv_heads
            ));
        }
        let mut used = vec![false; cells];
        for (i, lane) in self.slots.iter().enumerate() {
            if !lane.windows(2).all(|w| w[0] < w[1])
                || lane.last().is_some_and(|&c| c as usize >= cells)
            {
                return Err(format!(
                    "lane {i} is not ascending within the {cells} cells"
                ));
            }
            if lane.len() != self.slots[i - i % kv_heads].len() {
                return Err(format!(
                    "lane {i}: the heads of its layer hold different counts"
                ));
            }
            lane.iter().for_each(|&c| used[c as usize] = true);
        }
        match used.iter().all(|&u| u) {
            true => Ok(()),
            false => Err("a cell that no lane holds".into()),
        }
    }

    /// KV heads per layer.
    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.slots.len() / self.kv_heads.max(1)
    }

    /// The cells head `head` of layer `layer` holds, ascending.
    pub fn of(&self, layer: usize, head: usize) -> &[u32] {
        &self.slots[layer * self.kv_heads + head]
    }

    /// Every lane, layer-major.
    pub fn all(&self) -> &[Vec<u32>] {
        &self.slots
    }

    fn layer(&self, layer: usize) -> &[Vec<u32>] {
        &self.slots[layer * self.kv_heads..][..self.kv_heads]
    }
}

impl KvCache {
    /// Per lane, the cells it holds, when the layers or heads hold different entries.
    pub fn lanes(&self) -> Option<&Lanes> {
        self.held.as_ref()
    }

    /// Whether the layers (or the heads of a layer) hold different entries.
    pub fn is_ragged(&self) -> bool {
        self.held.is_some()
    }

    /// The cells layer `layer`'s store holds.
    pub fn layer_cells(&self, layer: usize) -> LayerCells<'_> {
        let Some(lanes) = &self.held else {
            return LayerCells::All;
        };
        let heads = lanes.layer(layer);
        match heads.iter().all(|h| *h == heads[0]) {
            true => LayerCells::Shared(&heads[0]),
            false => LayerCells::PerHead(&heads[0]),
        }
    }

    /// Entries the store of `layer` holds (per head).
    pub fn layer_len(&self, layer: usize) -> usize {
        self.layers[layer].len()
    }

    /// Entries held, averaged over the lanes and rounded up (the number of cells when every
    /// lane holds every cell).
    pub fn held_entries(&self) -> usize {
        match &self.held {
            None => self.cells.len(),
            Some(h) => h
                .slots
                .iter()
                .map(Vec::len)
                .sum::<usize>()
                .div_ceil(h.slots.len().max(1)),
        }
    }

    /// Bytes of K/V held in all layers.
    pub fn held_bytes(&self) -> usize {
        match &self.held {
            None => self.cells.len() * self.bytes_per_entry,
            Some(h) => {
                let per_lane = self.bytes_per_entry / h.slots.len().max(1);
                h.slots.iter().map(Vec::len).sum::<usize>() * per_lane
            }
        }
    }

    /// Drops, in each layer `l`, the cells `per_layer[l]` names (cell slots; those the layer
    /// does not hold are ignored) from every head. A cell that no lane holds any more is
    /// removed.
    pub fn apply_layers(&mut self, per_layer: &[Eviction]) -> Result<()> {
        self.check_plans(per_layer.len(), self.layers.len(), "per-layer eviction")?;
        let heads = self.kv_heads;
        let per_lane: Vec<Eviction> = (per_layer.iter())
            .flat_map(|e| std::iter::repeat_n(e.clone(), heads))
            .collect();
        self.apply_lanes(&per_lane)
    }

    /// Drops, in each lane (layer-major: `per_lane[l * kv_heads + h]`), the cells it names.
    /// The heads of a layer must keep equally many entries.
    pub fn apply_lanes(&mut self, per_lane: &[Eviction]) -> Result<()> {
        let lanes = self.layers.len() * self.kv_heads;
        self.check_plans(per_lane.len(), lanes, "per-head eviction")?;
        if per_lane.iter().all(Eviction::is_empty) {
            return Ok(());
        }
        let n = self.cells.len();
        let mut held =
            (self.held.take()).unwrap_or_else(|| Lanes::full(self.layers.len(), self.kv_heads, n));
        let kept = self.compact_layers(&mut held, per_lane);
        self.drop_unheld(held);
        kept
    }

    fn check_plans(&self, got: usize, want: usize, op: &str) -> Result<()> {
        match got == want {
            true => Ok(()),
            false => Err(Error::Shape {
                op: op.into(),
                expected: format!("{want} plans"),
                got: got.to_string(),
            }),
        }
    }

    /// Compacts every layer's store to what its lanes keep and updates `held`.
    fn compact_layers(&mut self, held: &mut Lanes, per_lane: &[Eviction]) -> Result<()> {
        let heads = self.kv_heads;
        for (l, store) in self.layers.iter_mut().enumerate() {
            let lanes = &mut held.slots[l * heads..][..heads];
            let evictions = &per_lane[l * heads..][..heads];
            let keeps: Vec<Vec<u32>> = (lanes.iter().zip(evictions))
                .map(|(slots, e)| kept_entries(slots, e))
                .collect();
            if keeps
                .iter()
                .zip(lanes.iter())
                .all(|(k, s)| k.len() == s.len())
            {
                continue;
            }
            if keeps.iter().any(|k| k.len() != keeps[0].len()) {
                return Err(Error::unsupported(format!(
                    "a plan that keeps different numbers of entries in the KV heads of layer {l}"
                )));
            }
            match keeps.iter().all(|k| *k == keeps[0]) {
                true => {
                    let keep = &keeps[0];
                    let first = (0..keep.len())
                        .find(|&j| keep[j] as usize != j)
                        .unwrap_or(keep.len());
                    let tail: Vec<u32> = keep[first..].iter().map(|&i| i - first as u32).collect();
                    store.retain_tail(first, &tail)?;
                }
                false => store.retain_heads(&keeps)?,
            }
            for (slots, keep) in lanes.iter_mut().zip(&keeps) {
                *slots = keep.iter().map(|&i| slots[i as usize]).collect();
            }
        }
        Ok(())
    }

    /// Removes the cells no lane holds, renumbers the lanes, and goes back to the shared form
    /// when every lane holds every cell.
    fn drop_unheld(&mut self, mut held: Lanes) {
        let n = self.cells.len();
        let mut used = vec![false; n];
        held.slots
            .iter()
            .flatten()
            .for_each(|&c| used[c as usize] = true);
        let gone: Vec<usize> = (0..n).filter(|&c| !used[c]).collect();
        if !gone.is_empty() {
            let mut renumber = vec![0u32; n];
            let mut next = 0;
            for (c, slot) in renumber.iter_mut().enumerate() {
                *slot = next;
                next += u32::from(used[c]);
            }
            (held.slots.iter_mut())
                .flatten()
                .for_each(|c| *c = renumber[*c as usize]);
            self.cells.remove(&gone);
        }
        let m = self.cells.len();
        self.held = held.slots.iter().any(|s| s.len() != m).then_some(held);
    }

    /// A union-slot eviction as one eviction per lane (ragged caches).
    pub(super) fn apply_shared_to_lanes(&mut self, eviction: &Eviction) -> Result<()> {
        let per_lane = vec![eviction.clone(); self.layers.len() * self.kv_heads];
        self.apply_lanes(&per_lane)
    }

    /// Records `added` new cells appended to every lane (ragged caches).
    pub(super) fn extend_held(&mut self, added: usize) {
        let n = self.cells.len() as u32;
        if let Some(held) = &mut self.held {
            for slots in held.slots.iter_mut() {
                slots.extend(n - added as u32..n);
            }
        }
    }
}

/// Indices (into the lane's entries) of the cells of `slots` that `eviction` does not drop.
fn kept_entries(slots: &[u32], eviction: &Eviction) -> Vec<u32> {
    let mut drop = eviction.slots().iter().map(|&s| s as u32).peekable();
    let mut keep = Vec::with_capacity(slots.len());
    for (i, &cell) in slots.iter().enumerate() {
        while drop.next_if(|&d| d < cell).is_some() {}
        if drop.next_if_eq(&cell).is_none() {
            keep.push(i as u32);
        }
    }
    keep
}
