//! CPU matmul kernels for the GGUF types candle 0.11 runs slowly or less exactly.
//!
//! * `Q4_1` weights: candle has no SIMD path for Q4_1 (scalar `vec_dot_unopt`), which made the
//!   default model's decode ~30× slower than llama.cpp. We run llama.cpp's scheme instead:
//!   activations quantized per 32-block to Q8_1, integer dot products with AVX2.
//! * `Q8_0` LM head: dotted against f32 activations (no activation quantization), so the
//!   logits equal those of the dequantized f32 head up to summation order.
//!
//! Both fall back to portable scalar code without AVX2/FMA. Work is split over output rows
//! with rayon (whose pool size the CLI's `--threads` sets).

#![allow(unsafe_code)] // std::arch intrinsics, guarded by runtime feature detection.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use half::f16;
use rayon::prelude::*;

use crate::{Error, Result};

const BLOCK: usize = 32;
/// From this many activation rows on, dequantize and use f32 GEMM.
const GEMM_MIN_ROWS: usize = 32;
/// Output rows per rayon task.
const ROWS_PER_TASK: usize = 16;

/// Storage of one quantized weight matrix `[out, in]`.
#[derive(Debug, Clone)]
enum Blocks {
    /// Q4_1: per block (scale d, min m) as stored (f16, to keep the bytes read per token at
    /// the file's 20 per 32 weights) and 16 bytes of nibbles (low nibbles = elements 0..16).
    Q4_1 {
        scales: Vec<[f16; 2]>,
        nibbles: Vec<[u8; 16]>,
    },
    /// Q8_0: per block scale d and 32 signed bytes.
    Q8_0 {
        scales: Vec<f32>,
        quants: Vec<[i8; 32]>,
    },
}

/// A quantized weight matrix with our own CPU kernel.
#[derive(Debug, Clone)]
pub struct QuantMatrix {
    blocks: Blocks,
    out_dim: usize,
    in_dim: usize,
}

impl QuantMatrix {
    /// Takes over a Q4_1 or Q8_0 tensor `[out, in]`; `None` for other types.
    pub fn from_qtensor(q: &QTensor) -> Result<Option<Self>> {
        let (out_dim, in_dim) = q.shape().dims2()?;
        if in_dim % BLOCK != 0 {
            return Ok(None);
        }
        let data = q.data()?;
        let blocks = match q.dtype() {
            GgmlDType::Q4_1 => {
                let (scales, nibbles) = data
                    .chunks_exact(20)
                    .map(|b| {
                        let d = f16::from_le_bytes([b[0], b[1]]);
                        let m = f16::from_le_bytes([b[2], b[3]]);
                        let mut qs = [0u8; 16];
                        qs.copy_from_slice(&b[4..20]);
                        ([d, m], qs)
                    })
                    .unzip();
                Blocks::Q4_1 { scales, nibbles }
            }
            GgmlDType::Q8_0 => {
                let (scales, quants) = data
                    .chunks_exact(34)
                    .map(|b| {
                        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                        let mut qs = [0i8; 32];
                        for (q, &byte) in qs.iter_mut().zip(&b[2..34]) {
                            *q = byte as i8;
                        }
                        (d, qs)
                    })
                    .unzip();
                Blocks::Q8_0 { scales, quants }
            }
            _ => return Ok(None),
        };
        Ok(Some(Self {
            blocks,
            out_dim,
            in_dim,
        }))
    }

    /// Stacks matrices of the same type and input width along the output axis (fused QKV).
    pub fn concat(parts: &[&QuantMatrix]) -> Option<QuantMatrix> {
        let first = parts.first()?;
        let mut out = QuantMatrix {
            blocks: first.blocks.clone(),
            out_dim: first.out_dim,
            in_dim: first.in_dim,
        };
        for p in &parts[1..] {
            if p.in_dim != out.in_dim {
                return None;
            }
            match (&mut out.blocks, &p.blocks) {
                (
                    Blocks::Q4_1 { scales, nibbles },
                    Blocks::Q4_1 {
                        scales: s,
                        nibbles: n,
                    },
                ) => {
                    scales.extend_from_slice(s);
                    nibbles.extend_from_slice(n);
                }
                (
                    Blocks::Q8_0 { scales, quants },
                    Blocks::Q8_0 {
                        scales: s,
                        quants: q,
                    },
                ) => {
                    scales.extend_from_slice(s);
                    quants.extend_from_slice(q);
                }
                _ => return None,
            }
            out.out_dim += p.out_dim;
        }
        Some(out)
    }

    /// The weights as a dense f32 tensor `[out, in]`.
    pub fn dequantize(&self) -> Result<Tensor> {
        let mut w = vec![0f32; self.out_dim * self.in_dim];
        w.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(b, dst)| match &self.blocks {
                Blocks::Q4_1 { scales, nibbles } => {
                    let ([d, m], q) = (scales[b].map(f16::to_f32), &nibbles[b]);
                    for j in 0..16 {
                        dst[j] = d * f32::from(q[j] & 0x0F) + m;
                        dst[j + 16] = d * f32::from(q[j] >> 4) + m;
                    }
                }
                Blocks::Q8_0 { scales, quants } => {
                    for (o, &q) in dst.iter_mut().zip(&quants[b]) {
                        *o = scales[b] * f32::from(q);
                    }
                }
            });
        Ok(Tensor::from_vec(
            w,
            (self.out_dim, self.in_dim),
            &Device::Cpu,
        )?)
    }

    /// x: [t, in] -> [t, out] (f32, CPU). Many rows (prefill) go through a dequantized f32
    /// GEMM, which beats integer dot products once the weights are reused across rows.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (t, in_dim) = x.dims2()?;
        if in_dim != self.in_dim {
            return Err(Error::Shape {
                op: "quantized matmul".into(),
                expected: format!("[t, {}]", self.in_dim),
                got: format!("[{t}, {in_dim}]"),
            });
        }
        if t >= GEMM_MIN_ROWS {
            return Ok(x.matmul(&self.dequantize()?.t()?)?);
        }
        let xs: Vec<f32> = x.contiguous()?.flatten_all()?.to_vec1()?;
        let mut out = vec![0f32; t * self.out_dim];
        // out is [t, out_dim]; we compute column-major chunks [out_dim, t] then transpose.
        let mut cols = vec![0f32; self.out_dim * t];
        let nb = in_dim / BLOCK;
        match &self.blocks {
            Blocks::Q4_1 { scales, nibbles } => {
                let acts: Vec<Q8_1Row> = xs.chunks_exact(in_dim).map(Q8_1Row::quantize).collect();
                for_each_output_row(&mut cols, t, |row, dst| {
                    let (s, q) = (&scales[row * nb..][..nb], &nibbles[row * nb..][..nb]);
                    for (d, a) in dst.iter_mut().zip(&acts) {
                        *d = dot_q4_1_q8_1(s, q, a);
                    }
                });
            }
            Blocks::Q8_0 { scales, quants } => {
                for_each_output_row(&mut cols, t, |row, dst| {
                    let (s, q) = (&scales[row * nb..][..nb], &quants[row * nb..][..nb]);
                    for (d, a) in dst.iter_mut().zip(xs.chunks_exact(in_dim)) {
                        *d = dot_q8_0_f32(s, q, a);
                    }
                });
            }
        }
        for (r, col) in cols.chunks_exact(t).enumerate() {
            for (ti, v) in col.iter().enumerate() {
                out[ti * self.out_dim + r] = *v;
            }
        }
        Ok(Tensor::from_vec(out, (t, self.out_dim), &Device::Cpu)?)
    }
}

/// Runs `f(output_row, dst)` over `cols: [out_dim, t]` in parallel, `ROWS_PER_TASK` rows a task.
fn for_each_output_row(cols: &mut [f32], t: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    cols.par_chunks_mut(ROWS_PER_TASK * t)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (i, dst) in chunk.chunks_exact_mut(t).enumerate() {
                f(task * ROWS_PER_TASK + i, dst);
            }
        });
}

/// One activation row quantized per 32-block: scale d, d·Σq, and the signed bytes.
struct Q8_1Row {
    scales: Vec<[f32; 2]>,
    quants: Vec<[i8; 32]>,
}

impl Q8_1Row {
    fn quantize(x: &[f32]) -> Self {
        let (scales, quants) = x
            .chunks_exact(BLOCK)
            .map(|b| {
                let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                let mut qs = [0i8; 32];
                let mut sum = 0i32;
                for (q, v) in qs.iter_mut().zip(b) {
                    *q = (v * inv).round() as i8;
                    sum += i32::from(*q);
                }
                // Scales rounded through f16 as ggml's block_q8_1 stores them.
                let d16 = f16::from_f32(d).to_f32();
                ([d16, f16::from_f32(d * sum as f32).to_f32()], qs)
            })
            .unzip();
        Self { scales, quants }
    }
}

/// Whether the AVX2/FMA/F16C kernels may run on this CPU.
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Σ over blocks of d_w·d_a·Σ(q_w·q_a) + m_w·(d_a·Σq_a).
fn dot_q4_1_q8_1(scales: &[[f16; 2]], nibbles: &[[u8; 16]], a: &Q8_1Row) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { avx2::dot_q4_1_q8_1(scales, nibbles, a) };
    }
    dot_q4_1_q8_1_scalar(scales, nibbles, a)
}

fn dot_q4_1_q8_1_scalar(scales: &[[f16; 2]], nibbles: &[[u8; 16]], a: &Q8_1Row) -> f32 {
    let mut total = 0f32;
    for (((s, q), sa), qa) in scales.iter().zip(nibbles).zip(&a.scales).zip(&a.quants) {
        let mut isum = 0i32;
        for j in 0..16 {
            isum += i32::from(q[j] & 0x0F) * i32::from(qa[j]);
            isum += i32::from(q[j] >> 4) * i32::from(qa[j + 16]);
        }
        total += s[0].to_f32() * sa[0] * isum as f32 + s[1].to_f32() * sa[1];
    }
    total
}

/// Σ over blocks of d_w·Σ(q_w·x).
fn dot_q8_0_f32(scales: &[f32], quants: &[[i8; 32]], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { avx2::dot_q8_0_f32(scales, quants, x) };
    }
    let mut total = 0f32;
    for ((d, q), xb) in scales.iter().zip(quants).zip(x.chunks_exact(BLOCK)) {
        let s: f32 = q.iter().zip(xb).map(|(&q, &v)| f32::from(q) * v).sum();
        total += d * s;
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{BLOCK, Q8_1Row};

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1_q8_1(scales: &[[f16; 2]], nibbles: &[[u8; 16]], a: &Q8_1Row) -> f32 {
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        for (((s, q), sa), qa) in scales.iter().zip(nibbles).zip(&a.scales).zip(&a.quants) {
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(
                (s[0].to_bits() as u32 | (s[1].to_bits() as u32) << 16) as i32,
            ));
            let (d, m) = (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)));
            // SAFETY: in-bounds block references.
            let p = unsafe { block_q4_1(q, qa, mask, ones) };
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sa[0]), p, acc);
            mins += m * sa[1];
        }
        unsafe { hsum(acc) + mins }
    }

    /// Σ(q_w·q_a) of one block as 8 partial i32 sums, converted to f32.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block_q4_1(q: &[u8; 16], qa: &[i8; 32], mask: __m128i, ones: __m256i) -> __m256 {
        // SAFETY: q is 16 bytes and qa 32 bytes; unaligned loads.
        let raw = unsafe { _mm_loadu_si128(q.as_ptr().cast()) };
        let lo = _mm_and_si128(raw, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
        let w = _mm256_set_m128i(hi, lo);
        let y = unsafe { _mm256_loadu_si256(qa.as_ptr().cast()) };
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w, y), ones))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q8_0_f32(scales: &[f32], quants: &[[i8; 32]], x: &[f32]) -> f32 {
        // Four independent accumulators (one per 8-lane quarter of a block): the weights are
        // scaled first, so no FMA waits on another within a block.
        let mut acc = [_mm256_setzero_ps(); 4];
        for ((d, q), xb) in scales.iter().zip(quants).zip(x.chunks_exact(BLOCK)) {
            let dv = _mm256_set1_ps(*d);
            for (k, acc) in acc.iter_mut().enumerate() {
                // SAFETY: q has 32 bytes and xb 32 floats; k*8 + 8 <= 32.
                let q8 = unsafe { _mm_loadl_epi64(q.as_ptr().add(k * 8).cast()) };
                let wf = _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)));
                let xv = unsafe { _mm256_loadu_ps(xb.as_ptr().add(k * 8)) };
                *acc = _mm256_fmadd_ps(wf, xv, *acc);
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        unsafe { hsum(sum) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-1, 1].
    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 + seed) * 12.9898).sin())
            .collect()
    }

    /// Max |ours − dequantized f32 matmul| relative to max |reference|.
    fn relative_error(dtype: GgmlDType, rows: usize) -> f32 {
        let cpu = &Device::Cpu;
        // 320 = 10 blocks: two 4-block scale batches and a tail of 2.
        let w = Tensor::from_vec(values(40 * 320, 0.5), (40, 320), cpu).unwrap();
        let x = Tensor::from_vec(values(rows * 320, 7.0), (rows, 320), cpu).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let reference = x.matmul(&q.dequantize(cpu).unwrap().t().unwrap()).unwrap();
        let ours = QuantMatrix::from_qtensor(&q)
            .unwrap()
            .unwrap()
            .forward(&x)
            .unwrap();
        let max = |t: Tensor| {
            t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        max((ours - &reference).unwrap()) / max(reference)
    }

    #[test]
    fn q4_1_kernel_matches_dequantized_matmul_to_activation_precision() {
        // Decode rows quantize activations to 8 bits (as llama.cpp does): ~1% agreement.
        let err = relative_error(GgmlDType::Q4_1, 3);
        assert!(err < 0.02, "relative error {err}");
    }

    #[test]
    fn q4_1_prefill_rows_use_exact_dequantized_gemm() {
        let err = relative_error(GgmlDType::Q4_1, GEMM_MIN_ROWS + 3);
        assert!(err < 1e-5, "relative error {err}");
    }

    #[test]
    fn q8_0_kernel_matches_dequantized_matmul_exactly() {
        let err = relative_error(GgmlDType::Q8_0, 3);
        assert!(err < 1e-5, "relative error {err}");
    }

    #[test]
    fn q4_1_simd_kernel_equals_scalar_kernel() {
        let cpu = &Device::Cpu;
        let w = Tensor::from_vec(values(2 * 320, 0.5), (2, 320), cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let m = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
        let Blocks::Q4_1 { scales, nibbles } = &m.blocks else {
            panic!("not Q4_1")
        };
        let a = Q8_1Row::quantize(&values(320, 3.0));
        let (simd, scalar) = (
            dot_q4_1_q8_1(&scales[..10], &nibbles[..10], &a),
            dot_q4_1_q8_1_scalar(&scales[..10], &nibbles[..10], &a),
        );
        assert!(
            (simd - scalar).abs() <= 1e-4 * scalar.abs().max(1.0),
            "{simd} vs {scalar}"
        );
    }

    #[test]
    fn concat_stacks_output_rows() {
        let cpu = &Device::Cpu;
        let w = Tensor::from_vec(values(64 * 64, 1.0), (64, 64), cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let m = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
        let both = QuantMatrix::concat(&[&m, &m]).unwrap();
        let x = Tensor::from_vec(values(64, 2.0), (1, 64), cpu).unwrap();
        let one: Vec<f32> = m
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let two: Vec<f32> = both
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!([one.clone(), one].concat(), two);
    }
}
