//! AVX-512 kernels for one activation row (decode) against every weight row, written for up
//! to four rows (tested; `forward` dispatches one row only, see the module docs of `quant`).
//!
//! The AVX2 kernels in `simd.rs` spend about ten instructions per 32-weight block (nibble
//! split, `maddubs` + `madd`, a scalar f16 scale conversion and a scalar min term). These handle
//! two blocks per 512-bit register, take each row's integer sums from one VNNI `vpdpbusd`,
//! convert the f16 scales of eight blocks at once, and unpack each weight block once for up to
//! four rows. Chosen at run time where the CPU has AVX-512 F/BW/VL and VNNI; elsewhere the AVX2
//! or scalar kernels run. Tested against the scalar kernels (`tests_wide.rs`).

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

/// Activation rows per kernel call: each weight block is unpacked once for up to this many.
const ROWS: usize = 4;

/// `out[r]` = Σ over blocks of d_w·d_a·Σ(q_w·q_a) + m_w·(d_a·Σq_a) for activation row
/// `acts[r]`; the caller checked [`has_avx512`].
pub(super) fn dot_q4_1_q8_1_rows(
    scales: &[[f16; 2]],
    nibbles: &[[u8; 16]],
    acts: &[Q8_1Wide],
    out: &mut [f32],
) {
    let pairs = scales.len().div_ceil(2);
    assert!(nibbles.len() == scales.len() && acts.len() == out.len());
    assert!(
        acts.iter()
            .all(|a| a.pairs.len() == pairs && a.scales.len() >= scales.len())
    );
    #[cfg(target_arch = "x86_64")]
    for (a, o) in acts.chunks(ROWS).zip(out.chunks_mut(ROWS)) {
        // SAFETY: the caller checked AVX-512 F/BW/VL/VNNI; lengths were checked above.
        unsafe {
            match a.len() {
                4 => o.copy_from_slice(&avx512::dot_q4_1_q8_1::<4>(scales, nibbles, a)),
                3 => o.copy_from_slice(&avx512::dot_q4_1_q8_1::<3>(scales, nibbles, a)),
                2 => o.copy_from_slice(&avx512::dot_q4_1_q8_1::<2>(scales, nibbles, a)),
                _ => o.copy_from_slice(&avx512::dot_q4_1_q8_1::<1>(scales, nibbles, a)),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 kernels run only on x86_64")
}

/// `out[r]` = Σ over blocks of d_w·Σ(q_w·x) for row `r` of `xs: [out.len(), in]`; the caller
/// checked [`has_avx512`].
pub(super) fn dot_q8_0_f32_rows(scales: &[f32], quants: &[[i8; 32]], xs: &[f32], out: &mut [f32]) {
    let in_dim = 32 * scales.len();
    assert!(quants.len() == scales.len() && xs.len() == in_dim * out.len());
    #[cfg(target_arch = "x86_64")]
    for (x, o) in xs.chunks(ROWS * in_dim).zip(out.chunks_mut(ROWS)) {
        // SAFETY: the caller checked AVX-512 F/BW/VL; x holds o.len() rows of in_dim.
        unsafe {
            match o.len() {
                4 => o.copy_from_slice(&avx512::dot_q8_0_f32::<4>(scales, quants, x)),
                3 => o.copy_from_slice(&avx512::dot_q8_0_f32::<3>(scales, quants, x)),
                2 => o.copy_from_slice(&avx512::dot_q8_0_f32::<2>(scales, quants, x)),
                _ => o.copy_from_slice(&avx512::dot_q8_0_f32::<1>(scales, quants, x)),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("AVX-512 kernels run only on x86_64")
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::super::simd::{PREFETCH_BYTES, prefetch};
    use super::{Q8_1Wide, SCALE_GROUP};

    /// For the k-th pair of a scale group: the lane of its blocks' d_w·d_a in the group's
    /// product vector [d0·a0, m0·s0, d1·a1, …], spread over the dword lanes of the pair's
    /// integer sums (lanes 0–3 and 8–11: the first block; 4–7 and 12–15: the second).
    fn scale_index(k: i32) -> [i32; 16] {
        let (a, b) = (4 * k, 4 * k + 2);
        [a, a, a, a, b, b, b, b, a, a, a, a, b, b, b, b]
    }

    /// R activation rows against one Q4_1 weight row: each pair of weight blocks is loaded
    /// and unpacked once, then one `vpdpbusd`, one convert and one FMA per row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
    pub(super) unsafe fn dot_q4_1_q8_1<const R: usize>(
        scales: &[[f16; 2]],
        nibbles: &[[u8; 16]],
        acts: &[Q8_1Wide],
    ) -> [f32; R] {
        let nb = scales.len();
        let low = _mm512_set1_epi8(0x0F);
        let index = [0, 1, 2, 3].map(|k| {
            // SAFETY: 16 i32 are 64 bytes; unaligned load.
            unsafe { _mm512_loadu_si512(scale_index(k).as_ptr().cast()) }
        });
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let mut mins = [_mm512_setzero_ps(); R];
        let (sp, np) = (scales.as_ptr().cast::<i16>(), nibbles.as_ptr().cast::<i8>());
        for g in (0..nb).step_by(SCALE_GROUP) {
            let n = (nb - g).min(SCALE_GROUP);
            // SAFETY: 2n f16 of blocks g..g+n are in bounds; the masked lanes are not read.
            let wdm = unsafe {
                let mask = ((1u32 << (2 * n)) - 1) as __mmask16;
                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, sp.add(2 * g)))
            };
            prefetch(sp.wrapping_add(2 * (g + PREFETCH_BYTES / 16)));
            let prod: [__m512; R] = std::array::from_fn(|r| {
                // SAFETY: every row's scales are padded to whole groups.
                let ads = unsafe { _mm512_loadu_ps(acts[r].scales.as_ptr().add(g).cast()) };
                _mm512_mul_ps(wdm, ads)
            });
            for (m, p) in mins.iter_mut().zip(&prod) {
                *m = _mm512_add_ps(*m, *p);
            }
            for k in 0..n.div_ceil(2) {
                let b = g + 2 * k;
                // SAFETY: the pair's 32 nibble bytes (16 for an odd last block) are in bounds.
                let raw = unsafe {
                    let mask = if b + 1 < nb { u32::MAX } else { 0xFFFF };
                    _mm256_maskz_loadu_epi8(mask, np.add(16 * b))
                };
                prefetch(np.wrapping_add(16 * b + PREFETCH_BYTES));
                let hi = _mm256_srli_epi16(raw, 4);
                let w =
                    _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(raw), hi, 1), low);
                for r in 0..R {
                    // SAFETY: every row has one entry per pair (checked by the caller).
                    let av =
                        unsafe { _mm512_loadu_si512(acts[r].pairs.as_ptr().add(b / 2).cast()) };
                    let sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, av);
                    let s = _mm512_permutexvar_ps(index[k], prod[r]);
                    acc[r][k & 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), s, acc[r][k & 1]);
                }
            }
        }
        // The even lanes of `mins` hold d·d_a products, which the pairs already used.
        std::array::from_fn(|r| {
            let m = _mm512_maskz_mov_ps(0xAAAA, mins[r]);
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]), m))
        })
    }

    /// R rows of `xs: [R, in]` against one Q8_0 weight row: each block widened to f32 once.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn dot_q8_0_f32<const R: usize>(
        scales: &[f32],
        quants: &[[i8; 32]],
        xs: &[f32],
    ) -> [f32; R] {
        let in_dim = 32 * scales.len();
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for (b, (d, q)) in scales.iter().zip(quants).enumerate() {
            // SAFETY: q is 32 bytes.
            let (q0, q1) = unsafe {
                (
                    _mm_loadu_si128(q.as_ptr().cast()),
                    _mm_loadu_si128(q.as_ptr().add(16).cast()),
                )
            };
            prefetch(q.as_ptr().wrapping_add(PREFETCH_BYTES));
            if b % 16 == 0 {
                prefetch(scales.as_ptr().wrapping_add(b + PREFETCH_BYTES / 32));
            }
            let w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0));
            let w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1));
            let dv = _mm512_set1_ps(*d);
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: xs holds R rows of in_dim floats (checked by the caller).
                let (x0, x1) = unsafe {
                    let xp = xs.as_ptr().add(r * in_dim + 32 * b);
                    (_mm512_loadu_ps(xp), _mm512_loadu_ps(xp.add(16)))
                };
                let block = _mm512_fmadd_ps(w0, x0, _mm512_mul_ps(w1, x1));
                acc[b & 1] = _mm512_fmadd_ps(block, dv, acc[b & 1]);
            }
        }
        std::array::from_fn(|r| _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1])))
    }
}
