//! A vectorized `exp` for f32 slices: the softmax of attention, of the sampler and of the
//! training cross-entropy spend most of their time in it, and libm's scalar `expf` handles one
//! value per call (it was 8.5% of a training step's CPU and 11% of a pp2048 prefill profile).
//!
//! Method (as Cephes' `expf`): `x = n·ln 2 + r` with `n = round(x / ln 2)` and `|r| ≤ ln 2 / 2`
//! (ln 2 split in two constants so `r` is exact), `exp(r)` by a degree-7 polynomial, and `2ⁿ`
//! written into the exponent bits. Relative error ≤ 2 ulp over the normal range (tested against
//! f64 `exp`). Below −87.33 (where `exp` leaves the normal f32 range) the result is exactly 0,
//! so a masked −∞ gives a probability of exactly 0; above 88.72 it is +∞; NaN stays NaN.
//!
//! The loop is plain Rust, compiled once with AVX2 + FMA (8 lanes, chosen at run time) and once
//! for the baseline target; both compute the same formula.

#![allow(unsafe_code)] // std::arch via #[target_feature], guarded by runtime detection.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4; // 0.693359375: few mantissa bits, so n·LN2_HI is exact
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2²³: adding it rounds to an integer (to nearest, even) kept in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;
const MIN_X: f32 = -87.336_55; // ln(f32::MIN_POSITIVE)
const MAX_X: f32 = 88.722_83; // ln(f32::MAX)
/// Taylor coefficients 1/k! for k = 2..7 (the error of the truncation is below f32's).
const P: [f32; 6] = [
    0.5,
    0.166_666_67,
    0.041_666_668,
    0.008_333_334,
    0.001_388_889,
    0.000_198_412_7,
];

/// `exp(x)` of one value, by the formula of this module.
#[inline(always)]
fn exp1(x: f32) -> f32 {
    let xc = x.clamp(MIN_X, MAX_X);
    let t = xc.mul_add(LOG2E, ROUNDER);
    let n = t - ROUNDER;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, xc));
    let mut p = P[5];
    for c in P[..5].iter().rev() {
        p = p.mul_add(r, *c);
    }
    let y = (p * r).mul_add(r, r) + 1.0;
    // t's low mantissa bits hold n (above the rounder's own bits). 2ⁿ is applied as two
    // factors 2^(n/2) and 2^(n − n/2), each a valid normal f32 for every n in [−126, 128].
    let n = (t.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let y = y * pow2(n >> 1) * pow2(n - (n >> 1));
    if x < MIN_X {
        0.0
    } else if x > MAX_X {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// Replaces each `x` by `exp(x)`.
pub fn exp_in_place(xs: &mut [f32]) {
    exp_sub_sum(xs, 0.0);
}

/// Replaces each `x` by `exp(x − shift)` (a −∞ by exactly 0) and returns their sum.
pub fn exp_sub_sum(xs: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { avx2::exp_sub_sum(xs, shift) };
    }
    exp_sub_sum_portable(xs, shift)
}

#[inline(always)]
fn exp_sub_sum_portable(xs: &mut [f32], shift: f32) -> f32 {
    // Eight partial sums, so the loop vectorizes (f32 addition is not associative).
    let mut acc = [0f32; 8];
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c.iter_mut()) {
            *x = exp1(*x - shift);
            *a += *x;
        }
    }
    let mut tail = 0.0;
    for x in chunks.into_remainder() {
        *x = exp1(*x - shift);
        tail += *x;
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    /// The portable loop compiled with AVX2 + FMA, so LLVM vectorizes it 8-wide.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_sub_sum(xs: &mut [f32], shift: f32) -> f32 {
        super::exp_sub_sum_portable(xs, shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between `got` and the f64 value `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = (f32::from_bits(w.to_bits() + 1) - w) as f64;
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn exp_matches_f64_within_two_ulp_over_the_normal_range() {
        // Every 997th f32 bit pattern in [−87.3, 88.7], both paths.
        let xs: Vec<f32> = (0..u32::MAX / 997)
            .map(|i| f32::from_bits(i * 997))
            .flat_map(|x| [x, -x])
            .filter(|x| x.is_finite() && *x > -87.3 && *x < 88.7)
            .collect();
        let mut fast = xs.clone();
        exp_in_place(&mut fast);
        let mut portable = xs.clone();
        exp_sub_sum_portable(&mut portable, 0.0);
        let mut worst = 0f64;
        for ((&x, &a), &b) in xs.iter().zip(&fast).zip(&portable) {
            let want = f64::from(x).exp();
            worst = worst.max(ulps(a, want)).max(ulps(b, want));
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn exp_is_exactly_zero_below_the_range_and_infinite_above() {
        let mut xs = vec![
            f32::NEG_INFINITY,
            -1e30,
            -88.0,
            -100.0,
            89.0,
            f32::INFINITY,
            0.0,
        ];
        xs.extend([f32::NEG_INFINITY; 9]); // the vectorized body, not only the tail
        exp_in_place(&mut xs);
        assert_eq!(&xs[..4], &[0.0; 4]);
        assert_eq!(&xs[4..6], &[f32::INFINITY; 2]);
        assert_eq!(xs[6], 1.0);
        assert!(xs[7..].iter().all(|&y| y == 0.0));
        let mut nan = [f32::NAN];
        exp_in_place(&mut nan);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn exp_sub_sum_returns_the_sum_of_the_shifted_exponentials() {
        let row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut got = row.clone();
        let sum = exp_sub_sum(&mut got, max);
        let want: Vec<f64> = row.iter().map(|&x| f64::from(x - max).exp()).collect();
        let want_sum: f64 = want.iter().sum();
        assert!((f64::from(sum) - want_sum).abs() <= 1e-6 * want_sum);
        for (g, w) in got.iter().zip(&want) {
            assert!(ulps(*g, *w) <= 2.0);
        }
    }
}
