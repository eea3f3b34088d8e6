//! The AVX-512 kernels and the AVX2 activation quantizer against the scalar references, and
//! what `forward` runs for one row on this CPU at the model's widths.

use super::act::Q8_1Row;
use super::simd::{dot_q4_1_q8_1_scalar, dot_q8_0_f32_scalar, has_avx2};
use super::tests::{ROUNDING, forward_values, magnitude, quant_matrix, random};
use super::*;

/// Block counts the AVX-512 kernels split differently: a lone block, an odd last pair, one
/// and two whole scale groups of 8 with tails, and the model's widths (576 = 18 blocks,
/// 1536 = 48).
const WIDE_BLOCKS: [usize; 9] = [1, 2, 3, 7, 8, 9, 17, 18, 48];

/// Skips (loudly) where the CPU lacks AVX-512 VNNI: the kernels under test cannot run there,
/// and `forward` never picks them.
fn avx512_or_skip(test: &str) -> bool {
    let ok = super::simd512::has_avx512();
    if !ok {
        eprintln!("{test}: this CPU has no AVX-512 F/BW/VL/VNNI; the AVX-512 kernels were not run");
    }
    ok
}

/// Activation rows each kernel is checked on: four seeded random rows and, for Q4_1, one at
/// the extremes (activations all ±127 against nibbles of 15 or 0).
fn activation_rows(in_dim: usize, seed: u64, extreme: bool) -> Vec<Vec<f32>> {
    let mut rows: Vec<Vec<f32>> = (0..4).map(|r| random(in_dim, seed + r)).collect();
    if extreme {
        rows.push((0..in_dim).map(|i| [1.0, -1.0][i % 2]).collect());
    }
    rows
}

#[test]
fn q4_1_avx512_kernel_equals_scalar_kernel() {
    if !avx512_or_skip("q4_1_avx512_kernel_equals_scalar_kernel") {
        return;
    }
    for nb in WIDE_BLOCKS {
        let (out_dim, in_dim) = (3, nb * BLOCK);
        let w = random(out_dim * in_dim, 40 + nb as u64);
        let m = quant_matrix(&w, out_dim, GgmlDType::Q4_1);
        let Blocks::Q4_1 { scales, nibbles } = &m.blocks else {
            panic!("not Q4_1")
        };
        for (r, x) in activation_rows(in_dim, 90 + 10 * nb as u64, true)
            .iter()
            .enumerate()
        {
            let a = Q8_1Row::quantize(x);
            let wide = super::simd512::Q8_1Wide::new(&a);
            for row in 0..out_dim {
                let (s, q) = (&scales[row * nb..][..nb], &nibbles[row * nb..][..nb]);
                let got = super::simd512::dot_q4_1_q8_1(s, q, &wide);
                let want = dot_q4_1_q8_1_scalar(s, q, &a);
                let err = (got - want).abs() / magnitude(&w[row * in_dim..][..in_dim], x);
                assert!(
                    err < ROUNDING,
                    "{nb} blocks, row {row}, activations {r}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn q8_0_avx512_kernel_equals_scalar_kernel() {
    if !avx512_or_skip("q8_0_avx512_kernel_equals_scalar_kernel") {
        return;
    }
    for nb in WIDE_BLOCKS {
        let (out_dim, in_dim) = (3, nb * BLOCK);
        let w = random(out_dim * in_dim, 60 + nb as u64);
        let m = quant_matrix(&w, out_dim, GgmlDType::Q8_0);
        let Blocks::Q8_0 { scales, quants } = &m.blocks else {
            panic!("not Q8_0")
        };
        for (r, x) in activation_rows(in_dim, 70 + 10 * nb as u64, false)
            .iter()
            .enumerate()
        {
            for row in 0..out_dim {
                let (s, q) = (&scales[row * nb..][..nb], &quants[row * nb..][..nb]);
                let got = super::simd512::dot_q8_0_f32(s, q, x);
                let want = dot_q8_0_f32_scalar(s, q, x);
                let err = (got - want).abs() / magnitude(&w[row * in_dim..][..in_dim], x);
                assert!(
                    err < ROUNDING,
                    "{nb} blocks, row {row}, activations {r}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn single_row_kernels_equal_scalar_kernels_at_every_width() {
    // What `forward` runs for one row on this CPU (AVX-512, AVX2 or scalar), with its
    // prefetching, against the scalar kernels, at the widths above.
    for nb in WIDE_BLOCKS {
        let (out_dim, in_dim) = (5, nb * BLOCK);
        let w = random(out_dim * in_dim, 80 + nb as u64);
        let xv = random(in_dim, 85 + nb as u64);
        let x = Tensor::from_vec(xv.clone(), (1, in_dim), &Device::Cpu).unwrap();
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let m = quant_matrix(&w, out_dim, dtype);
            let got = forward_values(&m, &x);
            for (row, g) in got.iter().enumerate() {
                let want = match &m.blocks {
                    Blocks::Q4_1 { scales, nibbles } => dot_q4_1_q8_1_scalar(
                        &scales[row * nb..][..nb],
                        &nibbles[row * nb..][..nb],
                        &Q8_1Row::quantize(&xv),
                    ),
                    Blocks::Q8_0 { scales, quants } => dot_q8_0_f32_scalar(
                        &scales[row * nb..][..nb],
                        &quants[row * nb..][..nb],
                        &xv,
                    ),
                };
                let err = (g - want).abs() / magnitude(&w[row * in_dim..][..in_dim], &xv);
                assert!(
                    err < ROUNDING,
                    "{dtype:?}, {nb} blocks, row {row}: {g} vs {want}"
                );
            }
        }
    }
}

#[test]
fn avx2_activation_quantizer_equals_scalar_exactly() {
    use super::act::{avx2, quantize_block_scalar};
    if !has_avx2() {
        eprintln!("avx2_activation_quantizer_equals_scalar_exactly: no AVX2 on this CPU; not run");
        return;
    }
    // Random blocks at several magnitudes, exact ties (x/d = k + 0.5: 63.5 → 64, 62.5 → 62),
    // an all-zero block and one spike.
    let mut blocks: Vec<[f32; 32]> = (0..64)
        .map(|i| {
            let v = random(32, 500 + i);
            std::array::from_fn(|j| v[j] * 10f32.powi(i as i32 % 7 - 3))
        })
        .collect();
    blocks.push(std::array::from_fn(|j| {
        [127.0, 63.5, -62.5, 0.5, -1.5][j % 5]
    }));
    blocks.push([0.0; 32]);
    blocks.push(std::array::from_fn(|j| if j == 17 { -3.0 } else { 1e-3 }));
    for (i, b) in blocks.iter().enumerate() {
        // SAFETY: AVX2 was detected above.
        #[allow(unsafe_code)]
        let got = unsafe { avx2::quantize_block(b) };
        assert_eq!(got, quantize_block_scalar(b), "block {i}");
    }
    let ties = quantize_block_scalar(&blocks[64]).2;
    assert_eq!(&ties[..5], &[127, 64, -62, 0, -2], "ties to even");
}
