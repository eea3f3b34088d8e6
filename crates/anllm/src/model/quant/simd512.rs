//! AVX-512 single-row kernels for decode (one activation row against every weight row).
//!
//! The AVX2 kernels in `simd.rs` spend about ten instructions per 32-weight block (nibble
//! split, `maddubs` + `madd`, a scalar f16 scale conversion and a scalar min term). These handle
//! two blocks per 512-bit register, take the integer sums from one VNNI `vpdpbusd`, and convert
//! the f16 scales of eight blocks at once. Chosen at run time where the CPU has AVX-512 F/BW/VL
//! and VNNI; elsewhere the AVX2 or scalar kernels run. Several rows (batched decode, short
//! prefill chunks) keep the AVX2 multi-row kernels: a 1–4-row version of these measured no
//! faster there (`docs/benchmarks.md`). Tested against the scalar kernels (`tests_wide.rs`).

#![allow(unsafe_code)] // std::arch intrinsics, guarded by runtime feature detection.

use half::f16;

use super::Q8_1Row;

/// Whether the AVX-512 kernels may run on this CPU.
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Blocks whose scales one 512-bit register holds (8 × [d, m]).
const SCALE_GROUP: usize = 8;

/// A Q8_1 activation row laid out for the AVX-512 Q4_1 kernel.
pub(super) struct Q8_1Wide {
    /// Per pair of blocks (b, b+1): b's first 16 quants, b+1's first 16, b's last 16, b+1's
    /// last 16 — the order the weights' low and high nibbles unpack into. An odd last block
    /// is paired with zeros.
    pairs: Vec<[i8; 64]>,
    /// Per block [d, d·Σq], zero-padded to a multiple of [`SCALE_GROUP`] blocks.
    scales: Vec<[f32; 2]>,
}

impl Q8_1Wide {
    pub(super) fn new(row: &Q8_1Row) -> Self {
        let pairs = row
            .quants
            .chunks(2)
            .map(|p| {
                let zero = [0i8; 32];
                let (a, b) = (&p[0], p.get(1).unwrap_or(&zero));
                let mut out = [0i8; 64];
                out[..16].copy_from_slice(&a[..16]);
                out[16..32].copy_from_slice(&b[..16]);
                out[32..48].copy_from_slice(&a[16..]);
                out[48..].copy_from_slice(&b[16..]);
                out
            })
            .collect();
        let mut scales = row.scales.clone();
        scales.resize(row.scales.len().next_multiple_of(SCALE_GROUP), [0.0; 2]);
        Self { pairs, scales }
    }
}

/// Σ over blocks of d_w·d_a·Σ(q_w·q_a) + m_w·(d_a·Σq_a); the caller checked [`has_avx512`].
pub(super) fn dot_q4_1_q8_1(scales: &[[f16; 2]], nibbles: &[[u8; 16]], a: &Q8_1Wide) -> f32 {
    assert!(nibbles.len() == scales.len() && a.pairs.len() == scales.len().div_ceil(2));
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the caller checked AVX-512 F/BW/VL/VNNI; lengths were checked above.
        unsafe { avx512::dot_q4_1_q8_1(scales, nibbles, a) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 kernels run only on x86_64")
}

/// Σ over blocks of d_w·Σ(q_w·x); the caller checked [`has_avx512`].
pub(super) fn dot_q8_0_f32(scales: &[f32], quants: &[[i8; 32]], x: &[f32]) -> f32 {
    assert!(quants.len() == scales.len() && x.len() == 32 * scales.len());
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the caller checked AVX-512 F/BW/VL; lengths were checked above.
        unsafe { avx512::dot_q8_0_f32(scales, quants, x) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 kernels run only on x86_64")
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{Q8_1Wide, SCALE_GROUP};
    use crate::model::quant::{Q4_1_AHEAD, Q8_0_AHEAD, prefetch_ahead};

    /// For the k-th pair of a scale group: the lane of its blocks' d_w·d_a in the group's
    /// product vector [d0·a0, m0·s0, d1·a1, …], spread over the dword lanes of the pair's
    /// integer sums (lanes 0–3 and 8–11: the first block; 4–7 and 12–15: the second).
    fn scale_index(k: i32) -> [i32; 16] {
        let (a, b) = (4 * k, 4 * k + 2);
        [a, a, a, a, b, b, b, b, a, a, a, a, b, b, b, b]
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
    pub(super) unsafe fn dot_q4_1_q8_1(
        scales: &[[f16; 2]],
        nibbles: &[[u8; 16]],
        a: &Q8_1Wide,
    ) -> f32 {
        let nb = scales.len();
        let low = _mm512_set1_epi8(0x0F);
        let index = [0, 1, 2, 3].map(|k| {
            // SAFETY: 16 i32 are 64 bytes; unaligned load.
            unsafe { _mm512_loadu_si512(scale_index(k).as_ptr().cast()) }
        });
        let mut acc = [_mm512_setzero_ps(); 2];
        let mut mins = _mm512_setzero_ps();
        let (sp, np) = (scales.as_ptr().cast::<i16>(), nibbles.as_ptr().cast::<i8>());
        for g in (0..nb).step_by(SCALE_GROUP) {
            let n = (nb - g).min(SCALE_GROUP);
            // SAFETY: 2n f16 of blocks g..g+n are in bounds; the masked lanes are not read;
            // a.scales is padded to whole groups.
            let (wdm, ads) = unsafe {
                let mask = ((1u32 << (2 * n)) - 1) as __mmask16;
                (
                    _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, sp.add(2 * g))),
                    _mm512_loadu_ps(a.scales.as_ptr().add(g).cast()),
                )
            };
            prefetch_ahead(&scales[g], Q4_1_AHEAD);
            let prod = _mm512_mul_ps(wdm, ads);
            mins = _mm512_add_ps(mins, prod);
            for k in 0..n.div_ceil(2) {
                let b = g + 2 * k;
                // SAFETY: the pair's 32 nibble bytes (16 for an odd last block) are in bounds;
                // a.pairs has one entry per pair.
                let (raw, av) = unsafe {
                    let mask = if b + 1 < nb { u32::MAX } else { 0xFFFF };
                    (
                        _mm256_maskz_loadu_epi8(mask, np.add(16 * b)),
                        _mm512_loadu_si512(a.pairs.as_ptr().add(b / 2).cast()),
                    )
                };
                prefetch_ahead(&nibbles[b], Q4_1_AHEAD);
                let hi = _mm256_srli_epi16(raw, 4);
                let w =
                    _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(raw), hi, 1), low);
                let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, av);
                let s = _mm512_permutexvar_ps(index[k], prod);
                acc[k & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), s, acc[k & 1]);
            }
        }
        // The even lanes of `mins` hold d·d_a products, which the pairs already used.
        let mins = _mm512_maskz_mov_ps(0xAAAA, mins);
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), mins))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn dot_q8_0_f32(scales: &[f32], quants: &[[i8; 32]], x: &[f32]) -> f32 {
        let mut acc = [_mm512_setzero_ps(); 2];
        for (b, (d, q)) in scales.iter().zip(quants).enumerate() {
            // SAFETY: q is 32 bytes and x holds 32 floats per block (checked by the caller).
            let (q0, q1, x0, x1) = unsafe {
                let xp = x.as_ptr().add(32 * b);
                (
                    _mm_loadu_si128(q.as_ptr().cast()),
                    _mm_loadu_si128(q.as_ptr().add(16).cast()),
                    _mm512_loadu_ps(xp),
                    _mm512_loadu_ps(xp.add(16)),
                )
            };
            if b % 2 == 0 {
                prefetch_ahead(q, Q8_0_AHEAD);
            }
            if b % 16 == 0 {
                prefetch_ahead(d, Q8_0_AHEAD);
            }
            let w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0));
            let w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1));
            let block = _mm512_fmadd_ps(w0, x0, _mm512_mul_ps(w1, x1));
            acc[b & 1] = _mm512_fmadd_ps(block, _mm512_set1_ps(*d), acc[b & 1]);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
    }
}
