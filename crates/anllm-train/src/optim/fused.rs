//! The CPU f32 fast path of [`super::AdamW`]: the global gradient norm read straight from the
//! gradients' storage, and the update applied in place to each parameter's storage through
//! candle's [`InplaceOp2`], one pass over parameter, moments and gradient together, in
//! parallel over chunks.
//!
//! Every element's update depends only on that element, and the norm's partial sums are
//! reduced in a fixed order, so results do not depend on the number of threads.

use std::cell::Cell;

use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Storage, Tensor};
use rayon::prelude::*;

use anllm::Result;

/// Elements per parallel task: large enough to amortise scheduling, small enough to share a
/// tensor between threads.
const CHUNK: usize = 1 << 15;

/// The per-step constants of the update, in f32.
#[derive(Debug, Clone, Copy)]
pub(super) struct Coeffs {
    /// First-moment decay β₁.
    pub b1: f32,
    /// Second-moment decay β₂.
    pub b2: f32,
    /// `lr / (1 - β₁ᵗ)`.
    pub step_size: f32,
    /// `1 / sqrt(1 - β₂ᵗ)`.
    pub inv_bc2_sqrt: f32,
    /// Denominator epsilon.
    pub eps: f32,
    /// Decoupled weight decay factor `1 - lr · wd`.
    pub decay: f32,
    /// Gradient clipping factor (1 without clipping).
    pub scale: f32,
}

/// Updates one contiguous run of elements: the AdamW formula, element by element.
fn update_chunk(c: &Coeffs, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    let n = p.len();
    let (m, v, g) = (&mut m[..n], &mut v[..n], &g[..n]);
    let (one_b1, one_b2) = (1.0 - c.b1, 1.0 - c.b2);
    for i in 0..n {
        let gi = g[i] * c.scale;
        let mi = c.b1 * m[i] + one_b1 * gi;
        let vi = c.b2 * v[i] + one_b2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        let denom = vi.sqrt() * c.inv_bc2_sqrt + c.eps;
        p[i] = p[i] * c.decay - c.step_size * (mi / denom);
    }
}

/// Updates a whole tensor's worth of slices, in parallel chunks.
pub(super) fn update_slices(c: &Coeffs, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    if p.len() <= CHUNK {
        update_chunk(c, p, m, v, g);
        return;
    }
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| update_chunk(c, p, m, v, g));
}

/// The in-place op: the parameter is the destination, the gradient the source; the moments
/// are borrowed for the one call.
struct FusedStep<'a> {
    coeffs: Coeffs,
    moments: Cell<Option<(&'a mut [f32], &'a mut [f32])>>,
}

impl InplaceOp2 for FusedStep<'_> {
    fn name(&self) -> &'static str {
        "anllm-fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let CpuStorage::F32(param) = s1 else {
            candle_core::bail!("fused AdamW: parameter is not f32")
        };
        let (Some((p0, p1)), Some((g0, g1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("fused AdamW: parameter or gradient is not contiguous")
        };
        let grad = &s2.as_slice::<f32>()?[g0..g1];
        let param = &mut param[p0..p1];
        let Some((m, v)) = self.moments.take() else {
            candle_core::bail!("fused AdamW: moments already used")
        };
        if grad.len() != param.len() || m.len() != param.len() || v.len() != param.len() {
            candle_core::bail!(
                "fused AdamW: {} parameters, {} gradients, {} / {} moments",
                param.len(),
                grad.len(),
                m.len(),
                v.len()
            )
        }
        update_slices(&self.coeffs, param, m, v, grad);
        Ok(())
    }
}

/// Whether `t` can be read or written by the fast path: CPU, f32, contiguous.
pub(super) fn is_fast(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.layout().contiguous_offsets().is_some()
}

/// `g` as a CPU f32 contiguous tensor (itself when it already is one).
pub(super) fn fast_grad(g: &Tensor) -> Result<Tensor> {
    if is_fast(g) {
        Ok(g.clone())
    } else {
        Ok(g.to_dtype(DType::F32)?.contiguous()?)
    }
}

/// Applies the update to `param` (CPU f32 contiguous) in place.
pub(super) fn apply(
    param: &Tensor,
    grad: &Tensor,
    m: &mut [f32],
    v: &mut [f32],
    coeffs: Coeffs,
) -> Result<()> {
    let op = FusedStep {
        coeffs,
        moments: Cell::new(Some((m, v))),
    };
    param.inplace_op2(grad, &op)?;
    Ok(())
}

/// Sum of squares of `x` in f64, with 8 independent accumulators (vectorizes, fixed order).
fn sum_sq_chunk(x: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut blocks = x.chunks_exact(8);
    for block in &mut blocks {
        for (a, &e) in acc.iter_mut().zip(block) {
            let e = f64::from(e);
            *a += e * e;
        }
    }
    let tail: f64 = blocks
        .remainder()
        .iter()
        .map(|&e| f64::from(e) * f64::from(e))
        .sum();
    acc.iter().sum::<f64>() + tail
}

/// Sum of squares of a CPU f32 contiguous tensor, in parallel, reduced in a fixed order.
pub(super) fn sum_sq(t: &Tensor) -> Result<f64> {
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) else {
        return Err(candle_core::Error::Msg("sum_sq: not a contiguous CPU tensor".into()).into());
    };
    let x = &cpu.as_slice::<f32>()?[a..b];
    let parts: Vec<f64> = x.par_chunks(CHUNK).map(sum_sq_chunk).collect();
    Ok(parts.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_sq_matches_naive_sum() {
        let x: Vec<f32> = (0..100_003)
            .map(|i| ((i % 17) as f32 - 8.0) * 0.1)
            .collect();
        let naive: f64 = x.iter().map(|&e| f64::from(e) * f64::from(e)).sum();
        let t = Tensor::from_slice(&x, x.len(), &candle_core::Device::Cpu).unwrap();
        assert!((sum_sq(&t).unwrap() - naive).abs() < 1e-9 * naive);
    }

    #[test]
    fn update_is_chunking_independent() {
        let c = Coeffs {
            b1: 0.9,
            b2: 0.999,
            step_size: 1e-3,
            inv_bc2_sqrt: 1.5,
            eps: 1e-8,
            decay: 0.99,
            scale: 0.5,
        };
        let n = 3 * CHUNK + 5;
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let (mut p1, mut m1, mut v1) = (vec![1f32; n], vec![0.1f32; n], vec![0.2f32; n]);
        let (mut p2, mut m2, mut v2) = (p1.clone(), m1.clone(), v1.clone());
        update_slices(&c, &mut p1, &mut m1, &mut v1, &g);
        update_chunk(&c, &mut p2, &mut m2, &mut v2, &g);
        assert_eq!((p1, m1, v1), (p2, m2, v2));
    }
}
