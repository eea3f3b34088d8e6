//! The cached forward gives the same logits whatever the prefill chunking: chunks of up to 16
//! rows run the CPU decode-attention kernel, larger ones candle's batched GEMM, and both must
//! agree with one full causal forward (GQA tiny model, f32 and Q8_0 weights).

use std::sync::Arc;

use anllm::testutil::{HfLayout, TinySpec, max_abs_diff, write_gguf_typed, write_hf_dir};
use anllm::{LoadedModel, Session, SessionConfig, TokenId, WeightDtype, load_model};
use candle_core::Device;
use candle_core::quantized::GgmlDType;

fn tokens(n: usize, vocab: usize) -> Vec<TokenId> {
    (0..n)
        .map(|i| ((i * 7919 + 13) % (vocab - 1) + 1) as TokenId)
        .collect()
}

fn all_logits(model: &LoadedModel, ids: &[TokenId], chunk: usize) -> Vec<Vec<f32>> {
    let mut session =
        Session::new(Arc::clone(&model.llama), SessionConfig::causal(chunk), 4).unwrap();
    let logits = session.prefill(ids, 0).unwrap();
    assert_eq!(session.cache().len(), ids.len());
    logits.to_vec2().unwrap()
}

fn assert_chunking_invariant(model: &LoadedModel, vocab: usize, tol: f32) {
    let ids = tokens(70, vocab);
    let reference = all_logits(model, &ids, ids.len());
    for chunk in [1, 2, 3, 5, 16, 17, 33] {
        let got = all_logits(model, &ids, chunk);
        let diff = max_abs_diff(&reference, &got);
        assert!(diff <= tol, "chunk {chunk}: max |Δ| = {diff}");
    }
}

#[test]
fn prefill_chunk_size_does_not_change_logits_f32() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec::gqa();
    write_hf_dir(dir.path(), &spec, HfLayout::Safetensors).unwrap();
    let model = load_model(dir.path(), WeightDtype::F32, &Device::Cpu).unwrap();
    assert_chunking_invariant(&model, spec.vocab, 1e-4);
}

#[test]
fn prefill_chunk_size_does_not_change_logits_f32_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec::gqa();
    let path = dir.path().join("tiny.gguf");
    write_gguf_typed(&path, &spec, GgmlDType::F32, true).unwrap();
    let model = load_model(&path, WeightDtype::Auto, &Device::Cpu).unwrap();
    assert_chunking_invariant(&model, spec.vocab, 1e-4);
}
