//! The two inner loops of cached attention, for each element type a KV cache can store: a
//! query row (f32) against a key, and an f32 row plus a weighted value. f16 entries are widened
//! in registers (F16C), so an f16 cache is read at half the bytes and computed in f32.

#![allow(unsafe_code)] // std::arch via #[target_feature], guarded by runtime detection.

use half::f16;

use super::quant::has_avx2;

/// An element type of cached keys and values.
pub(crate) trait KvElem: Copy + Send + Sync {
    /// Σ q[i]·k[i], in f32.
    fn dot(q: &[f32], k: &[Self]) -> f32;
    /// y[i] += alpha·x[i].
    fn axpy(alpha: f32, x: &[Self], y: &mut [f32]);

    /// The dot products of `q` (`hd` values) with 8 consecutive keys `k` (`8 × hd`): eight
    /// independent accumulators, so no FMA waits on the previous one (one key at a time is a
    /// chain of `hd / 8` dependent FMAs).
    fn dot8(q: &[f32], k: &[Self], out: &mut [f32; 8]) {
        dot8_each(q, k, out);
    }

    /// `out += Σ_j p[j]·v[j]` over the values `v` (`p.len() × hd`, `hd = out.len()`), with
    /// `out` held in registers across the keys where the SIMD version applies.
    fn weighted_sum(p: &[f32], v: &[Self], out: &mut [f32]) {
        weighted_sum_each(p, v, out);
    }
}

/// [`KvElem::dot8`] as 8 calls of [`KvElem::dot`] (the portable path).
fn dot8_each<E: KvElem>(q: &[f32], k: &[E], out: &mut [f32; 8]) {
    for (o, key) in out.iter_mut().zip(k.chunks_exact(q.len())) {
        *o = E::dot(q, key);
    }
}

/// [`KvElem::weighted_sum`] as one [`KvElem::axpy`] per key (the portable path).
fn weighted_sum_each<E: KvElem>(p: &[f32], v: &[E], out: &mut [f32]) {
    for (&w, value) in p.iter().zip(v.chunks_exact(out.len())) {
        if w != 0.0 {
            E::axpy(w, value, out);
        }
    }
}

impl KvElem for f32 {
    fn weighted_sum(p: &[f32], v: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() && out.len().is_multiple_of(8) && v.len() >= p.len() * out.len() {
            // SAFETY: AVX2 and FMA were detected; the lengths are checked.
            return unsafe { simd::weighted_sum_f32(p, v, out) };
        }
        weighted_sum_each(p, v, out);
    }

    fn dot8(q: &[f32], k: &[f32], out: &mut [f32; 8]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() && q.len().is_multiple_of(8) && k.len() >= 8 * q.len() {
            // SAFETY: AVX2 and FMA were detected; the lengths are checked.
            return unsafe { simd::dot8_f32(q, k, out) };
        }
        dot8_each(q, k, out);
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
}

impl KvElem for f16 {
    fn weighted_sum(p: &[f32], v: &[f16], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() && out.len().is_multiple_of(8) && v.len() >= p.len() * out.len() {
            // SAFETY: AVX2, FMA and F16C were detected; the lengths are checked.
            return unsafe { simd::weighted_sum_f16(p, v, out) };
        }
        weighted_sum_each(p, v, out);
    }

    fn dot8(q: &[f32], k: &[f16], out: &mut [f32; 8]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() && q.len().is_multiple_of(8) && k.len() >= 8 * q.len() {
            // SAFETY: AVX2, FMA and F16C were detected; the lengths are checked.
            return unsafe { simd::dot8_f16(q, k, out) };
        }
        dot8_each(q, k, out);
    }

    fn dot(a: &[f32], b: &[f16]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return unsafe { simd::dot_f16(a, b) };
        }
        a.iter().zip(b).map(|(x, y)| x * y.to_f32()).sum()
    }

    fn axpy(alpha: f32, x: &[f16], y: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return unsafe { simd::axpy_f16(alpha, x, y) };
        }
        y.iter_mut()
            .zip(x)
            .for_each(|(y, x)| *y += alpha * x.to_f32());
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use half::f16;

    use crate::prefetch::{AHEAD, prefetch};

    /// Same code as the scalar version, compiled with AVX2/FMA so LLVM vectorizes it 8-wide.
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

    /// `out[j] = q · k[j·hd..(j+1)·hd]` for 8 keys, `hd = q.len()` a multiple of 8: one
    /// accumulator per key, reduced together by a tree of `hadd`s. `$load` reads 8 keys'
    /// values at a pointer as f32.
    macro_rules! dot8 {
        ($name:ident, $elem:ty, $p:ident => $load:expr) => {
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $name(q: &[f32], k: &[$elem], out: &mut [f32; 8]) {
                let hd = q.len();
                debug_assert!(hd.is_multiple_of(8) && k.len() >= 8 * hd);
                // The keys are read once per step, in order: fetch those [`AHEAD`] bytes on.
                let bytes = 8 * hd * std::mem::size_of::<$elem>();
                let base = k.as_ptr().cast::<u8>().wrapping_add(AHEAD);
                for off in (0..bytes).step_by(64) {
                    prefetch(base.wrapping_add(off));
                }
                let mut acc = [_mm256_setzero_ps(); 8];
                for d in (0..hd).step_by(8) {
                    // SAFETY: d + 8 <= hd and (j + 1)·hd <= k.len(): in bounds.
                    let qv = unsafe { _mm256_loadu_ps(q.as_ptr().add(d)) };
                    for (j, a) in acc.iter_mut().enumerate() {
                        let $p = unsafe { k.as_ptr().add(j * hd + d) };
                        let kv = unsafe { $load };
                        *a = _mm256_fmadd_ps(qv, kv, *a);
                    }
                }
                // [A01 A23 B01 B23 | A45 A67 B45 B67] … → low halves + high halves per key.
                let ab = _mm256_hadd_ps(acc[0], acc[1]);
                let cd = _mm256_hadd_ps(acc[2], acc[3]);
                let ef = _mm256_hadd_ps(acc[4], acc[5]);
                let gh = _mm256_hadd_ps(acc[6], acc[7]);
                let abcd = _mm256_hadd_ps(ab, cd);
                let efgh = _mm256_hadd_ps(ef, gh);
                let lo = _mm256_permute2f128_ps(abcd, efgh, 0x20);
                let hi = _mm256_permute2f128_ps(abcd, efgh, 0x31);
                // SAFETY: `out` holds 8 f32; unaligned store.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(lo, hi)) };
            }
        };
    }
    /// `out += Σ_j p[j]·v[j]`, `out.len()` a multiple of 8: 64 columns at a time in 8
    /// register accumulators, one pass over the keys per 64 columns.
    macro_rules! weighted_sum {
        ($name:ident, $elem:ty, $p:ident => $load:expr) => {
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $name(p: &[f32], v: &[$elem], out: &mut [f32]) {
                let hd = out.len();
                debug_assert!(hd.is_multiple_of(8) && v.len() >= p.len() * hd);
                for c0 in (0..hd).step_by(64) {
                    let vecs = (hd - c0).min(64) / 8;
                    let mut acc = [_mm256_setzero_ps(); 8];
                    for (j, &w) in p.iter().enumerate() {
                        if c0 == 0 {
                            // Each value row is read once per step: fetch [`AHEAD`] bytes on.
                            let row = v.as_ptr().wrapping_add(j * hd).cast::<u8>();
                            let bytes = hd * std::mem::size_of::<$elem>();
                            for off in (0..bytes).step_by(64) {
                                prefetch(row.wrapping_add(AHEAD + off));
                            }
                        }
                        let wv = _mm256_set1_ps(w);
                        for (c, a) in acc.iter_mut().enumerate().take(vecs) {
                            // SAFETY: j < p.len() and c0 + 8c + 8 <= hd: in bounds.
                            let $p = unsafe { v.as_ptr().add(j * hd + c0 + 8 * c) };
                            *a = _mm256_fmadd_ps(wv, unsafe { $load }, *a);
                        }
                    }
                    for (c, a) in acc.iter().enumerate().take(vecs) {
                        // SAFETY: c0 + 8c + 8 <= hd = out.len().
                        unsafe {
                            let o = out.as_mut_ptr().add(c0 + 8 * c);
                            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), *a));
                        }
                    }
                }
            }
        };
    }
    weighted_sum!(weighted_sum_f32, f32, p => _mm256_loadu_ps(p));
    weighted_sum!(weighted_sum_f16, f16, p => _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>())));
    dot8!(dot8_f32, f32, p => _mm256_loadu_ps(p));
    dot8!(dot8_f16, f16, p => _mm256_cvtph_ps(_mm_loadu_si128(p.cast::<__m128i>())));

    /// Eight halves widened to f32 (`vcvtph2ps`).
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn widen(x: &[f16]) -> __m256 {
        debug_assert!(x.len() >= 8);
        // SAFETY: the caller passes at least 8 halves (16 bytes); unaligned load.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().cast::<__m128i>())) }
    }

    /// The sum of the 8 lanes.
    #[target_feature(enable = "avx2")]
    unsafe fn hsum(v: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 f32; unaligned store.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        lanes.iter().sum()
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n, so both reads stay inside the slices.
            unsafe {
                let x = _mm256_loadu_ps(a.as_ptr().add(i));
                acc = _mm256_fmadd_ps(x, widen(&b[i..]), acc);
            }
            i += 8;
        }
        // SAFETY: AVX2 is enabled for this function.
        let mut sum = unsafe { hsum(acc) };
        for j in i..n {
            sum += a[j] * b[j].to_f32();
        }
        sum
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn axpy_f16(alpha: f32, x: &[f16], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let a = _mm256_set1_ps(alpha);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n, so the reads and the write stay inside the slices.
            unsafe {
                let p = y.as_mut_ptr().add(i);
                _mm256_storeu_ps(p, _mm256_fmadd_ps(a, widen(&x[i..]), _mm256_loadu_ps(p)));
            }
            i += 8;
        }
        for j in i..n {
            y[j] = alpha.mul_add(x[j].to_f32(), y[j]);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 2000) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    /// Σ a·b in f64: the scalar reference.
    fn reference(a: &[f32], b: impl Iterator<Item = f32>) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(y))
            .sum()
    }

    #[test]
    fn dot_and_axpy_match_the_scalar_reference_at_every_tail_length() {
        for n in [0, 1, 7, 8, 9, 16, 63, 64, 65] {
            let (a, b) = (values(n, 1), values(n, 2));
            let scalar = reference(&a, b.iter().copied());
            // f32 accumulation in a different order: a few ulps of the sum of |products|.
            let got = f64::from(<f32 as KvElem>::dot(&a, &b));
            assert!((got - scalar).abs() < 1e-5 * (n as f64 + 1.0), "n={n}");
            let mut y = b.clone();
            <f32 as KvElem>::axpy(0.37, &a, &mut y);
            for i in 0..n {
                let want = 0.37f32.mul_add(a[i], b[i]);
                assert!((y[i] - want).abs() <= 1e-6, "n={n} i={i}");
            }
        }
    }

    #[test]
    fn dot8_equals_eight_scalar_dots_for_f32_and_f16_keys() {
        for hd in [8, 16, 64, 12] {
            let q = values(hd, 5);
            let k = values(8 * hd, 6);
            let kh: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
            let (mut got, mut got_h) = ([0f32; 8], [0f32; 8]);
            <f32 as KvElem>::dot8(&q, &k, &mut got);
            <f16 as KvElem>::dot8(&q, &kh, &mut got_h);
            for j in 0..8 {
                let want = reference(&q, k[j * hd..(j + 1) * hd].iter().copied());
                let want_h = reference(&q, kh[j * hd..(j + 1) * hd].iter().map(|x| x.to_f32()));
                assert!(
                    (f64::from(got[j]) - want).abs() < 1e-5 * hd as f64,
                    "hd {hd} key {j}"
                );
                assert!(
                    (f64::from(got_h[j]) - want_h).abs() < 1e-5 * hd as f64,
                    "hd {hd} key {j}"
                );
            }
        }
    }

    #[test]
    fn weighted_sum_equals_the_scalar_sum_for_f32_and_f16_values() {
        for (hd, keys) in [(64, 37), (8, 5), (128, 9), (72, 3), (12, 4)] {
            let p = values(keys, 7);
            let v = values(keys * hd, 8);
            let vh: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            let start = values(hd, 9);
            let (mut got, mut got_h) = (start.clone(), start.clone());
            <f32 as KvElem>::weighted_sum(&p, &v, &mut got);
            <f16 as KvElem>::weighted_sum(&p, &vh, &mut got_h);
            for d in 0..hd {
                let want = f64::from(start[d]) + reference(&p, (0..keys).map(|j| v[j * hd + d]));
                let want_h =
                    f64::from(start[d]) + reference(&p, (0..keys).map(|j| vh[j * hd + d].to_f32()));
                assert!(
                    (f64::from(got[d]) - want).abs() < 1e-5 * keys as f64,
                    "hd {hd} d {d}"
                );
                assert!(
                    (f64::from(got_h[d]) - want_h).abs() < 1e-5 * keys as f64,
                    "hd {hd} d {d}"
                );
            }
        }
    }

    #[test]
    fn f16_dot_and_axpy_widen_exactly_at_every_tail_length() {
        for n in [0, 1, 7, 8, 9, 16, 63, 64, 65] {
            let a = values(n, 3);
            let b: Vec<f16> = values(n, 4).into_iter().map(f16::from_f32).collect();
            // Widening an f16 is exact, so the reference is the f64 sum of the widened values.
            let scalar = reference(&a, b.iter().map(|x| x.to_f32()));
            let got = f64::from(<f16 as KvElem>::dot(&a, &b));
            assert!((got - scalar).abs() < 1e-5 * (n as f64 + 1.0), "n={n}");
            let mut y = a.clone();
            <f16 as KvElem>::axpy(-0.61, &b, &mut y);
            for i in 0..n {
                let want = (-0.61f32).mul_add(b[i].to_f32(), a[i]);
                assert!((y[i] - want).abs() <= 1e-6, "n={n} i={i}");
            }
        }
    }
}
