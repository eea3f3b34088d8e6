//! Fetched assets and golden files for the tests of every crate, found in one place.
//!
//! Assets come from `scripts/fetch-assets.sh` into `$ANLLM_HOME` (default `~/.cache/anllm`).
//! A missing asset panics with the fix: tests that need one fail loudly, never skip.
//!
//! Goldens (reference outputs of HF transformers) live in the repository's `tests/golden/`
//! (`$ANLLM_GOLDEN_DIR` overrides it); `tests/golden/README.md` names the script that made each.

use std::path::{Path, PathBuf};

use crate::TokenId;
use crate::tokenizer::Tokenizer;

/// `$ANLLM_HOME`, or `~/.cache/anllm`.
pub fn anllm_home() -> PathBuf {
    std::env::var_os("ANLLM_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/anllm")
        })
}

/// A fetched asset (`rel` under [`anllm_home`]); panics with the fix when it is missing.
pub fn asset(rel: &str) -> PathBuf {
    let p = anllm_home().join(rel);
    assert!(
        p.exists(),
        "missing asset {}: run scripts/fetch-assets.sh first",
        p.display()
    );
    p
}

/// The default model file (SmolLM2-135M-Instruct Q4_1).
pub fn default_model() -> PathBuf {
    asset("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The golden directory: `$ANLLM_GOLDEN_DIR`, or the repository's `tests/golden/`.
pub fn golden_dir() -> PathBuf {
    std::env::var_os("ANLLM_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden"))
}

/// A golden JSON file of [`golden_dir`]; panics when it is missing or malformed.
pub fn golden(name: &str) -> serde_json::Value {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("missing golden file {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("golden file {} is not JSON: {e}", path.display()))
}

/// A tokenizer read from a fetched GGUF file (`rel` under [`anllm_home`]).
pub fn gguf_tokenizer(rel: &str) -> Tokenizer {
    use candle_core::quantized::gguf_file::Content;
    let path = asset(rel);
    let mut file = std::fs::File::open(&path).expect("open gguf");
    let content = Content::read(&mut file).expect("read gguf");
    Tokenizer::from_gguf(&content).expect("tokenizer")
}

/// llama.cpp's `test-tokenizer-0` cases of `ggml-vocab-<name>.gguf` (fetched with its `.inp` and
/// `.out` files): each text with its expected ids (no BOS, `parse_special` off).
pub fn llama_cpp_cases(name: &str) -> Vec<(String, Vec<TokenId>)> {
    const SEPARATOR: &str = "\n__ggml_vocab_test__\n";
    let read = |ext: &str| {
        std::fs::read_to_string(asset(&format!("vocab/ggml-vocab-{name}.gguf.{ext}")))
            .expect("read llama.cpp vectors")
    };
    let (inp, out) = (read("inp"), read("out"));
    // Every case in .inp ends with the separator, so the text after the last one is no case.
    let mut texts: Vec<&str> = inp.split(SEPARATOR).collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let expected: Vec<Vec<TokenId>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| t.parse().expect("token id"))
                .collect()
        })
        .collect();
    assert_eq!(
        texts.len(),
        expected.len(),
        "{name}: .inp and .out disagree on the case count"
    );
    texts.into_iter().map(String::from).zip(expected).collect()
}
