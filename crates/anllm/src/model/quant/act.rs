//! Activation rows quantized per 32-block to Q8_1 for the integer kernels (as llama.cpp's
//! `quantize_row_q8_1`): scale d = max|x| / 127, quants round(x / d) to nearest, ties to even,
//! and d·Σq for the Q4_1 min term. A decode step quantizes one row before each of its ~150
//! projections, on one thread while the others wait, so the AVX2 version matters at 2 threads.

#![allow(unsafe_code)] // std::arch intrinsics, guarded by runtime feature detection.

use half::f16;

use super::BLOCK;
use super::simd::has_avx2;

/// One activation row quantized per 32-block: scale d, d·Σq, and the signed bytes.
pub(super) struct Q8_1Row {
    pub(super) scales: Vec<[f32; 2]>,
    pub(super) quants: Vec<[i8; 32]>,
}

impl Q8_1Row {
    /// `x.len()` must be a multiple of 32 (the matrix checked its width).
    pub(super) fn quantize(x: &[f32]) -> Self {
        x.chunks_exact(BLOCK)
            .map(|b| {
                let b: &[f32; BLOCK] = b.try_into().expect("chunks of 32");
                let (d, sum, qs) = quantize_block(b);
                // Scales rounded through f16 as ggml's block_q8_1 stores them.
                let d16 = f16::from_f32(d).to_f32();
                ([d16, f16::from_f32(d * sum as f32).to_f32()], qs)
            })
            .unzip()
            .into()
    }
}

impl From<(Vec<[f32; 2]>, Vec<[i8; 32]>)> for Q8_1Row {
    fn from((scales, quants): (Vec<[f32; 2]>, Vec<[i8; 32]>)) -> Self {
        Self { scales, quants }
    }
}

/// (d, Σq, quants) of one block: AVX2 where the CPU has it, else the scalar reference.
fn quantize_block(b: &[f32; BLOCK]) -> (f32, i32, [i8; 32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { avx2::quantize_block(b) };
    }
    quantize_block_scalar(b)
}

/// The portable quantizer: the fallback, and the reference the AVX2 one must equal exactly.
pub(super) fn quantize_block_scalar(b: &[f32; BLOCK]) -> (f32, i32, [i8; 32]) {
    let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; 32];
    let mut sum = 0i32;
    for (q, v) in qs.iter_mut().zip(b) {
        *q = (v * inv).round_ties_even() as i8;
        sum += i32::from(*q);
    }
    (d, sum, qs)
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    use super::BLOCK;

    /// [`super::quantize_block_scalar`] with 8 lanes: the same products x·(1/d), rounded by
    /// `cvtps2dq` (MXCSR's default: nearest, ties to even), saturated to i8 by the packs.
    #[target_feature(enable = "avx2,fma")]
    pub(in super::super) unsafe fn quantize_block(b: &[f32; BLOCK]) -> (f32, i32, [i8; 32]) {
        // SAFETY: b holds 32 floats; unaligned loads at 0, 8, 16, 24.
        let v = [0, 8, 16, 24].map(|k| unsafe { _mm256_loadu_ps(b.as_ptr().add(k)) });
        let sign = _mm256_set1_ps(-0.0);
        let abs = |x| _mm256_andnot_ps(sign, x);
        let m = _mm256_max_ps(
            _mm256_max_ps(abs(v[0]), abs(v[1])),
            _mm256_max_ps(abs(v[2]), abs(v[3])),
        );
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let d = amax / 127.0;
        let inv = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let q = v.map(|x| _mm256_cvtps_epi32(_mm256_mul_ps(x, inv)));
        let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s)));
        // The packs work per 128-bit lane; the permute puts the 4-byte groups back in order.
        let bytes = _mm256_packs_epi16(
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let mut qs = [0i8; 32];
        // SAFETY: qs is 32 bytes; unaligned store.
        unsafe {
            _mm256_storeu_si256(
                qs.as_mut_ptr().cast(),
                _mm256_permutevar8x32_epi32(bytes, order),
            )
        };
        (d, sum, qs)
    }
}
