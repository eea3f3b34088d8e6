//! The dot products of the quantized kernels: AVX2/FMA/F16C versions behind runtime feature
//! detection, and the portable scalar code they fall back to.

#![allow(unsafe_code)] // std::arch intrinsics, guarded by runtime feature detection.

use half::f16;

use super::{BLOCK, Q8_1Row};

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
pub(super) fn dot_q4_1_q8_1(scales: &[[f16; 2]], nibbles: &[[u8; 16]], a: &Q8_1Row) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { avx2::dot_q4_1_q8_1(scales, nibbles, a) };
    }
    dot_q4_1_q8_1_scalar(scales, nibbles, a)
}

pub(super) fn dot_q4_1_q8_1_scalar(scales: &[[f16; 2]], nibbles: &[[u8; 16]], a: &Q8_1Row) -> f32 {
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
pub(super) fn dot_q8_0_f32(scales: &[f32], quants: &[[i8; 32]], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { avx2::dot_q8_0_f32(scales, quants, x) };
    }
    dot_q8_0_f32_scalar(scales, quants, x)
}

/// Portable [`dot_q8_0_f32`]: the fallback, and the reference the SIMD kernels are tested against.
pub(super) fn dot_q8_0_f32_scalar(scales: &[f32], quants: &[[i8; 32]], x: &[f32]) -> f32 {
    let mut total = 0f32;
    for ((d, q), xb) in scales.iter().zip(quants).zip(x.chunks_exact(BLOCK)) {
        let s: f32 = q.iter().zip(xb).map(|(&q, &v)| f32::from(q) * v).sum();
        total += d * s;
    }
    total
}

#[cfg(target_arch = "x86_64")]
pub(super) use avx2::hsum;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{BLOCK, Q8_1Row};
    use crate::model::quant::{Q4_1_AHEAD, Q8_0_AHEAD, prefetch_ahead};

    /// The sum of the 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(in super::super) unsafe fn hsum(v: __m256) -> f32 {
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
        for (b, (((s, q), sa), qa)) in scales
            .iter()
            .zip(nibbles)
            .zip(&a.scales)
            .zip(&a.quants)
            .enumerate()
        {
            if b % 4 == 0 {
                prefetch_ahead(q, Q4_1_AHEAD);
            }
            if b % 16 == 0 {
                prefetch_ahead(s, Q4_1_AHEAD);
            }
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(
                (s[0].to_bits() as u32 | (s[1].to_bits() as u32) << 16) as i32,
            ));
            let (d, m) = (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)));
            // SAFETY: in-bounds block references.
            let p = unsafe { block_q4_1(q, qa, mask, ones) };
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sa[0]), p, acc);
            mins += m * sa[1];
        }
        // SAFETY: this function runs only where AVX2 and FMA were detected (its own contract).
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
        for (b, ((d, q), xb)) in scales
            .iter()
            .zip(quants)
            .zip(x.chunks_exact(BLOCK))
            .enumerate()
        {
            if b % 2 == 0 {
                prefetch_ahead(q, Q8_0_AHEAD);
            }
            if b % 16 == 0 {
                prefetch_ahead(d, Q8_0_AHEAD);
            }
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
        // SAFETY: this function runs only where AVX2 and FMA were detected (its own contract).
        unsafe { hsum(sum) }
    }
}
