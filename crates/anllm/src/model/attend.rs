//! Attention for a few query rows over a long cache on CPU (decode): one pass over each KV
//! head's keys and values, shared by the query heads of its group, parallel over KV heads.
//!
//! candle's batched GEMM is built for large tiles; with 1–16 query rows against thousands of
//! keys it spends its time in packing and a 6-wide micro-kernel. This path reads each key and
//! value once per step, which is what bounds decode at depth.

#![allow(unsafe_code)] // std::arch via #[target_feature], guarded by runtime detection.

use candle_core::{CpuStorage, Device, Storage, Tensor};
use rayon::prelude::*;

use super::quant::has_avx2;
use crate::cache::LayerStore;
use crate::{Error, Result};

/// Most new rows for which this path is used.
pub const MAX_ROWS: usize = 16;

/// q: [kv_heads, groups * t, hd] (row = g * t + i), mask: additive [t, n] or None.
/// Returns [kv_heads, groups * t, hd].
pub fn attend(q: &Tensor, store: &LayerStore, mask: Option<&Tensor>, t: usize) -> Result<Tensor> {
    let (kv_heads, rows, hd) = q.dims3()?;
    let n = store.len();
    let cap = store.capacity();
    let qs: Vec<f32> = q.contiguous()?.flatten_all()?.to_vec1()?;
    let mask: Option<Vec<f32>> = match mask {
        Some(m) => Some(m.flatten_all()?.to_vec1()?),
        None => None,
    };
    let (k_all, v_all) = store.raw();
    let (k_guard, k_layout) = k_all.storage_and_layout();
    let (v_guard, v_layout) = v_all.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(ks)), Storage::Cpu(CpuStorage::F32(vs))) =
        (&*k_guard, &*v_guard)
    else {
        return Err(Error::unsupported(
            "CPU attention on a non-f32 or non-CPU cache",
        ));
    };
    let ks = &ks[k_layout.start_offset()..];
    let vs = &vs[v_layout.start_offset()..];
    let scale = 1.0 / (hd as f32).sqrt();
    // Split every head's keys into spans so that all threads have work even with fewer KV
    // heads than threads (flash-decoding); spans are merged with their softmax statistics.
    let target_tasks = 4 * rayon::current_num_threads();
    let span = n.div_ceil(target_tasks.div_ceil(kv_heads)).max(MIN_SPAN);
    let spans = n.div_ceil(span);
    let partials: Vec<Partial> = (0..kv_heads * spans)
        .into_par_iter()
        .map(|task| {
            let (h, s) = (task / spans, task % spans);
            let keys = s * span..n.min((s + 1) * span);
            let head = Head {
                q: &qs[h * rows * hd..][..rows * hd],
                k: &ks[h * cap * hd..][keys.start * hd..keys.end * hd],
                v: &vs[h * cap * hd..][keys.start * hd..keys.end * hd],
                hd,
                n,
                first: keys.start,
            };
            head.run(mask.as_deref(), t, scale)
        })
        .collect();
    drop((k_guard, v_guard));
    let mut out = vec![0f32; kv_heads * rows * hd];
    for (h, dst) in out.chunks_exact_mut(rows * hd).enumerate() {
        merge(&partials[h * spans..(h + 1) * spans], hd, dst);
    }
    Ok(Tensor::from_vec(out, (kv_heads, rows, hd), &Device::Cpu)?)
}

/// Fewest keys per task.
const MIN_SPAN: usize = 64;

/// Softmax statistics of one span of keys: per row the max score, the sum of exp(score − max)
/// and the exp-weighted sum of values.
struct Partial {
    max: Vec<f32>,
    sum: Vec<f32>,
    acc: Vec<f32>, // [rows, hd]
}

/// Combines spans: out = Σ e^(m_s − M)·acc_s / Σ e^(m_s − M)·l_s per row.
fn merge(parts: &[Partial], hd: usize, dst: &mut [f32]) {
    for (r, out) in dst.chunks_exact_mut(hd).enumerate() {
        let max = parts
            .iter()
            .map(|p| p.max[r])
            .fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            continue; // nothing visible: zero output, as a fully masked softmax row gives
        }
        let mut total = 0.0;
        for p in parts {
            let w = (p.max[r] - max).exp();
            total += w * p.sum[r];
            axpy(w, &p.acc[r * hd..(r + 1) * hd], out);
        }
        let inv = 1.0 / total;
        out.iter_mut().for_each(|x| *x *= inv);
    }
}

struct Head<'a> {
    q: &'a [f32], // [rows, hd]
    k: &'a [f32], // [span, hd]
    v: &'a [f32], // [span, hd]
    hd: usize,
    n: usize,
    first: usize, // cache slot of the span's first key
}

impl Head<'_> {
    fn run(&self, mask: Option<&[f32]>, t: usize, scale: f32) -> Partial {
        let rows = self.q.len() / self.hd;
        let span = self.k.len() / self.hd;
        let mut scores = vec![0f32; rows * span];
        for (j, key) in self.k.chunks_exact(self.hd).enumerate() {
            for (r, q) in self.q.chunks_exact(self.hd).enumerate() {
                let bias = mask.map_or(0.0, |m| m[(r % t) * self.n + self.first + j]);
                scores[r * span + j] = dot(q, key) * scale + bias;
            }
        }
        let mut max = vec![f32::NEG_INFINITY; rows];
        let mut sum = vec![0f32; rows];
        for ((row, m), l) in scores.chunks_exact_mut(span).zip(&mut max).zip(&mut sum) {
            (*m, *l) = exp_shifted(row);
        }
        let mut acc = vec![0f32; rows * self.hd];
        for (j, value) in self.v.chunks_exact(self.hd).enumerate() {
            for (r, out) in acc.chunks_exact_mut(self.hd).enumerate() {
                let p = scores[r * span + j];
                if p != 0.0 {
                    axpy(p, value, out);
                }
            }
        }
        Partial { max, sum, acc }
    }
}

/// Replaces `row` by exp(row − max) and returns (max, Σ); all zeros when fully masked.
fn exp_shifted(row: &mut [f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return (max, 0.0);
    }
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    (max, sum)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { simd::dot(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { simd::axpy(alpha, x, y) };
    }
    y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
}

#[cfg(target_arch = "x86_64")]
mod simd {
    /// Same code as the scalar versions, compiled with AVX2/FMA so LLVM vectorizes it 8-wide.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                acc[i] = x[i].mul_add(y[i], acc[i]);
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
        for (y, x) in y.iter_mut().zip(x) {
            *y = alpha.mul_add(*x, *y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 2000) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn dot_and_axpy_match_the_scalar_reference_at_every_tail_length() {
        for n in [0, 1, 7, 8, 9, 16, 63, 64, 65] {
            let (a, b) = (values(n, 1), values(n, 2));
            let scalar: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            // f32 accumulation in a different order: a few ulps of the sum of |products|.
            assert!(
                (f64::from(dot(&a, &b)) - scalar).abs() < 1e-5 * (n as f64 + 1.0),
                "n={n}"
            );
            let mut y = b.clone();
            axpy(0.37, &a, &mut y);
            for i in 0..n {
                let want = 0.37f32.mul_add(a[i], b[i]);
                assert!((y[i] - want).abs() <= 1e-6, "n={n} i={i}");
            }
        }
    }
}
