//! L2 norms of the cached keys, what KNorm scores by.

use candle_core::DType;

use super::KvCache;
use crate::Result;

/// The L2 norm of every cached key: per lane (layer × KV head, layer-major) in the lane's
/// entry order, and per cell averaged over the lanes that hold it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyNorms {
    per_cell: Vec<f32>,
    lanes: Vec<Vec<f32>>,
    kv_heads: usize,
}

impl KeyNorms {
    /// Norms from per-lane values (layer-major) and the lanes' cells (`None`: every lane holds
    /// every cell, in order).
    pub fn new(
        lanes: Vec<Vec<f32>>,
        kv_heads: usize,
        cells: usize,
        held: Option<&[Vec<u32>]>,
    ) -> Self {
        let mut total = vec![0.0f32; cells];
        let mut count = vec![0usize; cells];
        for (lane, norms) in lanes.iter().enumerate() {
            for (i, x) in norms.iter().enumerate() {
                let cell = held.map_or(i, |h| h[lane][i] as usize);
                total[cell] += x;
                count[cell] += 1;
            }
        }
        for (t, c) in total.iter_mut().zip(count) {
            *t /= c.max(1) as f32;
        }
        Self {
            per_cell: total,
            lanes,
            kv_heads,
        }
    }

    /// KV heads per layer.
    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }

    /// Number of layers.
    pub fn layers(&self) -> usize {
        self.lanes.len() / self.kv_heads.max(1)
    }

    /// Per cell, the norm averaged over the layers and KV heads that hold it.
    pub fn per_cell(&self) -> &[f32] {
        &self.per_cell
    }

    /// The norms of the entries head `head` of layer `layer` holds, in order.
    pub fn lane(&self, layer: usize, head: usize) -> &[f32] {
        self.lanes
            .get(layer * self.kv_heads + head)
            .map_or(&[], Vec::as_slice)
    }
}

impl KvCache {
    /// The L2 norm of every cached key (what
    /// [`KvPolicy::needs_key_norms`](crate::policy::KvPolicy::needs_key_norms) asks for).
    pub fn key_norms(&self) -> Result<KeyNorms> {
        let mut lanes = Vec::with_capacity(self.layers.len() * self.kv_heads);
        for layer in &self.layers {
            let (k, _) = layer.view()?; // [kv_heads, n_l, head_dim]
            let k = k.to_dtype(DType::F32)?;
            lanes.extend(k.sqr()?.sum(2)?.sqrt()?.to_vec2::<f32>()?);
        }
        let held = self.held.as_ref().map(|h| h.all());
        Ok(KeyNorms::new(lanes, self.kv_heads, self.len(), held))
    }
}
