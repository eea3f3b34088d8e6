//! The fixture of the `export` tests: a tiny GGUF trained one step (its weights unchanged) with
//! given anchor flags, exported, and the commands that read it back.
#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};

use anllm::testutil::{TinySpec, write_gguf};

use crate::common::{anllm, last_json, s, text};

pub fn export(model: &Path, to: &Path, ty: &str, vocab: Option<&Path>) -> std::process::Output {
    let mut args = vec!["export", "-m", s(model), "--to", s(to), "--type", ty];
    if let Some(v) = vocab {
        args.extend(["--vocab-from", s(v)]);
    }
    anllm(&args)
}

/// One training step (lr 1e-9: the weights stay the model's) of the tiny GGUF `vocab` with
/// `--anchors anchors` and `--anchor-window window`; returns the checkpoint directory.
/// `window`: the value of `--anchor-window`, optionally followed by more flags
/// (`8 --mask-rule legacy`).
pub fn train_one_step(tmp: &Path, vocab: &Path, anchors: &str, window: &str) -> PathBuf {
    let data = tmp.join("t.txt");
    std::fs::write(&data, "a b c. d e f. g h i j k l m n o p q r s t.\n").unwrap();
    let run = tmp.join(format!("run-{anchors}-{}", window.replace(' ', "_")));
    let mut args = vec![
        "train",
        "-m",
        s(vocab),
        "--data",
        s(&data),
        "--anchors",
        anchors,
        "--steps",
        "1",
        "--warmup",
        "0",
        "--lr",
        "1e-9",
        "--block-size",
        "16",
        "--out",
        s(&run),
        "--anchor-window",
    ];
    args.extend(window.split_whitespace());
    let train = anllm(&args);
    assert!(train.status.success(), "{}", text(&train.stderr));
    run.join("checkpoint-000001")
}

/// One training step of a tiny GGUF with `--anchors anchors --anchor-window window`, checked to
/// record `recorded` in its `config.json`, and its Q8_0 export: (temp dir, vocabulary GGUF,
/// checkpoint, export).
pub fn trained_and_exported(
    anchors: &str,
    window: &str,
    recorded: &str,
) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let vocab = tmp.path().join("vocab.gguf");
    write_gguf(&vocab, &TinySpec::gqa()).unwrap();
    let dir = train_one_step(tmp.path(), &vocab, anchors, window);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["anllm_anchors"], recorded);
    let gguf = tmp.path().join("t.gguf");
    let run = export(&dir, &gguf, "q8_0", Some(&vocab));
    assert!(run.status.success(), "{}", text(&run.stderr));
    (tmp, vocab, dir, gguf)
}

/// `anllm score --json` of a fixed context and continuation with `flags`: (its JSON, stderr).
pub fn score(m: &Path, flags: &[&str]) -> (serde_json::Value, String) {
    let mut args = vec!["score", "-m", s(m), "--json", "--context", "a b. c d. e f"];
    args.extend(["--continuation", " g h."]);
    args.extend(flags);
    let out = anllm(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    (last_json(&out), text(&out.stderr))
}
