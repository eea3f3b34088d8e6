//! Our kernels against candle's dequantized f32 matmul, and SIMD against scalar.

use super::simd::dot_q4_1_q8_1_scalar;
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
    let one: Vec<f32> = m
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let two: Vec<f32> = both
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!([one.clone(), one].concat(), two);
}

#[test]
#[ignore]
fn zz_bench_rows() {
    use std::time::Instant;
    let cpu = &Device::Cpu;
    let (o, i) = (1536, 576);
    let w = Tensor::from_vec(values(o * i, 0.5), (o, i), cpu).unwrap();
    for dt in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
        let q = QTensor::quantize(&w, dt).unwrap();
        let m = QuantMatrix::from_qtensor(&q).unwrap().unwrap();
        let nb = i / 32;
        for t in [1usize, 2, 4, 8, 16] {
            let xs = values(t * i, 7.0);
            let acts: Vec<Q8_1Row> = xs.chunks_exact(i).map(Q8_1Row::quantize).collect();
            let mut out = vec![0f32; t];
            let reps = 200;
            for mode in 0..2 {
                let start = Instant::now();
                for _ in 0..reps {
                    for row in 0..o {
                        match &m.blocks {
                            Blocks::Q4_1 { scales, nibbles } => {
                                let (s, qq) =
                                    (&scales[row * nb..][..nb], &nibbles[row * nb..][..nb]);
                                if mode == 0 {
                                    for (d, a) in out.iter_mut().zip(&acts) {
                                        *d = dot_q4_1_q8_1(s, qq, a);
                                    }
                                } else {
                                    simd_rows::dot_q4_1_q8_1_rows(s, qq, &acts, &mut out);
                                }
                            }
                            Blocks::Q8_0 { scales, quants } => {
                                let (s, qq) =
                                    (&scales[row * nb..][..nb], &quants[row * nb..][..nb]);
                                if mode == 0 {
                                    for (d, a) in out.iter_mut().zip(xs.chunks_exact(i)) {
                                        *d = dot_q8_0_f32(s, qq, a);
                                    }
                                } else {
                                    simd_rows::dot_q8_0_f32_rows(s, qq, &xs, &mut out);
                                }
                            }
                        }
                        std::hint::black_box(&out);
                    }
                }
                let ns = start.elapsed().as_secs_f64() * 1e9 / (reps * o * nb * t) as f64;
                eprintln!("{dt:?} t={t} mode={mode} {ns:.3} ns/row-block");
            }
        }
    }
}
