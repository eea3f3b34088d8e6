//! Fused CPU kernels for the per-layer elementwise work of a training step, each with an
//! explicit backward: RMSNorm (input and weight gradients), RoPE (its backward is the rotation
//! by the opposite angle) and SwiGLU's `silu(gate) · up`. The composed versions in [`ops`]
//! run 5–10 candle passes per op and as many in the backward, each a fresh buffer, and their
//! backward also computes gradients of the RoPE tables, which are constants. These run one
//! parallel pass forward and one per gradient.
//!
//! f32 and f64 on the CPU ([`Kernels::resolve`](super::Kernels::resolve)); the model falls
//! back to [`ops`] elsewhere. Checked against the composed ops, values and gradients
//! (`tests/train_grad/kernels.rs`).
//!
//! [`ops`]: super::ops

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, bail};
use rayon::prelude::*;

use super::fused::{Float, Out, ROWS_PER_TASK, contiguous, dispatch, par_rows};
use anllm::Result;

/// RMSNorm of each row of `x: [n, hidden]` times `weight: [hidden]`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(x.contiguous()?
        .apply_op2(&weight.contiguous()?, RmsNorm { eps })?)
}

#[derive(Clone, Copy)]
struct RmsNorm {
    eps: f64,
}

/// `1 / sqrt(mean(x²) + eps)` of one row.
fn inv_rms<T: Float>(row: &[T], eps: f64) -> T {
    let ss: f64 = row.iter().map(|v| v.to_f64() * v.to_f64()).sum();
    T::from_f64(1.0 / (ss / row.len() as f64 + eps).sqrt())
}

fn norm_fwd<T: Float>(x: &[T], xl: &Layout, w: &[T], wl: &Layout, eps: f64) -> Out {
    let (x, w) = (contiguous(x, xl)?, contiguous(w, wl)?);
    let h = w.len();
    if xl.dims().last() != Some(&h) {
        bail!("rms-norm: rows of {:?} against a weight of {h}", xl.dims());
    }
    let mut y = vec![T::ZERO; x.len()];
    par_rows(x, h, &mut y, |_, x, y| {
        let r = inv_rms(x, eps);
        for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
            *y = x * r * w;
        }
    });
    Ok((T::to_cpu_storage_owned(y), xl.shape().clone()))
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "anllm-rms-norm"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout, w: &CpuStorage, wl: &Layout) -> Out {
        dispatch!(self.name(), (x, w) => norm_fwd(x, xl, w, wl, self.eps))
    }

    /// With `x̂ = x·r`: `dx = r·(g·w − x̂·mean(g·w·x̂))`, `dw = Σ_rows g·x̂`.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (x, w, g) = (x.detach(), w.detach(), g.contiguous()?);
        let dx = x.apply_op3(&w, &g, RmsNormGradX(*self))?;
        let dw = x.apply_op2(&g, RmsNormGradW(*self))?;
        Ok((Some(dx), Some(dw)))
    }
}

struct RmsNormGradX(RmsNorm);

fn norm_grad_x<T: Float>(
    x: (&[T], &Layout),
    w: (&[T], &Layout),
    g: (&[T], &Layout),
    eps: f64,
) -> Out {
    let (x, w, g, shape) = (
        contiguous(x.0, x.1)?,
        contiguous(w.0, w.1)?,
        contiguous(g.0, g.1)?,
        x.1.shape().clone(),
    );
    let h = w.len();
    let mut dx = vec![T::ZERO; x.len()];
    par_rows(x, h, &mut dx, |i, x, dx| {
        let r = inv_rms(x, eps);
        let g = &g[i * h..(i + 1) * h];
        let dot: f64 = (0..h).map(|k| (g[k] * w[k] * x[k] * r).to_f64()).sum();
        let mean = T::from_f64(dot / h as f64);
        for k in 0..h {
            dx[k] = r * (g[k] * w[k] - x[k] * r * mean);
        }
    });
    Ok((T::to_cpu_storage_owned(dx), shape))
}

impl CustomOp3 for RmsNormGradX {
    fn name(&self) -> &'static str {
        "anllm-rms-norm-grad-x"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Out {
        dispatch!(self.name(), (x, w, g) => norm_grad_x((x, xl), (w, wl), (g, gl), self.0.eps))
    }
}

struct RmsNormGradW(RmsNorm);

fn norm_grad_w<T: Float>(x: &[T], xl: &Layout, g: &[T], gl: &Layout, eps: f64) -> Out {
    let (x, g) = (contiguous(x, xl)?, contiguous(g, gl)?);
    let h = *xl.dims().last().unwrap_or(&1);
    // Partial sums per block of rows, added in block order (deterministic).
    let partial: Vec<Vec<T>> = x
        .par_chunks(h * ROWS_PER_TASK)
        .zip(g.par_chunks(h * ROWS_PER_TASK))
        .map(|(x, g)| {
            let mut acc = vec![T::ZERO; h];
            for (x, g) in x.chunks(h).zip(g.chunks(h)) {
                let r = inv_rms(x, eps);
                for ((a, &x), &g) in acc.iter_mut().zip(x).zip(g) {
                    *a += g * x * r;
                }
            }
            acc
        })
        .collect();
    let dw = partial.into_iter().fold(vec![T::ZERO; h], |acc, p| {
        acc.into_iter().zip(p).map(|(a, b)| a + b).collect()
    });
    Ok((T::to_cpu_storage_owned(dw), Shape::from(h)))
}

impl CustomOp2 for RmsNormGradW {
    fn name(&self) -> &'static str {
        "anllm-rms-norm-grad-w"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout, g: &CpuStorage, gl: &Layout) -> Out {
        dispatch!(self.name(), (x, g) => norm_grad_w(x, xl, g, gl, self.0.eps))
    }
}

/// HF (half-rotation) RoPE of `x: [b, t, heads, head_dim]` with `cos`, `sin`:
/// `[b, t, 1, head_dim]` (`sin` holding `[−s, s]`), as [`ops::rope`](super::ops::rope).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let op = Rope { inverse: false };
    Ok(x.contiguous()?
        .apply_op3(&cos.contiguous()?, &sin.contiguous()?, op)?)
}

/// `y = x·cos + swap_halves(x)·sin`; with `inverse`, the rotation by the opposite angle
/// (`sin` negated), which is also its backward: `dx = g·cos − swap_halves(g)·sin`.
struct Rope {
    inverse: bool,
}

fn rope_fwd<T: Float>(
    x: (&[T], &Layout),
    c: (&[T], &Layout),
    s: (&[T], &Layout),
    inverse: bool,
) -> Out {
    let (shape, dims) = (x.1.shape().clone(), x.1.dims().to_vec());
    let (x, c, s) = (
        contiguous(x.0, x.1)?,
        contiguous(c.0, c.1)?,
        contiguous(s.0, s.1)?,
    );
    let (hd, heads) = match dims.as_slice() {
        [_, _, h, d] if d % 2 == 0 => (*d, *h),
        _ => bail!("rope: x must be [b, t, heads, even head_dim], got {dims:?}"),
    };
    if c.len() * heads != x.len() || s.len() != c.len() {
        bail!("rope: tables of {} values for x {dims:?}", c.len());
    }
    let half = hd / 2;
    let sign = if inverse { T::ZERO - T::ONE } else { T::ONE };
    let mut y = vec![T::ZERO; x.len()];
    // One position (all its heads) per row.
    par_rows(x, hd * heads, &mut y, |p, x, y| {
        let (c, s) = (&c[p * hd..(p + 1) * hd], &s[p * hd..(p + 1) * hd]);
        for (x, y) in x.chunks(hd).zip(y.chunks_mut(hd)) {
            for k in 0..hd {
                let other = if k < half { x[k + half] } else { x[k - half] };
                y[k] = x[k] * c[k] + sign * other * s[k];
            }
        }
    });
    Ok((T::to_cpu_storage_owned(y), shape))
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "anllm-rope"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        c: &CpuStorage,
        cl: &Layout,
        s: &CpuStorage,
        sl: &Layout,
    ) -> Out {
        dispatch!(self.name(), (x, c, s) => rope_fwd((x, xl), (c, cl), (s, sl), self.inverse))
    }

    fn bwd(
        &self,
        _: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let inverse = Rope {
            inverse: !self.inverse,
        };
        let dx = g
            .contiguous()?
            .apply_op3(&cos.detach(), &sin.detach(), inverse)?;
        Ok((Some(dx), None, None))
    }
}

/// SwiGLU's gate: `silu(gate) · up`, both `[n, intermediate]`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)?)
}

struct SwiGlu;

/// `σ(x)` of every value into `out` (the exponentials vectorized for f32).
fn sigmoid_into<T: Float>(x: &[T], out: &mut [T]) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = T::ZERO - v);
    T::exp_sub_sum(out, T::ZERO);
    out.iter_mut().for_each(|o| *o = T::ONE / (T::ONE + *o));
}

/// What the SwiGLU kernels compute from (gate, up or g) and σ(gate).
#[derive(Clone, Copy)]
enum SwiGluPass {
    /// `silu(a) · b` (the forward).
    Forward,
    /// `g · up · silu'(gate)` from (gate, up, g): the gate's gradient.
    GradGate,
    /// `g · silu(gate)` from (gate, g): the up projection's gradient.
    GradUp,
}

fn swiglu_pass<T: Float>(a: &[T], b: &[T], g: &[T], pass: SwiGluPass) -> Vec<T> {
    let n = a.len();
    let mut out = vec![T::ZERO; n];
    let chunk = 4096;
    out.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| {
        let range = i * chunk..i * chunk + o.len();
        let (a, b) = (&a[range.clone()], &b[range.clone()]);
        sigmoid_into(a, o); // o = σ(gate)
        match pass {
            SwiGluPass::Forward | SwiGluPass::GradUp => {
                o.iter_mut()
                    .zip(a)
                    .zip(b)
                    .for_each(|((o, &x), &b)| *o = x * *o * b);
            }
            SwiGluPass::GradGate => {
                let g = &g[range];
                for (((o, &x), &u), &g) in o.iter_mut().zip(a).zip(b).zip(g) {
                    let s = *o;
                    *o = g * u * s * (T::ONE + x * (T::ONE - s));
                }
            }
        }
    });
    out
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "anllm-swiglu"
    }

    fn cpu_fwd(&self, a: &CpuStorage, al: &Layout, b: &CpuStorage, bl: &Layout) -> Out {
        if al.shape() != bl.shape() {
            bail!("swiglu: gate {:?} against up {:?}", al.dims(), bl.dims());
        }
        let out = dispatch!(self.name(), (a, b) => {
            let (a, b) = (contiguous(a, al)?, contiguous(b, bl)?);
            owned(swiglu_pass(a, b, &[], SwiGluPass::Forward))
        });
        Ok((out, al.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (gate, up, g) = (gate.detach(), up.detach(), g.contiguous()?);
        let dgate = gate.apply_op3(&up, &g, SwiGluGradGate)?;
        let dup = gate.apply_op2(&g, SwiGluGradUp)?;
        Ok((Some(dgate), Some(dup)))
    }
}

struct SwiGluGradGate;

impl CustomOp3 for SwiGluGradGate {
    fn name(&self) -> &'static str {
        "anllm-swiglu-grad-gate"
    }

    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Out {
        let out = dispatch!(self.name(), (a, b, g) => {
            let (a, b, g) = (contiguous(a, al)?, contiguous(b, bl)?, contiguous(g, gl)?);
            owned(swiglu_pass(a, b, g, SwiGluPass::GradGate))
        });
        Ok((out, al.shape().clone()))
    }
}

struct SwiGluGradUp;

impl CustomOp2 for SwiGluGradUp {
    fn name(&self) -> &'static str {
        "anllm-swiglu-grad-up"
    }

    fn cpu_fwd(&self, a: &CpuStorage, al: &Layout, g: &CpuStorage, gl: &Layout) -> Out {
        let out = dispatch!(self.name(), (a, g) => {
            let (a, g) = (contiguous(a, al)?, contiguous(g, gl)?);
            owned(swiglu_pass(a, g, &[], SwiGluPass::GradUp))
        });
        Ok((out, al.shape().clone()))
    }
}

/// The storage of an owned vector of f32 or f64.
fn owned<T: Float>(v: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(v)
}
