//! Multi-row dot products for batched decode: one weight row against up to `GROUP` activation
//! rows at a time, each weight block unpacked (nibble split, f16 scales, i8→f32) once per group
//! instead of once per row. Same sums as the single-row kernels in `simd.rs`, in another
//! summation order, so they agree to float rounding.

#![allow(unsafe_code)] // std::arch intrinsics, guarded by runtime feature detection.

use half::f16;

#[cfg(target_arch = "x86_64")]
use super::simd::has_avx2;
use super::simd::{dot_q4_1_q8_1_scalar, dot_q8_0_f32_scalar};
use super::{BLOCK, Q8_1Row};

/// Activation rows per group (accumulators kept in registers).
const GROUP: usize = 4;

/// `out[r] = dot_q4_1_q8_1(scales, nibbles, &acts[r])` for every activation row `r`.
pub(super) fn dot_q4_1_q8_1_rows(
    scales: &[[f16; 2]],
    nibbles: &[[u8; 16]],
    acts: &[Q8_1Row],
    out: &mut [f32],
) {
    assert_eq!(acts.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        for (a, o) in acts.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            // SAFETY: AVX2, FMA and F16C were detected at run time; a and o have n rows each.
            unsafe {
                match a.len() {
                    GROUP => avx2::dot_q4_1_q8_1_rows::<GROUP>(scales, nibbles, a, o),
                    3 => avx2::dot_q4_1_q8_1_rows::<3>(scales, nibbles, a, o),
                    2 => avx2::dot_q4_1_q8_1_rows::<2>(scales, nibbles, a, o),
                    _ => avx2::dot_q4_1_q8_1_rows::<1>(scales, nibbles, a, o),
                }
            }
        }
        return;
    }
    for (o, a) in out.iter_mut().zip(acts) {
        *o = dot_q4_1_q8_1_scalar(scales, nibbles, a);
    }
}

/// `out[r] = dot_q8_0_f32(scales, quants, xs[r])` for every row `r` of `xs: [out.len(), in]`.
pub(super) fn dot_q8_0_f32_rows(scales: &[f32], quants: &[[i8; 32]], xs: &[f32], out: &mut [f32]) {
    let in_dim = scales.len() * BLOCK;
    assert_eq!(xs.len(), out.len() * in_dim);
    if in_dim == 0 {
        out.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        for (x, o) in xs.chunks(GROUP * in_dim).zip(out.chunks_mut(GROUP)) {
            // SAFETY: AVX2 and FMA were detected at run time; x has o.len() rows.
            unsafe {
                match o.len() {
                    GROUP => avx2::dot_q8_0_f32_rows::<GROUP>(scales, quants, x, o),
                    3 => avx2::dot_q8_0_f32_rows::<3>(scales, quants, x, o),
                    2 => avx2::dot_q8_0_f32_rows::<2>(scales, quants, x, o),
                    _ => avx2::dot_q8_0_f32_rows::<1>(scales, quants, x, o),
                }
            }
        }
        return;
    }
    for (o, x) in out.iter_mut().zip(xs.chunks_exact(in_dim)) {
        *o = dot_q8_0_f32_scalar(scales, quants, x);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::super::simd::avx2::hsum;
    use super::{BLOCK, Q8_1Row};

    /// N activation rows (`acts.len() == out.len() == N`) against one Q4_1 weight row.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1_q8_1_rows<const N: usize>(
        scales: &[[f16; 2]],
        nibbles: &[[u8; 16]],
        acts: &[Q8_1Row],
        out: &mut [f32],
    ) {
        let nb = scales.len().min(nibbles.len());
        // Slices of exactly nb blocks, so that indexing by b < nb needs no bounds checks.
        let qa: [&[[i8; 32]]; N] = std::array::from_fn(|r| &acts[r].quants[..nb]);
        let sa: [&[[f32; 2]]; N] = std::array::from_fn(|r| &acts[r].scales[..nb]);
        let mask = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); N];
        let mut mins = [0f32; N];
        for (b, (s, q)) in scales.iter().zip(nibbles).enumerate() {
            // Unpacked once for all N rows: scale, min and the 32 nibbles as bytes.
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(
                (s[0].to_bits() as u32 | (s[1].to_bits() as u32) << 16) as i32,
            ));
            let (d, m) = (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)));
            // SAFETY: q is 16 bytes; unaligned load.
            let raw = unsafe { _mm_loadu_si128(q.as_ptr().cast()) };
            let lo = _mm_and_si128(raw, mask);
            let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
            let w = _mm256_set_m128i(hi, lo);
            for r in 0..N {
                // SAFETY: qa[r][b] is 32 bytes; unaligned load.
                let y = unsafe { _mm256_loadu_si256(qa[r][b].as_ptr().cast()) };
                let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w, y), ones));
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * sa[r][b][0]), p, acc[r]);
                mins[r] += m * sa[r][b][1];
            }
        }
        for r in 0..N {
            // SAFETY: this function runs only where AVX2 and FMA were detected (its own contract).
            out[r] = unsafe { hsum(acc[r]) } + mins[r];
        }
    }

    /// N rows of `xs: [N, in]` against one Q8_0 weight row; `out.len() == N`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q8_0_f32_rows<const N: usize>(
        scales: &[f32],
        quants: &[[i8; 32]],
        xs: &[f32],
        out: &mut [f32],
    ) {
        let nb = scales.len().min(quants.len());
        let in_dim = nb * BLOCK;
        let x: [&[f32]; N] = std::array::from_fn(|r| &xs[r * in_dim..][..in_dim]);
        let mut acc = [_mm256_setzero_ps(); N];
        for (b, (d, q)) in scales.iter().zip(quants).enumerate() {
            // The block's 32 weights as f32, converted once for all N rows.
            let mut w = [_mm256_setzero_ps(); 4];
            for (k, w) in w.iter_mut().enumerate() {
                // SAFETY: q has 32 bytes; k*8 + 8 <= 32.
                let q8 = unsafe { _mm_loadl_epi64(q.as_ptr().add(k * 8).cast()) };
                *w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
            }
            let dv = _mm256_set1_ps(*d);
            for r in 0..N {
                let xb = &x[r][b * BLOCK..][..BLOCK];
                // Σ q·x of the block (its own chain, independent across blocks), then one
                // FMA by the scale into the row's accumulator.
                // SAFETY: xb has 32 floats; unaligned loads at 0, 8, 16, 24.
                let s = unsafe {
                    let s = _mm256_mul_ps(w[0], _mm256_loadu_ps(xb.as_ptr()));
                    let s = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xb.as_ptr().add(8)), s);
                    let s = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xb.as_ptr().add(16)), s);
                    _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xb.as_ptr().add(24)), s)
                };
                acc[r] = _mm256_fmadd_ps(dv, s, acc[r]);
            }
        }
        for r in 0..N {
            // SAFETY: this function runs only where AVX2 and FMA were detected (its own contract).
            out[r] = unsafe { hsum(acc[r]) };
        }
    }
}
