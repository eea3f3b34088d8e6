//! A step's visibility as the additive masks the attention kernels take: the shared grid, and
//! each layer's columns of it when the layers (or their KV heads) hold different entries.

use candle_core::Tensor;

use super::{Llama, Visibility};
use crate::Result;
use crate::cache::{KvCache, LayerCells};
use crate::mask::Mask;

impl Llama {
    /// The additive mask `[t, cached + t]` of a step, or None when every row sees every key.
    pub(super) fn additive_mask(
        &self,
        visibility: Visibility,
        cached: usize,
        t: usize,
    ) -> Result<Option<Tensor>> {
        Ok(match visibility {
            Visibility::Causal if t == 1 => None,
            Visibility::Causal => Some(Mask::causal(cached, t).to_additive(&self.device)?),
            Visibility::Mask(m) => Some(m.to_additive(&self.device)?),
        })
    }

    /// When the layers hold different entries, layer `i`'s columns of the step's mask: the
    /// cells it holds, then the new tokens (`None` for a shared cache or no mask). Heads of
    /// the layer that hold different cells need a causal step (every cached column visible,
    /// so head 0's columns serve every head).
    pub(super) fn layer_mask(
        &self,
        shared: Option<&Tensor>,
        visibility: Visibility,
        cache: &KvCache,
        i: usize,
        t: usize,
    ) -> Result<Option<Tensor>> {
        let (held, mask) = match (cache.layer_cells(i), shared) {
            (_, None) | (LayerCells::All, _) => return Ok(None),
            (LayerCells::Shared(held), Some(mask)) => (held, mask),
            (LayerCells::PerHead(held), Some(mask)) => match visibility {
                Visibility::Causal => (held, mask),
                Visibility::Mask(_) => {
                    return Err(crate::Error::unsupported(
                        "a visibility grid (anchors) on a cache whose KV heads hold different \
                         entries (per-head policy): per-head keeping needs causal attention",
                    ));
                }
            },
        };
        let n = cache.len() as u32;
        let cols: Vec<u32> = held.iter().copied().chain(n..n + t as u32).collect();
        let cols = Tensor::from_slice(&cols, cols.len(), &self.device)?;
        Ok(Some(mask.index_select(&cols, 1)?))
    }
}
