//! Forward / backward time of a small config (run by hand: `cargo test --release -p
//! anllm-train --test train_grad -- --ignored --nocapture`). Benchmarks: they print times and
//! assert nothing, hence ignored.

use std::time::Instant;

use anllm::LlamaConfig;
use anllm_train::model::{Kernels, TrainModel};
use candle_core::{DType, Device};

use super::batch;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Hidden 256, 4 layers, 4 heads, FFN 704, vocab 32000; one row of 255 tokens, f32.
#[test]
#[ignore = "timing benchmark: prints times, asserts nothing; run by hand"]
fn model_timing_tiny_256() {
    let cfg = LlamaConfig {
        vocab_size: 32000,
        hidden_size: 256,
        intermediate_size: 704,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        num_key_value_heads: Some(4),
        head_dim: None,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        max_position_embeddings: 256,
        tie_word_embeddings: true,
        rope_scaling: None,
    };
    for kernels in [Kernels::Fused, Kernels::Composed] {
        let model = TrainModel::init(&cfg, 1, DType::F32, &Device::Cpu).unwrap();
        time_model(&model.with_kernels(kernels));
    }
}

fn time_model(model: &TrainModel) {
    // Anchors (ids 10, 11) every 16 tokens.
    let row: Vec<u32> = (0..256u32)
        .map(|i| {
            if i % 16 == 15 {
                10
            } else {
                100 + (i * 7919) % 31000
            }
        })
        .collect();
    let batch = batch(&[row], &[0], None);
    let (mut fwd, mut bwd, mut both) = (vec![], vec![], vec![]);
    for rep in 0..7 {
        let start = Instant::now();
        let loss = model.loss(&batch).unwrap();
        let f = start.elapsed().as_secs_f64();
        let grads = loss.backward().unwrap();
        let total = start.elapsed().as_secs_f64();
        drop(grads);
        if rep > 0 {
            fwd.push(f * 1e3);
            bwd.push((total - f) * 1e3);
            both.push(total * 1e3);
        }
    }
    let forward_only: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            model.forward(&batch).unwrap();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    eprintln!(
        "train model 256x4, vocab 32000, 1x255, {:?}, {} threads: loss forward {:.1} ms (min {:.1}), \
         backward {:.1} ms (min {:.1}), both {:.1} ms (min {:.1}); logits forward {:.1} ms",
        model.kernels(),
        rayon::current_num_threads(),
        median(fwd.clone()),
        fwd.iter().copied().fold(f64::MAX, f64::min),
        median(bwd.clone()),
        bwd.iter().copied().fold(f64::MAX, f64::min),
        median(both.clone()),
        both.iter().copied().fold(f64::MAX, f64::min),
        median(forward_only),
    );
}

/// The LM head's matmul alone (1 × 255 rows of width 256 against 32000 vocabulary rows), the
/// largest GEMM of the tiny config's step: forward, and the two GEMMs of its backward.
#[test]
#[ignore = "timing benchmark: prints times, asserts nothing; run by hand"]
fn gemm_timing_lm_head() {
    let dev = Device::Cpu;
    let x = candle_core::Tensor::randn(0f32, 1.0, (255, 256), &dev).unwrap();
    let w = candle_core::Tensor::randn(0f32, 1.0, (32000, 256), &dev).unwrap();
    let g = candle_core::Tensor::randn(0f32, 1.0, (255, 32000), &dev).unwrap();
    let time = |f: &dyn Fn()| {
        f();
        median(
            (0..9)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        )
    };
    let flops = 2.0 * 255.0 * 256.0 * 32000.0;
    for (name, ms) in [
        (
            "x·Wᵀ (forward)",
            time(&|| drop(x.matmul(&w.t().unwrap()).unwrap())),
        ),
        (
            "gᵀ·x (weight grad)",
            time(&|| drop(g.t().unwrap().matmul(&x).unwrap())),
        ),
        ("g·W (input grad)", time(&|| drop(g.matmul(&w).unwrap()))),
    ] {
        eprintln!(
            "lm head {name}, {} threads: {ms:.1} ms, {:.1} GFLOP/s",
            rayon::current_num_threads(),
            flops / ms / 1e6
        );
    }
}
