//! The `anllm` binary end to end on tiny models written by `anllm::testutil`: bad inputs fail
//! with one `anllm: error:` line and no panic. Good runs are checked in `cli_output.rs`, anchored
//! runs in `cli_anchors.rs`.

mod common;

use std::path::Path;

use anllm::testutil::{HfLayout, TinySpec, write_hf_dir};
use common::{anllm, assert_clean_failure, gguf_model, hf_model, s, text};
use serde_json::Value;

fn truncate_to_half(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn cli_missing_model_path_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-model");
    let out = anllm(&["generate", "-m", s(&missing), "-p", "hi"]);
    assert_clean_failure(&out, "does not exist");
}

#[test]
fn cli_truncated_safetensors_fails_cleanly() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    truncate_to_half(&dir.join("model.safetensors"));
    let out = anllm(&["generate", "-m", s(&dir), "-p", "hi", "-n", "2"]);
    assert_clean_failure(&out, "safetensors");
}

#[test]
fn cli_truncated_pytorch_bin_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    write_hf_dir(&dir, &TinySpec::gqa(), HfLayout::ShardedPytorchBin).unwrap();
    truncate_to_half(&dir.join("pytorch_model-00002-of-00002.bin"));
    let out = anllm(&["inspect", "-m", s(&dir)]);
    assert_clean_failure(&out, "pytorch_model-00002-of-00002.bin");
}

#[test]
fn cli_truncated_gguf_fails_cleanly() {
    let (_tmp, path) = gguf_model(&TinySpec::gqa());
    truncate_to_half(&path);
    let out = anllm(&["generate", "-m", s(&path), "-p", "hi", "-n", "2"]);
    assert_clean_failure(&out, "tiny.gguf");
    // Cut inside the header as well.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..100]).unwrap();
    let out = anllm(&["inspect", "-m", s(&path)]);
    assert_clean_failure(&out, "tiny.gguf");
}

#[test]
fn cli_config_disagreeing_with_tensors_fails_cleanly() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let config = dir.join("config.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["hidden_size"] = 48.into();
    std::fs::write(&config, json.to_string()).unwrap();
    let out = anllm(&[
        "score",
        "-m",
        s(&dir),
        "--context",
        "a b",
        "--continuation",
        " c",
    ]);
    assert_clean_failure(&out, "shape mismatch");
}

#[test]
fn cli_gguf_with_unknown_tensor_type_fails_cleanly() {
    let (_tmp, path) = gguf_model(&TinySpec::gqa());
    let mut bytes = std::fs::read(&path).unwrap();
    // Tensor info: u64 name length, name, u32 n_dims, n_dims × u64 dims, u32 ggml type, u64 offset.
    let name = b"token_embd.weight";
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name);
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("tensor info");
    let dims_at = at + key.len();
    let n_dims = u32::from_le_bytes(bytes[dims_at..dims_at + 4].try_into().unwrap()) as usize;
    assert_eq!(n_dims, 2);
    let type_at = dims_at + 4 + 8 * n_dims;
    assert_eq!(
        bytes[type_at..type_at + 4],
        0u32.to_le_bytes(),
        "F32 expected"
    );
    bytes[type_at..type_at + 4].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let out = anllm(&["inspect", "-m", s(&path), "--json"]);
    assert_clean_failure(&out, "99");
}

#[test]
fn cli_prompt_longer_than_context_fails_cleanly() {
    let spec = TinySpec {
        max_pos: 32,
        ..TinySpec::gqa()
    };
    let (_tmp, dir) = hf_model(&spec);
    let long = "the quick brown fox jumps over the lazy dog ".repeat(20);
    let out = anllm(&["generate", "-m", s(&dir), "-p", &long, "-n", "4"]);
    assert_clean_failure(&out, "context");
    let out = anllm(&[
        "score",
        "-m",
        s(&dir),
        "--context",
        &long,
        "--continuation",
        " end",
    ]);
    assert_clean_failure(&out, "context");
}

#[test]
fn cli_bad_flag_values_fail_cleanly() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let out = anllm(&["generate", "-m", s(&dir), "-p", "hi", "--threads", "0"]);
    assert_clean_failure(&out, "--threads");
    let out = anllm(&["generate", "-m", s(&dir), "-p", "hi", "--top-p", "0"]);
    assert_clean_failure(&out, "top_p");
    let out = anllm(&["generate", "-m", s(&dir), "-p", "hi", "--temperature=-1"]);
    assert_clean_failure(&out, "temperature");
    let generate = ["generate", "-m", s(&dir), "-p", "hi"];
    for (flag, value, says) in [
        ("--repeat-penalty", "0", "repeat_penalty"),
        ("--repeat-last-n", "-2", "--repeat-last-n"),
        ("--frequency-penalty", "inf", "frequency_penalty"),
        ("--presence-penalty", "NaN", "presence_penalty"),
        ("--logit-bias", "5", "ID+BIAS"),
        ("--logit-bias", "x+1", "not a token id"),
        ("--logit-bias", "5+big", "not a number"),
        ("--logit-bias", "99999+1", "below 384"),
    ] {
        let out = anllm(&[&generate[..], &[flag, value]].concat());
        assert_clean_failure(&out, says);
    }
    for args in [
        &["generate", "-m", s(&dir), "-p", "hi", "--no-such-flag"][..],
        &["generate", "-m", s(&dir), "-p", "hi", "--threads", "many"][..],
        &["frobnicate"][..],
    ] {
        let out = anllm(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.starts_with("error:"), "{stderr}");
    }
}

#[test]
fn cli_bad_anchor_and_cache_flags_fail_cleanly() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let base = ["generate", "-m", s(&dir), "-p", "a. b. c", "-n", "2"];
    for (extra, needle) in [
        (&["--anchors", "period"][..], "anchors"),
        (&["--anchors", "ids:99999"][..], "outside the vocabulary"),
        (&["--anchors", "ids:1,x"][..], "anchors"),
        (&["--anchors", "ac"][..], "<AC>"),
        (&["--pin", "5:3"][..], "--pin"),
        (&["--pin", "five"][..], "--pin"),
        (&["--chunk-size", "0"][..], "--chunk-size"),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        assert_clean_failure(&anllm(&args), needle);
    }
}
