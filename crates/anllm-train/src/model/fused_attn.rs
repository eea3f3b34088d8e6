//! The attention probabilities of a training step as one fused CPU kernel with its backward:
//! `softmax(scale · scores + mask)` straight on the grouped score grid that the `q·kᵀ` matmul
//! writes (`[b, kv_heads, groups · t, t]`), with the additive mask `[b, t, t]` read in place.
//!
//! Composed, the same step is a scaling of `q`, two reshapes, a broadcast add of the mask and a
//! softmax, and candle's backward gives every one of those nodes a zero-filled gradient buffer
//! plus an add, and a gradient to the mask (a constant) too: about a dozen passes over the
//! widest tensor of a layer (2.4M values per layer for SmolLM2-135M at 512 tokens). Here: one
//! pass forward, one backward, no gradient for the mask.

use candle_core::{CpuStorage, CustomOp2, Layout, Tensor, bail};

use super::fused::{Float, Out, SoftmaxGrad, contiguous, dispatch, par_rows, softmax_in_place};
use anllm::Result;

/// `softmax(scale · scores + mask)` over the last axis. `scores: [b, kv_heads, groups · t, t]`
/// (row `r` of a head is query `r mod t`), `mask: [b, t, t]` additive (0 visible,
/// [`anllm::mask::BLOCKED`] blocked), same dtype. A blocked key gets a probability of exactly 0,
/// hence exactly zero gradient.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let op = MaskedSoftmax { scale };
    Ok(scores.contiguous()?.apply_op2(&mask.contiguous()?, op)?)
}

struct MaskedSoftmax {
    scale: f64,
}

/// `(t, rows per batch item)` of scores `[b, kv, g·t, t]` against a mask `[b, t, t]`.
fn grid_dims(sl: &Layout, ml: &Layout) -> candle_core::Result<(usize, usize)> {
    let (b, kv, rows, t) = sl.shape().dims4()?;
    let (mb, mt, mt2) = ml.shape().dims3()?;
    if mb != b || mt != t || mt2 != t || t == 0 || rows % t != 0 {
        bail!(
            "masked softmax: scores {:?} against mask {:?}",
            sl.dims(),
            ml.dims()
        );
    }
    Ok((t, kv * rows))
}

fn softmax_fwd<T: Float>(s: &[T], sl: &Layout, m: &[T], ml: &Layout, scale: f64) -> Out {
    let (s, m) = (contiguous(s, sl)?, contiguous(m, ml)?);
    let (t, per_item) = grid_dims(sl, ml)?;
    let scale = T::from_f64(scale);
    let mut y = vec![T::ZERO; s.len()];
    par_rows(s, t, &mut y, |row, s, y| {
        // Row `row` is query `row mod t` of batch item `row / per_item`.
        let mask = &m[(row / per_item) * t * t + (row % t) * t..][..t];
        for ((y, &s), &m) in y.iter_mut().zip(s).zip(mask) {
            *y = s * scale + m;
        }
        softmax_in_place(y);
    });
    Ok((T::to_cpu_storage_owned(y), sl.shape().clone()))
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "anllm-masked-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, sl: &Layout, m: &CpuStorage, ml: &Layout) -> Out {
        dispatch!(self.name(), (s, m) => softmax_fwd(s, sl, m, ml, self.scale))
    }

    /// `dscores = scale · y · (g − Σ g·y)`; the mask is a constant (no gradient).
    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        y: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let op = SoftmaxGrad { scale: self.scale };
        let ds = y.detach().apply_op2(&g.contiguous()?, op)?;
        Ok((Some(ds), None))
    }
}
