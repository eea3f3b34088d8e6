//! Rotary position embeddings. Positions come from the caller (the cache's cells), never from
//! slot indices, so a pruned cache keeps each entry's true position.

use candle_core::{DType, Device, Tensor};

use crate::config::RopeStyle;
use crate::{Error, Pos, Result};

/// Precomputed cos/sin for every position up to the context length.
#[derive(Debug, Clone)]
pub struct RopeTable {
    cos: Tensor, // [max_pos, head_dim / 2]
    sin: Tensor, // [max_pos, head_dim / 2]
    style: RopeStyle,
    max_pos: usize,
}

impl RopeTable {
    /// Builds the table for `head_dim`, base `theta`, positions `0..max_pos`.
    pub fn new(
        head_dim: usize,
        theta: f64,
        max_pos: usize,
        style: RopeStyle,
        device: &Device,
    ) -> Result<Self> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), device)?;
        let pos = Tensor::arange(0u32, max_pos as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((max_pos, 1))?;
        let freqs = pos.broadcast_mul(&inv_freq)?;
        Ok(Self {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
            style,
            max_pos,
        })
    }

    /// Which pair layout the table rotates.
    pub fn style(&self) -> RopeStyle {
        self.style
    }

    /// cos/sin rows for `positions`: two tensors `[t, head_dim / 2]`.
    pub fn gather(&self, positions: &[Pos]) -> Result<(Tensor, Tensor)> {
        if let Some(p) = positions.iter().find(|p| p.0 as usize >= self.max_pos) {
            return Err(Error::ContextFull {
                used: p.0 as usize,
                requested: 1,
                capacity: self.max_pos,
            });
        }
        let ids: Vec<u32> = positions.iter().map(|p| p.0).collect();
        let ids = Tensor::from_vec(ids, positions.len(), self.cos.device())?;
        Ok((
            self.cos.index_select(&ids, 0)?,
            self.sin.index_select(&ids, 0)?,
        ))
    }

    /// Rotates `x: [batch, heads, t, head_dim]` with cos/sin from [`RopeTable::gather`].
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        Ok(match self.style {
            RopeStyle::Half => candle_nn::rotary_emb::rope(&x, cos, sin)?,
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x, cos, sin)?,
        })
    }
}
