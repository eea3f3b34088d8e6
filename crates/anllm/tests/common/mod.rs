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
