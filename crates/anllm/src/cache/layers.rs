//! Per-layer keeping: layers that hold different entries (kvpress keeps one set per layer).
//!
//! `held[l]` lists, ascending, the cells layer `l` holds: entry `i` of its store belongs to cell
//! `held[l][i]`. The cells are then the union, and a cell stays while at least one layer holds
//! it; its K/V memory is freed layer by layer. `None` (every cache starts so) means every layer
//! holds every cell. A step's visibility grid (one column per cell) is narrowed to each layer's
//! cells by the model.

use super::{Eviction, KvCache};
use crate::{Error, Result};

impl KvCache {
    /// Per layer, the cells it holds (ascending), when the layers hold different entries.
    pub fn layer_slots(&self) -> Option<&[Vec<u32>]> {
        self.held.as_deref()
    }

    /// Whether the layers hold different entries.
    pub fn is_ragged(&self) -> bool {
        self.held.is_some()
    }

    /// Entries the store of `layer` holds.
    pub fn layer_len(&self, layer: usize) -> usize {
        self.layers[layer].len()
    }

    /// Entries held, averaged over the layers and rounded up (the number of cells when every
    /// layer holds every cell).
    pub fn held_entries(&self) -> usize {
        match &self.held {
            None => self.cells.len(),
            Some(h) => h
                .iter()
                .map(Vec::len)
                .sum::<usize>()
                .div_ceil(h.len().max(1)),
        }
    }

    /// Bytes of K/V held in all layers.
    pub fn held_bytes(&self) -> usize {
        match &self.held {
            None => self.cells.len() * self.bytes_per_entry,
            Some(h) => {
                let per_layer = self.bytes_per_entry / self.layers.len().max(1);
                h.iter().map(Vec::len).sum::<usize>() * per_layer
            }
        }
    }

    /// Drops, in each layer `l`, the cells `per_layer[l]` names (cell slots; those the layer
    /// does not hold are ignored). A cell that no layer holds any more is removed.
    pub fn apply_layers(&mut self, per_layer: &[Eviction]) -> Result<()> {
        if per_layer.len() != self.layers.len() {
            return Err(Error::Shape {
                op: "per-layer eviction".into(),
                expected: format!("{} layers", self.layers.len()),
                got: per_layer.len().to_string(),
            });
        }
        if per_layer.iter().all(Eviction::is_empty) {
            return Ok(());
        }
        let n = self.cells.len();
        let mut held =
            (self.held.take()).unwrap_or_else(|| vec![(0..n as u32).collect(); self.layers.len()]);
        for ((store, slots), eviction) in self.layers.iter_mut().zip(&mut held).zip(per_layer) {
            let mut drop = eviction.slots().iter().map(|&s| s as u32).peekable();
            let mut keep: Vec<u32> = Vec::with_capacity(slots.len());
            for (i, &cell) in slots.iter().enumerate() {
                while drop.next_if(|&d| d < cell).is_some() {}
                if drop.next_if_eq(&cell).is_none() {
                    keep.push(i as u32);
                }
            }
            if keep.len() == slots.len() {
                continue;
            }
            let first = (0..keep.len())
                .find(|&j| keep[j] as usize != j)
                .unwrap_or(keep.len());
            let tail: Vec<u32> = keep[first..].iter().map(|&i| i - first as u32).collect();
            store.retain_tail(first, &tail)?;
            *slots = keep.iter().map(|&i| slots[i as usize]).collect();
        }
        self.drop_unheld(held);
        Ok(())
    }

    /// Removes the cells no layer holds, renumbers `held`, and goes back to the shared form
    /// when every layer holds every cell.
    fn drop_unheld(&mut self, mut held: Vec<Vec<u32>>) {
        let n = self.cells.len();
        let mut used = vec![false; n];
        held.iter().flatten().for_each(|&c| used[c as usize] = true);
        let gone: Vec<usize> = (0..n).filter(|&c| !used[c]).collect();
        if !gone.is_empty() {
            let mut renumber = vec![0u32; n];
            let mut next = 0;
            for (c, slot) in renumber.iter_mut().enumerate() {
                *slot = next;
                next += u32::from(used[c]);
            }
            held.iter_mut()
                .flatten()
                .for_each(|c| *c = renumber[*c as usize]);
            self.cells.remove(&gone);
        }
        let m = self.cells.len();
        self.held = held.iter().any(|s| s.len() != m).then_some(held);
    }

    /// A union-slot eviction as one eviction per layer (ragged caches).
    pub(super) fn apply_shared_to_layers(&mut self, eviction: &Eviction) -> Result<()> {
        let per_layer = vec![eviction.clone(); self.layers.len()];
        self.apply_layers(&per_layer)
    }

    /// Records `added` new cells appended to every layer (ragged caches).
    pub(super) fn extend_held(&mut self, added: usize) {
        let n = self.cells.len() as u32;
        if let Some(held) = &mut self.held {
            for slots in held.iter_mut() {
                slots.extend(n - added as u32..n);
            }
        }
    }
}
