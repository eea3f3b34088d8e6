//! Multi-row dot products for batched decode: one weight row against several activation rows,
//! each weight block unpacked (nibbles split, f16 scales converted, i8 widened to f32) once for
//! up to four rows instead of once per row. The sums are those of the single-row kernels in
//! `simd.rs` in another order, so results agree to float rounding. Without AVX2 every row goes
//! through the portable single-row code.

// Elsewhere than x86_64 no groups are built and every row takes the single-row path.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code, unused_mut))]
#![allow(unsafe_code)] // std::arch intrinsics, guarded by runtime feature detection.

use half::f16;

use super::simd::{dot_q4_1_q8_1, dot_q8_0_f32, has_avx2};
use super::{BLOCK, Q8_1Row};

/// Activation rows per group.
const GROUP: usize = 4;

/// Q8_1 activation rows regrouped for the AVX2 Q4_1 kernels: groups of four rows (the last
/// of three rows padded with a zero row), a last group of two, and a last single row left to
/// the single-row kernel. Empty without AVX2.
pub(super) struct Q8_1Groups(Vec<Q8_1Group>);

/// Up to four rows interleaved per block.
struct Q8_1Group {
    /// Rows present: 2 (laid out for `dot_q4_1_q8_1_x2`) or 3..=4 (for `dot_q4_1_q8_1_x4`).
    rows: usize,
    /// Per block: 8 activation scales d in the lane order of the kernel's sums (x4: rows
    /// 0..4 twice over; x2: rows 0, 0, 1, 1 twice over), then the rows' d·Σq (x2: rows 0, 1).
    scales: Vec<[f32; 12]>,
    /// Per block: each row's 32 quants (absent rows zero).
    quants: Vec<[[i8; 32]; GROUP]>,
}

impl Q8_1Groups {
    pub(super) fn new(rows: &[Q8_1Row]) -> Self {
        if !has_avx2() {
            return Self(Vec::new());
        }
        let groups = rows
            .chunks(GROUP)
            .filter(|g| g.len() > 1)
            .map(|g| {
                let nb = g.iter().map(|r| r.quants.len()).min().unwrap_or(0);
                let mut scales = vec![[0f32; 12]; nb];
                let mut quants = vec![[[0i8; 32]; GROUP]; nb];
                for (r, row) in g.iter().enumerate() {
                    for (b, (s, q)) in row.scales.iter().zip(&row.quants).take(nb).enumerate() {
                        let lanes = if g.len() == 2 {
                            [2 * r, 2 * r + 1]
                        } else {
                            [r, r]
                        };
                        for lane in lanes {
                            scales[b][lane] = s[0];
                            scales[b][lane + 4] = s[0];
                        }
                        scales[b][8 + r] = s[1];
                        quants[b][r] = *q;
                    }
                }
                Q8_1Group {
                    rows: g.len(),
                    scales,
                    quants,
                }
            })
            .collect();
        Self(groups)
    }
}

/// `out[r] = dot_q4_1_q8_1(scales, nibbles, &acts[r])` for every row `r`; `groups` is
/// `Q8_1Groups::new(acts)`.
pub(super) fn dot_q4_1_q8_1_rows(
    scales: &[[f16; 2]],
    nibbles: &[[u8; 16]],
    acts: &[Q8_1Row],
    groups: &Q8_1Groups,
    out: &mut [f32],
) {
    assert_eq!(acts.len(), out.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    for g in &groups.0 {
        assert!(g.quants.len() == scales.len() && nibbles.len() == scales.len());
        // SAFETY: groups are only built where AVX2, FMA and F16C were detected.
        let sums = unsafe {
            if g.rows == 2 {
                avx2::dot_q4_1_q8_1_x2(scales, nibbles, g)
            } else {
                avx2::dot_q4_1_q8_1_x4(scales, nibbles, g)
            }
        };
        out[done..done + g.rows].copy_from_slice(&sums[..g.rows]);
        done += g.rows;
    }
    for (o, a) in out[done..].iter_mut().zip(&acts[done..]) {
        *o = dot_q4_1_q8_1(scales, nibbles, a);
    }
}

/// `out[r] = dot_q8_0_f32(scales, quants, row r of xs)` for `xs: [out.len(), in]`.
pub(super) fn dot_q8_0_f32_rows(scales: &[f32], quants: &[[i8; 32]], xs: &[f32], out: &mut [f32]) {
    let in_dim = scales.len() * BLOCK;
    assert!(quants.len() == scales.len() && xs.len() == out.len() * in_dim);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && in_dim > 0 {
        for (x, o) in xs.chunks(GROUP * in_dim).zip(out.chunks_mut(GROUP)) {
            // SAFETY: AVX2 and FMA were detected at run time; x holds o.len() rows of in_dim.
            unsafe {
                match o.len() {
                    GROUP => avx2::dot_q8_0_f32_xn::<GROUP>(scales, quants, x, o),
                    3 => avx2::dot_q8_0_f32_xn::<3>(scales, quants, x, o),
                    2 => avx2::dot_q8_0_f32_xn::<2>(scales, quants, x, o),
                    _ => break, // a last single row: below
                }
            }
            done += o.len();
        }
    }
    for (o, x) in out[done..]
        .iter_mut()
        .zip(xs[done * in_dim..].chunks_exact(in_dim))
    {
        *o = dot_q8_0_f32(scales, quants, x);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::super::simd::hsum;
    use super::{BLOCK, Q8_1Group};
    use crate::model::quant::{Q4_1_AHEAD, Q8_0_AHEAD, prefetch_ahead};

    /// Prefetches a Q4_1 row's nibbles and scales ahead of block (s, q). Once per block
    /// (several rows share each block here, so the hint is cheap).
    #[inline(always)]
    fn prefetch_q4_1(s: &[f16; 2], q: &[u8; 16]) {
        prefetch_ahead(q, Q4_1_AHEAD);
        prefetch_ahead(s, Q4_1_AHEAD);
    }

    /// A block's scale d and min m (f16 → f32) and its 32 weights as unsigned bytes
    /// (elements 0..16 in the low 128-bit lane, 16..32 in the high one).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn unpack_q4_1(s: &[f16; 2], q: &[u8; 16]) -> (__m128, __m256i) {
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(
            (s[0].to_bits() as u32 | (s[1].to_bits() as u32) << 16) as i32,
        ));
        let mask = _mm_set1_epi8(0x0F);
        // SAFETY: q is 16 bytes; unaligned load.
        let raw = unsafe { _mm_loadu_si128(q.as_ptr().cast()) };
        let lo = _mm_and_si128(raw, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
        (dm, _mm256_set_m128i(hi, lo))
    }

    /// u4 weights · i8 activations, adjacent pairs summed: 16 i16 of |x| <= 2·15·127 = 3810.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn pair_products(w: __m256i, y: &[i8; 32]) -> __m256i {
        // SAFETY: y is 32 bytes; unaligned load.
        _mm256_maddubs_epi16(w, unsafe { _mm256_loadu_si256(y.as_ptr().cast()) })
    }

    /// Rows 0..4 of a group (3 or 4 present) against one Q4_1 weight row. Per block, two rounds
    /// of horizontal adds reduce the four rows' pair products into one register (|sums| <=
    /// 4·3810 = 15240, no i16 overflow), so scaling and accumulation cost one multiply and
    /// one FMA per block for all four rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1_q8_1_x4(
        scales: &[[f16; 2]],
        nibbles: &[[u8; 16]],
        g: &Q8_1Group,
    ) -> [f32; 4] {
        let ones = _mm256_set1_epi16(1);
        // Lanes 0..4: rows 0..4 over elements 0..16 of the blocks; lanes 4..8: elements 16..32.
        let mut acc = _mm256_setzero_ps();
        let mut mins = _mm_setzero_ps();
        for (((s, q), sa), qa) in scales.iter().zip(nibbles).zip(&g.scales).zip(&g.quants) {
            prefetch_q4_1(s, q);
            // SAFETY (all unsafe calls here): AVX2, FMA and F16C are enabled in this function;
            // sa is 12 floats, so loads of 0..8 and 8..12 are in bounds.
            let (dm, w) = unsafe { unpack_q4_1(s, q) };
            let p = unsafe {
                [
                    pair_products(w, &qa[0]),
                    pair_products(w, &qa[1]),
                    pair_products(w, &qa[2]),
                    pair_products(w, &qa[3]),
                ]
            };
            let h = _mm256_hadd_epi16(_mm256_hadd_epi16(p[0], p[1]), _mm256_hadd_epi16(p[2], p[3]));
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(h, ones));
            let (sd, ss) = unsafe { (_mm256_loadu_ps(sa.as_ptr()), _mm_loadu_ps(&sa[8])) };
            let d = _mm256_mul_ps(_mm256_broadcastss_ps(dm), sd);
            acc = _mm256_fmadd_ps(d, sums, acc);
            mins = _mm_fmadd_ps(_mm_permute_ps::<0b01_01_01_01>(dm), ss, mins);
        }
        let halves = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let mut out = [0f32; 4];
        // SAFETY: out is 4 floats; unaligned store.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), _mm_add_ps(halves, mins)) };
        out
    }

    /// Rows 0 and 1 of a group of two against one Q4_1 weight row: one round of horizontal
    /// adds, then per 128-bit lane the sums are (row 0, row 0, row 1, row 1).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1_q8_1_x2(
        scales: &[[f16; 2]],
        nibbles: &[[u8; 16]],
        g: &Q8_1Group,
    ) -> [f32; 4] {
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut mins = _mm_setzero_ps();
        for (((s, q), sa), qa) in scales.iter().zip(nibbles).zip(&g.scales).zip(&g.quants) {
            prefetch_q4_1(s, q);
            // SAFETY (all unsafe calls here): as in dot_q4_1_q8_1_x4.
            let (dm, w) = unsafe { unpack_q4_1(s, q) };
            let p = unsafe { [pair_products(w, &qa[0]), pair_products(w, &qa[1])] };
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_hadd_epi16(p[0], p[1]), ones));
            let (sd, ss) = unsafe { (_mm256_loadu_ps(sa.as_ptr()), _mm_loadu_ps(&sa[8])) };
            let d = _mm256_mul_ps(_mm256_broadcastss_ps(dm), sd);
            acc = _mm256_fmadd_ps(d, sums, acc);
            mins = _mm_fmadd_ps(_mm_permute_ps::<0b01_01_01_01>(dm), ss, mins);
        }
        // (r0, r0, r1, r1) → (r0, r1, r0, r1); lanes 2 and 3 of mins are zero.
        let halves = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let mut out = [0f32; 4];
        // SAFETY: out is 4 floats; unaligned store.
        unsafe {
            _mm_storeu_ps(
                out.as_mut_ptr(),
                _mm_add_ps(_mm_hadd_ps(halves, halves), mins),
            )
        };
        out
    }

    /// N rows of `xs: [N, in]` against one Q8_0 weight row; `out.len() == N`. Per block and
    /// row, Σq·x is its own chain (independent across blocks), then one FMA by the scale.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q8_0_f32_xn<const N: usize>(
        scales: &[f32],
        quants: &[[i8; 32]],
        xs: &[f32],
        out: &mut [f32],
    ) {
        let in_dim = scales.len() * BLOCK;
        assert!(quants.len() == scales.len() && xs.len() == N * in_dim && out.len() == N);
        let mut acc = [_mm256_setzero_ps(); N];
        for (b, (d, q)) in scales.iter().zip(quants).enumerate() {
            prefetch_ahead(q, Q8_0_AHEAD);
            prefetch_ahead(d, Q8_0_AHEAD);
            // The block's 32 weights as f32, converted once for all N rows.
            let mut w = [_mm256_setzero_ps(); 4];
            for (k, w) in w.iter_mut().enumerate() {
                // SAFETY: q has 32 bytes; k*8 + 8 <= 32.
                let q8 = unsafe { _mm_loadl_epi64(q.as_ptr().add(k * 8).cast()) };
                *w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: r < N and b < in_dim / 32, so the 32 floats from x lie in xs
                // (length N·in_dim, asserted above); unaligned loads.
                let s = unsafe {
                    let x = xs.as_ptr().add(r * in_dim + b * BLOCK);
                    let s = _mm256_mul_ps(w[0], _mm256_loadu_ps(x));
                    let s = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x.add(8)), s);
                    let s = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(x.add(16)), s);
                    _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x.add(24)), s)
                };
                *acc = _mm256_fmadd_ps(_mm256_set1_ps(*d), s, *acc);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            // SAFETY: this function runs only where AVX2 and FMA were detected (its own contract).
            *o = unsafe { hsum(acc) };
        }
    }
}
