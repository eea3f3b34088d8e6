//! Our kernels against candle's dequantized f32 matmul, and SIMD against scalar.

use super::simd::{dot_q4_1_q8_1_scalar, dot_q8_0_f32_scalar};
use super::simd_rows::{Q8_1Groups, dot_q4_1_q8_1_rows, dot_q8_0_f32_rows};
use super::*;

/// Deterministic pseudo-random values in [-1, 1].
fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f32 + seed) * 12.9898).sin())
        .collect()
}

/// Max |ours − dequantized f32 matmul| relative to max |reference|.
fn relative_error(dtype: GgmlDType, rows: usize) -> f32 {
    let cpu = &Device::Cpu;
    // 320 = 10 blocks: two 4-block scale batches and a tail of 2.
    let w = Tensor::from_vec(values(40 * 320, 0.5), (40, 320), cpu).unwrap();
    let x = Tensor::from_vec(values(rows * 320, 7.0), (rows, 320), cpu).unwrap();
    let q = QTensor::quantize(&w, dtype).unwrap();
    let reference = x.matmul(&q.dequantize(cpu).unwrap().t().unwrap()).unwrap();
    let ours = QuantMatrix::from_qtensor(&q)
        .unwrap()
        .unwrap()
        .forward(&x)
        .unwrap();
    let max = |t: Tensor| {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    max((ours - &reference).unwrap()) / max(reference)
}

#[test]
fn q4_1_kernel_matches_dequantized_matmul_to_activation_precision() {
    // Decode rows quantize activations to 8 bits (as llama.cpp does): ~1% agreement.
    let err = relative_error(GgmlDType::Q4_1, 3);
    assert!(err < 0.02, "relative error {err}");
}

#[test]
fn q4_1_prefill_rows_use_exact_dequantized_gemm() {
    let err = relative_error(GgmlDType::Q4_1, GEMM_MIN_ROWS + 3);
    assert!(err < 1e-5, "relative error {err}");
}

#[test]
fn q8_0_kernel_matches_dequantized_matmul_exactly() {
    let err = relative_error(GgmlDType::Q8_0, 3);
    assert!(err < 1e-5, "relative error {err}");
}

#[test]
fn q4_1_simd_kernel_equals_scalar_kernel() {
    let cpu = &Device::Cpu;
    let w = Tensor::from_vec(values(2 * 320, 0.5), (2, 320), cpu).unwrap();
    let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
    let m = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
    let Blocks::Q4_1 { scales, nibbles } = &m.blocks else {
        panic!("not Q4_1")
    };
    let a = Q8_1Row::quantize(&values(320, 3.0));
    let (simd, scalar) = (
        dot_q4_1_q8_1(&scales[..10], &nibbles[..10], &a),
        dot_q4_1_q8_1_scalar(&scales[..10], &nibbles[..10], &a),
    );
    assert!(
        (simd - scalar).abs() <= 1e-4 * scalar.abs().max(1.0),
        "{simd} vs {scalar}"
    );
}

#[test]
fn concat_stacks_output_rows() {
    let cpu = &Device::Cpu;
    let w = Tensor::from_vec(values(64 * 64, 1.0), (64, 64), cpu).unwrap();
    let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
    let m = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
    let both = QuantMatrix::concat(&[&m, &m]).unwrap();
    let x = Tensor::from_vec(values(64, 2.0), (1, 64), cpu).unwrap();
    let (one, two) = (forward_values(&m, &x), forward_values(&both, &x));
    assert_eq!([one.clone(), one].concat(), two);
}

/// Seeded pseudo-random values in [-1, 1) (xorshift64*).
pub(super) fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40; // 24 bits
            bits as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// `[out, in]` weights quantized to `dtype` and taken over by our kernels.
pub(super) fn quant_matrix(w: &[f32], out: usize, dtype: GgmlDType) -> QuantMatrix {
    let w = Tensor::from_vec(w.to_vec(), (out, w.len() / out), &Device::Cpu).unwrap();
    QuantMatrix::from_qtensor(&QTensor::quantize(&w, dtype).unwrap())
        .unwrap()
        .unwrap()
}

/// `m.forward(x)` flattened to its values.
pub(super) fn forward_values(m: &QuantMatrix, x: &Tensor) -> Vec<f32> {
    m.forward(x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Σ|w·x| over one weight row: the scale of the rounding errors of any summation order.
pub(super) fn magnitude(w: &[f32], x: &[f32]) -> f32 {
    w.iter().zip(x).map(|(w, x)| (w * x).abs()).sum()
}

/// The multi-row kernels add the same exact integer (Q4_1) or f32-converted (Q8_0) block
/// products as the scalar single-row reference; only f32 rounding differs: the scales are
/// multiplied in another order, each block's halves (Q4_1) or quarters (Q8_0) are accumulated
/// in other lanes, and the blocks are summed in another order. Each step errs by at most an
/// ulp or so of the running sum, so over ≤ 10 blocks 1e-5·Σ|w·x| (~100 f32 ulps) bounds it
/// with a wide margin (the AVX-512 tests in `tests_wide.rs` go to 48 blocks, about as many
/// rounding steps as that bound allows at worst; the errors are signed, so they add far less),
/// while a wrong lane, block or row would be off by ~1/nb of Σ|w·x|.
pub(super) const ROUNDING: f32 = 1e-5;

/// Q4_1 weights `[out, in]` against `t` rows: the multi-row kernel against the scalar kernel
/// row by row; max |Δ| / Σ|w·x|.
fn q4_1_rows_error(w: &[f32], x: &[f32], out_dim: usize, t: usize) -> f32 {
    let in_dim = w.len() / out_dim;
    let m = quant_matrix(w, out_dim, GgmlDType::Q4_1);
    let Blocks::Q4_1 { scales, nibbles } = &m.blocks else {
        panic!("not Q4_1")
    };
    let acts: Vec<Q8_1Row> = x.chunks_exact(in_dim).map(Q8_1Row::quantize).collect();
    let groups = Q8_1Groups::new(&acts);
    let nb = in_dim / BLOCK;
    let mut worst = 0f32;
    for row in 0..out_dim {
        let (s, q) = (&scales[row * nb..][..nb], &nibbles[row * nb..][..nb]);
        let mut got = vec![f32::NAN; t];
        dot_q4_1_q8_1_rows(s, q, &acts, &groups, &mut got);
        for (r, (got, a)) in got.iter().zip(&acts).enumerate() {
            let want = dot_q4_1_q8_1_scalar(s, q, a);
            let scale = magnitude(&w[row * in_dim..][..in_dim], &x[r * in_dim..][..in_dim]);
            worst = worst.max((got - want).abs() / scale.max(f32::MIN_POSITIVE));
        }
    }
    worst
}

#[test]
fn q4_1_multi_row_kernel_equals_scalar_kernel_for_1_to_9_rows() {
    for (nb, out_dim) in [(1, 3), (3, 5), (10, 4)] {
        let in_dim = nb * BLOCK;
        let w = random(out_dim * in_dim, nb as u64);
        for t in 1..=9 {
            let x = random(t * in_dim, 100 + t as u64);
            let err = q4_1_rows_error(&w, &x, out_dim, t);
            assert!(err < ROUNDING, "{nb} blocks, {t} rows: {err}");
        }
    }
}

#[test]
fn q4_1_multi_row_kernel_does_not_overflow_at_extreme_values() {
    // Nibbles of 15 (every weight at its row's max but one) against activations all quantized
    // to ±127: the largest 16-bit partial sums the kernel forms (4·2·15·127 = 15240).
    let (nb, out_dim) = (2, 2);
    let in_dim = nb * BLOCK;
    let w: Vec<f32> = (0..out_dim * in_dim)
        .map(|i| if i % BLOCK == 0 { 0.0 } else { 1.0 })
        .collect();
    for t in 1..=9 {
        let x: Vec<f32> = (0..t * in_dim)
            .map(|i| [1.0, -1.0][(i / in_dim) % 2])
            .collect();
        let err = q4_1_rows_error(&w, &x, out_dim, t);
        assert!(err < ROUNDING, "{t} rows: {err}");
    }
}

#[test]
fn q8_0_multi_row_kernel_equals_scalar_kernel_for_1_to_9_rows() {
    for (nb, out_dim) in [(1, 3), (3, 5), (10, 4)] {
        let in_dim = nb * BLOCK;
        let w = random(out_dim * in_dim, 7 + nb as u64);
        let m = quant_matrix(&w, out_dim, GgmlDType::Q8_0);
        let Blocks::Q8_0 { scales, quants } = &m.blocks else {
            panic!("not Q8_0")
        };
        for t in 1..=9 {
            let x = random(t * in_dim, 200 + t as u64);
            for row in 0..out_dim {
                let (s, q) = (&scales[row * nb..][..nb], &quants[row * nb..][..nb]);
                let mut got = vec![f32::NAN; t];
                dot_q8_0_f32_rows(s, q, &x, &mut got);
                for (r, (got, xr)) in got.iter().zip(x.chunks_exact(in_dim)).enumerate() {
                    let want = dot_q8_0_f32_scalar(s, q, xr);
                    let scale = magnitude(&w[row * in_dim..][..in_dim], xr);
                    let err = (got - want).abs() / scale;
                    assert!(err < ROUNDING, "{nb} blocks, {t} rows, row {r}: {err}");
                }
            }
        }
    }
}

#[test]
fn forward_with_1_to_9_rows_matches_references() {
    // Through `forward` (rows regrouped, columns transposed back): Q8_0 against candle's
    // dequantize-then-f32 matmul (exact up to rounding), Q4_1 against the scalar kernel on
    // each row (the Q8_1 activation quantization is the kernel's, not rounding).
    let cpu = &Device::Cpu;
    let (out_dim, in_dim) = (37, 5 * BLOCK);
    let w = random(out_dim * in_dim, 11);
    for t in 1..=9 {
        let xv = random(t * in_dim, 300 + t as u64);
        let x = Tensor::from_vec(xv.clone(), (t, in_dim), cpu).unwrap();
        let scale: Vec<f32> = (0..t * out_dim)
            .map(|i| {
                let (r, o) = (i / out_dim, i % out_dim);
                magnitude(&w[o * in_dim..][..in_dim], &xv[r * in_dim..][..in_dim])
            })
            .collect();
        let rows = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };

        let q8 = quant_matrix(&w, out_dim, GgmlDType::Q8_0);
        let want = rows(x.matmul(&q8.dequantize().unwrap().t().unwrap()).unwrap());
        for (i, (g, w)) in rows(q8.forward(&x).unwrap()).iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() < ROUNDING * scale[i],
                "Q8_0, {t} rows, [{i}]: {g} vs {w}"
            );
        }

        let q4 = quant_matrix(&w, out_dim, GgmlDType::Q4_1);
        let Blocks::Q4_1 { scales, nibbles } = &q4.blocks else {
            panic!("not Q4_1")
        };
        let nb = in_dim / BLOCK;
        let got = rows(q4.forward(&x).unwrap());
        for (r, xr) in xv.chunks_exact(in_dim).enumerate() {
            let a = Q8_1Row::quantize(xr);
            for o in 0..out_dim {
                let want =
                    dot_q4_1_q8_1_scalar(&scales[o * nb..][..nb], &nibbles[o * nb..][..nb], &a);
                let (g, i) = (got[r * out_dim + o], r * out_dim + o);
                assert!(
                    (g - want).abs() < ROUNDING * scale[i],
                    "Q4_1, {t} rows, [{i}]: {g} vs {want}"
                );
            }
        }
    }
}

/// The embedding lookup of a tied quantized head: rows equal candle's own dequantization of
/// the same blocks (the oracle), in the order asked, repeats included; a row past the matrix
/// is an error.
#[test]
fn dequantized_rows_equal_candles_dequantization() {
    let (out, inp) = (7, 96);
    let w = random(out * inp, 11);
    for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
        let wt = Tensor::from_vec(w.clone(), (out, inp), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&wt, dtype).unwrap();
        let want: Vec<Vec<f32>> = q.dequantize(&Device::Cpu).unwrap().to_vec2().unwrap();
        let m = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
        let ids = [6u32, 0, 3, 3];
        let got: Vec<Vec<f32>> = m.dequantize_rows(&ids).unwrap().to_vec2().unwrap();
        for (row, &id) in got.iter().zip(&ids) {
            assert_eq!(row, &want[id as usize], "{dtype:?} row {id}");
        }
        assert!(m.dequantize_rows(&[7]).is_err());
    }
}
