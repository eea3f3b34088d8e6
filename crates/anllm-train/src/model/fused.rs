//! Fused CPU kernels with an explicit backward: a plain softmax over the last axis and the
//! cross-entropy over the logits (`[vocab, n]`, the widest tensor of a training step), plus the
//! [`Kernels`] switch and the f32/f64 helpers that [`fused_layer`](super::fused_layer) and
//! [`fused_attn`](super::fused_attn) share. candle's composed ops run every element through
//! several passes and allocate a zero gradient per op; these run one or two parallel passes.
//!
//! Unlike candle's own fused kernels (`softmax_last_dim`, `rms_norm`, `rope`), every op here
//! implements [`CustomOp1::bwd`] / a gradient op, so it never drops the gradient. They run on
//! the CPU in f32 and f64; elsewhere [`Kernels::resolve`] picks the composed ops.

use std::sync::Arc;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, WithDType, bail,
};
use rayon::prelude::*;

use anllm::Result;

/// Which implementation of softmax and cross-entropy a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// The fused CPU kernels of this module where they apply (CPU, f32 or f64), composed ops
    /// elsewhere.
    #[default]
    Fused,
    /// Only candle's elementary differentiable ops (the reference; any device and dtype).
    Composed,
}

impl Kernels {
    /// Whether the fused kernels run for tensors like `t`.
    pub fn resolve(self, t: &Tensor) -> Kernels {
        match (self, t.device().is_cpu(), t.dtype()) {
            (Kernels::Fused, true, DType::F32 | DType::F64) => Kernels::Fused,
            _ => Kernels::Composed,
        }
    }
}

/// Rows per parallel task: enough work per task to amortize rayon's scheduling.
pub(super) const ROWS_PER_TASK: usize = 64;

/// f32 / f64 arithmetic the kernels need beyond [`WithDType`].
pub(super) trait Float: WithDType {
    const ZERO: Self;
    const ONE: Self;
    const NEG_INF: Self;
    fn ln(self) -> Self;
    /// Replaces each `x` by `exp(x − shift)` (−∞ by 0) and returns their sum: vectorized for
    /// f32 ([`anllm::vexp`]), libm for f64.
    fn exp_sub_sum(xs: &mut [Self], shift: Self) -> Self;
}

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INF: Self = f32::NEG_INFINITY;
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn exp_sub_sum(xs: &mut [Self], shift: Self) -> Self {
        anllm::vexp::exp_sub_sum(xs, shift)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INF: Self = f64::NEG_INFINITY;
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn exp_sub_sum(xs: &mut [Self], shift: Self) -> Self {
        xs.iter_mut()
            .map(|x| {
                *x = (*x - shift).exp();
                *x
            })
            .sum()
    }
}

/// Runs `$f` on the f32 or f64 slices of the CPU storages given (all of one dtype), else fails
/// with `$name`.
macro_rules! dispatch {
    ($name:expr, ($($s:ident),+) => $f:expr) => {
        match ($($s,)+) {
            ($(CpuStorage::F32($s),)+) => $f,
            ($(CpuStorage::F64($s),)+) => $f,
            _ => bail!("{}: f32 or f64 only", $name),
        }
    };
}
pub(super) use dispatch;

pub(super) fn contiguous<'a, T>(src: &'a [T], layout: &Layout) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&src[start..end]),
        None => bail!("fused kernel input must be contiguous"),
    }
}

pub(super) fn max_of<T: Float>(a: T, b: T) -> T {
    if b > a { b } else { a }
}

/// Softmax over the last axis with a backward pass.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(SoftmaxLast)?)
}

struct SoftmaxLast;

fn softmax_rows<T: Float>(src: &[T], layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
    let src = contiguous(src, layout)?;
    let n = layout.dims().last().copied().unwrap_or(1).max(1);
    let mut dst = vec![T::ZERO; src.len()];
    par_rows(src, n, &mut dst, |_, s, d| {
        d.copy_from_slice(s);
        softmax_in_place(d);
    });
    Ok((T::to_cpu_storage_owned(dst), layout.shape().clone()))
}

/// Replaces `row` by its softmax.
pub(super) fn softmax_in_place<T: Float>(row: &mut [T]) {
    let max = row.iter().copied().fold(T::NEG_INF, max_of);
    let sum = T::exp_sub_sum(row, max);
    row.iter_mut().for_each(|y| *y /= sum);
}

/// Rows of `x: [rows, h]` in parallel blocks of [`ROWS_PER_TASK`], `f(row index, x row, out
/// row)` writing the same row of `out` (same shape).
pub(super) fn par_rows<T: Float>(
    x: &[T],
    h: usize,
    out: &mut [T],
    f: impl Fn(usize, &[T], &mut [T]) + Sync,
) {
    out.par_chunks_mut(h * ROWS_PER_TASK)
        .zip(x.par_chunks(h * ROWS_PER_TASK))
        .enumerate()
        .for_each(|(block, (o, x))| {
            for (r, (o, x)) in o.chunks_mut(h).zip(x.chunks(h)).enumerate() {
                f(block * ROWS_PER_TASK + r, x, o);
            }
        });
}

impl CustomOp1 for SoftmaxLast {
    fn name(&self) -> &'static str {
        "anllm-softmax-last"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch!(self.name(), (s) => softmax_rows(s, l))
    }

    /// `dx = y · (g - Σ g·y)`: zero wherever `y` is (a blocked key).
    fn bwd(&self, _: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = SoftmaxGrad { scale: 1.0 };
        Ok(Some(y.detach().apply_op2(&g.contiguous()?, grad)?))
    }
}

/// Cross-entropy of each column of `logits_t: [vocab, n]` (the LM head's output transposed,
/// so the head's weight gradient comes out in its own `[vocab, hidden]` layout) against
/// `targets` (n ids) -> `[n]`, with a backward pass.
pub fn cross_entropy_cols(logits_t: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let op = CrossEntropyCols {
        targets: Arc::new(targets.to_vec()),
    };
    Ok(logits_t.contiguous()?.apply_op1(op)?)
}

struct CrossEntropyCols {
    targets: Arc<Vec<u32>>,
}

/// Checks the layout `[vocab, n]` against the targets; returns `(vocab, n)`.
fn cols_dims(layout: &Layout, targets: &[u32]) -> candle_core::Result<(usize, usize)> {
    let (vocab, n) = layout.shape().dims2()?;
    if targets.len() != n || targets.iter().any(|&t| t as usize >= vocab) {
        bail!(
            "cross-entropy: {} targets (< {vocab}) for {n} columns",
            targets.len()
        );
    }
    Ok((vocab, n))
}

/// Per-column accumulators of `x: [rows, n]`: `per_block` folds each block of rows into a
/// fresh `[n]` (from `init`), and the blocks are merged in block order (deterministic).
fn fold_row_blocks<T: Float>(
    x: &[T],
    n: usize,
    init: T,
    per_block: impl Fn(&mut [T], &[T]) + Sync,
    merge: impl Fn(T, T) -> T,
) -> Vec<T> {
    let partial: Vec<Vec<T>> = x
        .par_chunks(n * ROWS_PER_TASK)
        .map(|block| {
            let mut acc = vec![init; n];
            per_block(&mut acc, block);
            acc
        })
        .collect();
    partial.into_iter().fold(vec![init; n], |acc, p| {
        acc.into_iter().zip(p).map(|(a, b)| merge(a, b)).collect()
    })
}

/// `log Σ_v exp(x[v, j])` of each column j of `x: [vocab, n]`, shifted by the column maximum;
/// the exponentials run a row at a time, vectorized.
pub(super) fn column_lse<T: Float>(x: &[T], n: usize) -> Vec<T> {
    let max = fold_row_blocks(
        x,
        n,
        T::NEG_INF,
        |m, block| {
            for row in block.chunks(n) {
                m.iter_mut().zip(row).for_each(|(m, &v)| *m = max_of(*m, v));
            }
        },
        max_of,
    );
    let sum = fold_row_blocks(
        x,
        n,
        T::ZERO,
        |acc, block| {
            let mut tmp = vec![T::ZERO; n];
            for row in block.chunks(n) {
                (tmp.iter_mut().zip(row).zip(&max)).for_each(|((t, &v), &m)| *t = v - m);
                T::exp_sub_sum(&mut tmp, T::ZERO);
                acc.iter_mut().zip(&tmp).for_each(|(a, &t)| *a += t);
            }
        },
        |a, b| a + b,
    );
    max.iter().zip(sum).map(|(&m, s)| m + s.ln()).collect()
}

fn cross_entropy_fwd<T: Float>(
    src: &[T],
    layout: &Layout,
    targets: &[u32],
) -> candle_core::Result<(CpuStorage, Shape)> {
    let src = contiguous(src, layout)?;
    let (_, n) = cols_dims(layout, targets)?;
    let lse = column_lse(src, n);
    let ce: Vec<T> = (0..n)
        .map(|j| lse[j] - src[targets[j] as usize * n + j])
        .collect();
    Ok((T::to_cpu_storage_owned(ce), Shape::from(n)))
}

impl CustomOp1 for CrossEntropyCols {
    fn name(&self) -> &'static str {
        "anllm-cross-entropy-cols"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch!(self.name(), (s) => cross_entropy_fwd(s, l, &self.targets))
    }

    /// `dlogits[v, j] = g[j] · (softmax[v, j] - [v = target j])`, one fused pass.
    fn bwd(&self, x: &Tensor, ce: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let op = CrossEntropyColsGrad {
            targets: Arc::clone(&self.targets),
        };
        Ok(Some(x.detach().apply_op3(
            &ce.detach(),
            &g.contiguous()?,
            op,
        )?))
    }
}

/// The gradient of [`CrossEntropyCols`] from (logits, ce, upstream gradient).
struct CrossEntropyColsGrad {
    targets: Arc<Vec<u32>>,
}

fn cross_entropy_bwd<T: Float>(
    (x, xl): (&[T], &Layout),
    (ce, cel): (&[T], &Layout),
    (g, gl): (&[T], &Layout),
    targets: &[u32],
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (x, ce, g) = (contiguous(x, xl)?, contiguous(ce, cel)?, contiguous(g, gl)?);
    let (_, n) = cols_dims(xl, targets)?;
    // logsumexp of column j, from its loss and its target logit.
    let lse: Vec<T> = (0..n)
        .map(|j| ce[j] + x[targets[j] as usize * n + j])
        .collect();
    let mut out = vec![T::ZERO; x.len()];
    out.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(x.par_chunks(n * ROWS_PER_TASK))
        .for_each(|(out, x)| {
            for (o_row, x_row) in out.chunks_mut(n).zip(x.chunks(n)) {
                for ((o, &xv), &l) in o_row.iter_mut().zip(x_row).zip(&lse) {
                    *o = xv - l;
                }
                T::exp_sub_sum(o_row, T::ZERO);
                o_row.iter_mut().zip(g).for_each(|(o, &gj)| *o *= gj);
            }
        });
    // The one-hot part: minus g at each column's target.
    for (j, &t) in targets.iter().enumerate() {
        out[t as usize * n + j] -= g[j];
    }
    Ok((T::to_cpu_storage_owned(out), xl.shape().clone()))
}

impl CustomOp3 for CrossEntropyColsGrad {
    fn name(&self) -> &'static str {
        "anllm-cross-entropy-cols-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        ce: &CpuStorage,
        cel: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let t = &self.targets;
        dispatch!(self.name(), (x, ce, g) => cross_entropy_bwd((x, xl), (ce, cel), (g, gl), t))
    }
}

/// The gradient of a softmax over the last axis, times `scale` (the backward of
/// [`softmax_last`] with 1, and of [`fused_attn::masked_softmax`](super::fused_attn) with its
/// score scale): `dx = scale · y · (g − Σ g·y)` from (y, g), one pass.
pub(super) struct SoftmaxGrad {
    pub(super) scale: f64,
}

fn softmax_grad<T: Float>(y: &[T], yl: &Layout, g: &[T], gl: &Layout, scale: f64) -> Out {
    let (y, g) = (contiguous(y, yl)?, contiguous(g, gl)?);
    let t = yl.dims().last().copied().unwrap_or(1).max(1);
    let scale = T::from_f64(scale);
    let mut dx = vec![T::ZERO; y.len()];
    par_rows(y, t, &mut dx, |r, y, dx| {
        let g = &g[r * t..(r + 1) * t];
        let dot = y.iter().zip(g).fold(T::ZERO, |acc, (&y, &g)| acc + y * g);
        for ((d, &y), &g) in dx.iter_mut().zip(y).zip(g) {
            *d = scale * y * (g - dot);
        }
    });
    Ok((T::to_cpu_storage_owned(dx), yl.shape().clone()))
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "anllm-softmax-grad"
    }

    fn cpu_fwd(&self, y: &CpuStorage, yl: &Layout, g: &CpuStorage, gl: &Layout) -> Out {
        if yl.shape() != gl.shape() {
            bail!(
                "softmax gradient: y {:?} against g {:?}",
                yl.dims(),
                gl.dims()
            );
        }
        dispatch!(self.name(), (y, g) => softmax_grad(y, yl, g, gl, self.scale))
    }
}

/// What a CPU kernel returns: its output storage and shape.
pub(super) type Out = candle_core::Result<(CpuStorage, Shape)>;
