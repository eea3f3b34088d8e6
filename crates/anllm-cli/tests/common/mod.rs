//! Helpers shared by the CLI test files: running the binary with an empty `$ANLLM_HOME`,
//! checking a clean failure or the JSON of a good run, and writing tiny models.

#![allow(dead_code)] // Each test file uses its own subset.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anllm::testutil::{HfLayout, TinySpec, write_gguf, write_hf_dir};
use serde_json::Value;
use tempfile::TempDir;

/// Runs `anllm args…` with `$ANLLM_HOME` pointed at an empty folder (no default model).
pub fn anllm(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_anllm"))
        .args(args)
        .env("ANLLM_HOME", home.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running the anllm binary")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code ≠ 0, exactly one stderr line `anllm: error: …` containing `needle`, no panic.
pub fn assert_clean_failure(out: &Output, needle: &str) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let report = format!(
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(!out.status.success(), "expected failure\n{report}");
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(!stderr.contains("panicked"), "panic\n{report}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line\n{report}");
    assert!(lines[0].starts_with("anllm: error:"), "{report}");
    assert!(lines[0].contains(needle), "expected `{needle}`\n{report}");
}

/// The last stdout line as JSON, after checking the run succeeded.
pub fn last_json(out: &Output) -> Value {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

pub fn hf_model(spec: &TinySpec) -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    write_hf_dir(&dir, spec, HfLayout::Safetensors).unwrap();
    (tmp, dir)
}

/// A ChatML-like template whose turns end with `</s>` (the tiny vocabulary's EOS).
pub const CHAT_TEMPLATE: &str = "{% for m in messages %}<s>{{ m.role }}: {{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}";

/// A tiny HF model directory whose `tokenizer_config.json` has [`CHAT_TEMPLATE`].
pub fn hf_model_with_template() -> (TempDir, PathBuf) {
    let (tmp, dir) = hf_model(&TinySpec::gqa());
    add_chat_template(&dir);
    (tmp, dir)
}

/// Writes [`CHAT_TEMPLATE`] into the `tokenizer_config.json` of the model directory `dir`
/// (made when missing).
pub fn add_chat_template(dir: &Path) {
    let path = dir.join("tokenizer_config.json");
    let mut config: Value = std::fs::read_to_string(&path).map_or_else(
        |_| serde_json::json!({}),
        |t| serde_json::from_str(&t).unwrap(),
    );
    config["chat_template"] = Value::String(CHAT_TEMPLATE.into());
    std::fs::write(&path, config.to_string()).unwrap();
}

pub fn gguf_model(spec: &TinySpec) -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny.gguf");
    write_gguf(&path, spec).unwrap();
    (tmp, path)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
