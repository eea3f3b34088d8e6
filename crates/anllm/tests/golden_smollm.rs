//! The default model against HF transformers' reference outputs (`tests/golden/smollm2-hf.json`),
//! on token ids directly so that the model is tested independently of the tokenizer.

use anllm::weights::{WeightDtype, WeightSource, read_config};
use anllm::{ForwardInput, KvDtype, Llama, OutputRows, Pos};
use candle_core::{D, Device};

fn load(dtype: WeightDtype) -> Llama {
    let device = Device::Cpu;
    let mut src =
        WeightSource::open_gguf(&anllm::testutil::default_model(), dtype, &device).unwrap();
    let cfg = read_config(&src).unwrap();
    Llama::load(&mut src, &cfg, &device).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn positions(start: usize, n: usize) -> Vec<Pos> {
    (start..start + n).map(|p| Pos(p as u32)).collect()
}

fn greedy(model: &Llama, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut cache = model.new_cache(64).unwrap();
    let mut out = Vec::new();
    let mut input = prompt.to_vec();
    for _ in 0..n {
        let pos = positions(cache.len(), input.len());
        let logits = model
            .forward(
                &ForwardInput::causal(&input, &pos, OutputRows::Last),
                &mut cache,
            )
            .unwrap();
        let next = logits
            .squeeze(0)
            .unwrap()
            .argmax(D::Minus1)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
        out.push(next);
        input = vec![next];
    }
    out
}

/// Summed log-probability of `cont` after `ctx`, and whether it is the greedy continuation.
fn loglik(model: &Llama, ctx: &[u32], cont: &[u32]) -> (f32, bool) {
    let mut cache = model.new_cache(64).unwrap();
    let all: Vec<u32> = ctx.iter().chain(cont).copied().collect();
    let pos = positions(0, all.len());
    let rows = OutputRows::From(ctx.len() - 1);
    let logits = model
        .forward(
            &ForwardInput::causal(&all[..all.len() - 1], &pos[..all.len() - 1], rows),
            &mut cache,
        )
        .unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let greedy: Vec<u32> = logp.argmax(D::Minus1).unwrap().to_vec1().unwrap();
    let logp: Vec<Vec<f32>> = logp.to_vec2().unwrap();
    let sum = cont
        .iter()
        .enumerate()
        .map(|(i, &c)| logp[i][c as usize])
        .sum();
    (sum, greedy == cont)
}

#[test]
fn smollm_f32_greedy_matches_hf_transformers() {
    let gold = anllm::testutil::golden("smollm2-hf.json");
    let case = &gold["greedy"][0];
    let model = load(WeightDtype::F32);
    let got = greedy(&model, &ids(&case["prompt_ids"]), 16);
    assert_eq!(got, ids(&case["new_ids"]));
}

/// An f16 cache rounds every key and value once (about 3 significant digits); on the f32
/// weights the greedy text must still be HF's, token for token.
#[test]
fn smollm_f32_weights_f16_kv_greedy_matches_hf_transformers() {
    let gold = anllm::testutil::golden("smollm2-hf.json");
    let case = &gold["greedy"][0];
    let model = load(WeightDtype::F32).with_kv_dtype(KvDtype::F16);
    let got = greedy(&model, &ids(&case["prompt_ids"]), 16);
    assert_eq!(got, ids(&case["new_ids"]));
}

#[test]
fn smollm_quantized_greedy_starts_with_paris() {
    let gold = anllm::testutil::golden("smollm2-hf.json");
    let case = &gold["greedy"][0];
    let model = load(WeightDtype::Auto);
    let got = greedy(&model, &ids(&case["prompt_ids"]), 2);
    assert_eq!(
        got[0],
        ids(&case["new_ids"])[0],
        "first token must be ' Paris'"
    );
}

#[test]
fn smollm_loglik_matches_hf_transformers() {
    let gold = anllm::testutil::golden("smollm2-hf.json");
    // f16 KV on f32 weights: the rounding of K/V (relative 2^-11) moves a summed
    // log-probability by a few 1e-3 at most; the quantized weights' own 0.05 covers it there.
    let runs = [
        (WeightDtype::F32, KvDtype::F32, 1e-3f32),
        (WeightDtype::F32, KvDtype::F16, 1e-2),
        (WeightDtype::Auto, KvDtype::F32, 0.05),
        (WeightDtype::Auto, KvDtype::F16, 0.05),
    ];
    for (dtype, kv, tol) in runs {
        let model = load(dtype).with_kv_dtype(kv);
        for case in gold["loglik"].as_array().unwrap() {
            let (sum, is_greedy) = loglik(
                &model,
                &ids(&case["context_ids"]),
                &ids(&case["continuation_ids"]),
            );
            let want = case["sum_logprob"].as_f64().unwrap() as f32;
            eprintln!(
                "{dtype:?} {kv:?} {}: got {sum}, want {want}",
                case["continuation"]
            );
            assert!(
                (sum - want).abs() <= tol,
                "{dtype:?} {kv:?} {case}: got {sum}, want {want}"
            );
            assert_eq!(is_greedy, case["is_greedy"].as_bool().unwrap());
        }
    }
}
