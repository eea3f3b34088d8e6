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
}

impl KvElem for f32 {
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
