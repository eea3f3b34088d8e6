//! CPU matmul kernels for the GGUF types candle 0.11 runs slowly or less exactly.
//!
//! * `Q4_1` weights: candle has no SIMD path for Q4_1 (scalar `vec_dot_unopt`), which made the
//!   default model's decode ~30× slower than llama.cpp. We run llama.cpp's scheme instead:
//!   activations quantized per 32-block to Q8_1, integer dot products with AVX2.
//! * `Q8_0` LM head: dotted against f32 activations (no activation quantization), so the
//!   logits equal those of the dequantized f32 head up to summation order.
//! * Several rows below `GEMM_MIN_ROWS` (batched decode): multi-row kernels (`simd_rows.rs`)
//!   unpack each weight block once for up to four activation rows (Q4_1 ~2.2×, Q8_0 ~1.5×
//!   cheaper per row than the single-row kernels, which one row keeps).
//!
//! * One row (decode) on a CPU with AVX-512 VNNI: `simd512.rs` (two blocks per register, one
//!   `vpdpbusd` per pair, eight blocks' scales converted at once).
//! * Every matrix-vector kernel prefetches its weight stream [`crate::prefetch::AHEAD`] bytes
//!   ahead: a decode step reads each weight once, and without the hints the kernels waited on
//!   memory.
//!
//! Both fall back to portable scalar code without AVX2/FMA (`simd.rs`). Work is split over output rows
//! with rayon (whose pool size the CLI's `--threads` sets).

mod act;
mod simd;
mod simd512;
mod simd_rows;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_wide;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use half::f16;
use rayon::prelude::*;

use crate::{Error, Result};
use act::Q8_1Row;

pub(crate) use simd::has_avx2;
use simd::{dot_q4_1_q8_1, dot_q8_0_f32};
use simd_rows::{Q8_1Groups, dot_q4_1_q8_1_rows, dot_q8_0_f32_rows};
use simd512::{Q8_1Wide, has_avx512};

const BLOCK: usize = 32;
/// Blocks between a kernel's read position and its prefetch: [`crate::prefetch::AHEAD`] bytes
/// of the weight stream (16 nibble bytes per Q4_1 block, 32 quants per Q8_0 block). A block's
/// scales are fetched the same number of blocks ahead.
const Q4_1_AHEAD: usize = crate::prefetch::AHEAD / 16;
const Q8_0_AHEAD: usize = crate::prefetch::AHEAD / 32;

/// Prefetches the element `ahead` blocks past `block` in its weight row (nibbles, quants or
/// scales); past the row's end is fine, a prefetch never faults.
#[inline(always)]
fn prefetch_ahead<T>(block: &T, ahead: usize) {
    crate::prefetch::prefetch(std::ptr::from_ref(block).wrapping_add(ahead));
}

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

    /// Bytes of the blocks in memory (what a matrix-vector product reads).
    pub fn bytes(&self) -> usize {
        match &self.blocks {
            Blocks::Q4_1 { scales, nibbles } => scales.len() * 4 + nibbles.len() * 16,
            Blocks::Q8_0 { scales, quants } => scales.len() * 4 + quants.len() * 32,
        }
    }

    /// Rows of the matrix (outputs).
    pub fn out_dim(&self) -> usize {
        self.out_dim
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
            .for_each(|(b, dst)| self.dequantize_block(b, dst));
        Ok(Tensor::from_vec(
            w,
            (self.out_dim, self.in_dim),
            &Device::Cpu,
        )?)
    }

    /// Rows `ids` of the weights as f32 `[ids.len(), in]` (an embedding lookup in a tied
    /// table); an id past the rows is an error.
    pub fn dequantize_rows(&self, ids: &[u32]) -> Result<Tensor> {
        let per_row = self.in_dim / BLOCK;
        let mut w = vec![0f32; ids.len() * self.in_dim];
        for (&id, dst) in ids.iter().zip(w.chunks_exact_mut(self.in_dim)) {
            let row = id as usize;
            if row >= self.out_dim {
                return Err(Error::Shape {
                    op: "quantized row lookup".into(),
                    expected: format!("row < {}", self.out_dim),
                    got: row.to_string(),
                });
            }
            for (j, block) in dst.chunks_exact_mut(BLOCK).enumerate() {
                self.dequantize_block(row * per_row + j, block);
            }
        }
        Ok(Tensor::from_vec(w, (ids.len(), self.in_dim), &Device::Cpu)?)
    }

    /// Block `b` (row-major, `in / 32` per row) as 32 f32 values.
    fn dequantize_block(&self, b: usize, dst: &mut [f32]) {
        match &self.blocks {
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
        }
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
        // out is [t, out_dim]; we compute column-major chunks [out_dim, t] then transpose.
        let mut cols = vec![0f32; self.out_dim * t];
        let nb = in_dim / BLOCK;
        // One row keeps the single-row kernels; several rows (batched decode) share each
        // weight block's unpacking across up to four activation rows.
        match &self.blocks {
            Blocks::Q4_1 { scales, nibbles } => {
                let acts: Vec<Q8_1Row> = xs.chunks_exact(in_dim).map(Q8_1Row::quantize).collect();
                let groups = Q8_1Groups::new(&acts); // empty for one row
                let wide = match &acts[..] {
                    [a] if has_avx512() => Some(Q8_1Wide::new(a)),
                    _ => None,
                };
                for_each_output_row(&mut cols, t, |row, dst| {
                    let (s, q) = (&scales[row * nb..][..nb], &nibbles[row * nb..][..nb]);
                    match (&wide, &acts[..]) {
                        (Some(a), _) => dst[0] = simd512::dot_q4_1_q8_1(s, q, a),
                        (None, [a]) => dst[0] = dot_q4_1_q8_1(s, q, a),
                        (None, _) => dot_q4_1_q8_1_rows(s, q, &acts, &groups, dst),
                    }
                });
            }
            Blocks::Q8_0 { scales, quants } => {
                let wide = t == 1 && has_avx512();
                for_each_output_row(&mut cols, t, |row, dst| {
                    let (s, q) = (&scales[row * nb..][..nb], &quants[row * nb..][..nb]);
                    if wide {
                        dst[0] = simd512::dot_q8_0_f32(s, q, &xs);
                    } else if t == 1 {
                        dst[0] = dot_q8_0_f32(s, q, &xs);
                    } else {
                        dot_q8_0_f32_rows(s, q, &xs, dst);
                    }
                });
            }
        }
        if t == 1 {
            return Ok(Tensor::from_vec(cols, (1, self.out_dim), &Device::Cpu)?);
        }
        let mut out = vec![0f32; t * self.out_dim];
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
