//! Shared helpers of the integration tests that need fetched assets.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$ANLLM_HOME`, or `~/.cache/anllm`.
pub fn anllm_home() -> PathBuf {
    std::env::var_os("ANLLM_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/anllm")
        })
}

/// A fetched asset; panics with the fix when it is missing (tests must not skip silently).
pub fn asset(rel: &str) -> PathBuf {
    let p = anllm_home().join(rel);
    assert!(
        p.exists(),
        "missing asset {}: run scripts/fetch-assets.sh first",
        p.display()
    );
    p
}

/// The default model file.
pub fn default_model() -> PathBuf {
    asset("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The shared golden directory (HF transformers reference outputs).
pub fn golden(name: &str) -> serde_json::Value {
    let dir = std::env::var_os("ANLLM_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden")
        });
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("missing golden file {}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden json")
}

/// A tiny seeded GQA model (2 layers, 4 heads over 2 KV heads, 384 ids, context 128), written
/// once per test binary; anchors and pads use the ids in [`ANCHOR`] and [`PAD`].
pub fn tiny_model() -> &'static anllm::LoadedModel {
    use anllm::testutil::{HfLayout, TinySpec, write_hf_dir};
    static MODEL: std::sync::OnceLock<anllm::LoadedModel> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        write_hf_dir(dir.path(), &TinySpec::gqa(), HfLayout::Safetensors).expect("write model");
        anllm::load_model(
            dir.path(),
            anllm::WeightDtype::F32,
            &candle_core::Device::Cpu,
        )
        .expect("load tiny model")
    })
}

/// Anchor ids of the tiny-model tests.
pub const ANCHOR: [anllm::TokenId; 2] = [10, 11];

/// Pad id of the tiny-model tests.
pub const PAD: anllm::TokenId = 12;

/// The tiny tests' anchor set: ids [`ANCHOR`], pad [`PAD`].
pub fn tiny_anchors() -> anllm::AnchorSet {
    anllm::AnchorSet::new(ANCHOR, Some(PAD))
}

/// Largest |a − b| over two logit matrices of equal shape.
pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "row counts differ");
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A tokenizer read from a fetched GGUF file (`rel` under `$ANLLM_HOME`).
pub fn gguf_tokenizer(rel: &str) -> anllm::tokenizer::Tokenizer {
    use candle_core::quantized::gguf_file::Content;
    let path = asset(rel);
    let mut file = std::fs::File::open(&path).expect("open gguf");
    let content = Content::read(&mut file).expect("read gguf");
    anllm::tokenizer::Tokenizer::from_gguf(&content).expect("tokenizer")
}

/// llama.cpp's `test-tokenizer-0` cases of `ggml-vocab-<name>.gguf` (fetched with its `.inp` and
/// `.out` files): each text with its expected ids (no BOS, `parse_special` off).
pub fn llama_cpp_cases(name: &str) -> Vec<(String, Vec<anllm::TokenId>)> {
    const SEPARATOR: &str = "\n__ggml_vocab_test__\n";
    let read = |ext: &str| {
        std::fs::read_to_string(asset(&format!("vocab/ggml-vocab-{name}.gguf.{ext}"))).unwrap()
    };
    let (inp, out) = (read("inp"), read("out"));
    // Every case in .inp ends with the separator, so the text after the last one is no case.
    let mut texts: Vec<&str> = inp.split(SEPARATOR).collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let expected: Vec<Vec<anllm::TokenId>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        texts.len(),
        expected.len(),
        "{name}: .inp and .out disagree on the case count"
    );
    texts.into_iter().map(String::from).zip(expected).collect()
}
