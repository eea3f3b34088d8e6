//! `anllm eval` end to end on a tiny model with JSONL data: a cache-mode run writes the promised
//! JSON, and bad flags or malformed data files fail with one clear error line, never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use anllm::testutil::{HfLayout, TinySpec, write_hf_dir};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A tiny HF model and JSONL BoolQ files (2 scored rows, 3 pool rows) in one temp folder.
struct Fixture {
    tmp: TempDir,
    model: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let model = tmp.path().join("model");
        write_hf_dir(&model, &TinySpec::gqa(), HfLayout::Safetensors).unwrap();
        let row = |p: &str, q: &str, a: bool| json!({"passage": p, "question": q, "answer": a});
        write_jsonl(
            &tmp.path().join("scored.jsonl"),
            &[
                row("The sky is blue. Grass is green.", "is the sky blue", true),
                row("Cats meow. Dogs bark.", "do dogs meow", false),
            ],
        );
        write_jsonl(
            &tmp.path().join("pool.jsonl"),
            &[
                row("Ice is cold.", "is ice cold", true),
                row("Fire is hot. Water is wet.", "is fire cold", false),
                row("Birds fly.", "do birds fly", true),
            ],
        );
        Fixture { tmp, model }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `anllm eval qa` on the BoolQ files with `extra` flags.
    fn qa(&self, extra: &[&str]) -> Output {
        let scored = format!("boolq={}", common::s(&self.path("scored.jsonl")));
        let pool = format!("boolq={}", common::s(&self.path("pool.jsonl")));
        let mut args = vec![
            "eval",
            "qa",
            "--model",
            common::s(&self.model),
            "--tasks",
            "boolq",
        ];
        args.extend(["--data", &scored, "--shots-data", &pool]);
        args.extend(extra);
        common::anllm(&args)
    }
}

fn write_jsonl(path: &Path, rows: &[Value]) {
    let text: Vec<String> = rows.iter().map(Value::to_string).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

/// Exit code 1, no panic, and a last stderr line `anllm: error: …` with `needle` (progress lines
/// may come before it, unlike `common::assert_clean_failure`).
fn assert_last_line_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("anllm: error:"), "{stderr}");
    assert!(last.contains(needle), "expected `{needle}`: {stderr}");
}

#[test]
fn eval_qa_cache_mode_writes_records_and_agrees_with_mask() {
    let fx = Fixture::new();
    let out_path = fx.path("out.json");
    let out = fx.qa(&[
        "--shots",
        "2",
        "--anchors",
        "ep",
        "--mode",
        "cache",
        "--output",
        common::s(&out_path),
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("| Acc |") && stdout.contains("| T⇑ |"),
        "{stdout}"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["tasks"][0]["items"], 2);
    assert_eq!(summary["tasks"][0]["mask_agreement"], 1.0);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let records = file["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    for r in records {
        for key in [
            "task",
            "doc_id",
            "context",
            "continuations",
            "loglikelihoods",
            "pred",
            "gold",
            "cache",
        ] {
            assert!(!r[key].is_null(), "record lacks {key}: {r}");
        }
        assert_eq!(r["continuations"], json!([" yes", " no"]));
        assert!(r["context"].as_str().unwrap().ends_with("?\nAnswer:"));
    }
}

#[test]
fn eval_qa_bad_inputs_fail_cleanly() {
    let fx = Fixture::new();
    assert_last_line_failure(&fx.qa(&["--mode", "mask"]), "need anchors");
    assert_last_line_failure(
        &common::anllm(&[
            "eval",
            "qa",
            "--model",
            common::s(&fx.model),
            "--tasks",
            "mmlu",
        ]),
        "mmlu",
    );
    std::fs::write(
        fx.path("scored.jsonl"),
        "{\"passage\": \"p\", \"question\": \"q\", \"answer\": true}\n{\"passage\": \"p\"}\n",
    )
    .unwrap();
    assert_last_line_failure(&fx.qa(&[]), "row 2");
    assert_last_line_failure(&fx.qa(&[]), "scored.jsonl");
    let fx = Fixture::new();
    std::fs::remove_file(fx.path("pool.jsonl")).unwrap();
    assert_last_line_failure(&fx.qa(&[]), "pool.jsonl");
    // The default files are missing in an empty $ANLLM_HOME.
    let out = common::anllm(&[
        "eval",
        "qa",
        "--model",
        common::s(&fx.model),
        "--tasks",
        "piqa",
    ]);
    assert_last_line_failure(&out, "fetch-assets");
}

#[test]
fn eval_ppl_mask_and_cache_agree_with_and_without_a_window() {
    let fx = Fixture::new();
    let text = fx.path("text.txt");
    std::fs::write(
        &text,
        "The sky is blue. Grass is green. Cats meow. Dogs bark. Birds fly.",
    )
    .unwrap();
    let run = |mode: &str, window: &str| -> Value {
        let out = common::anllm(&[
            "eval",
            "ppl",
            "--model",
            common::s(&fx.model),
            "--text",
            common::s(&text),
            "--window",
            "16",
            "--stride",
            "8",
            "--anchors",
            "ep",
            "--mode",
            mode,
            "--chunk-size",
            "3",
            "--anchor-window",
            window,
            "--json",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
    };
    let nll = |v: &Value| v["result"]["nll"].as_f64().unwrap();
    for window in ["0", "4"] {
        let (mask, cache) = (run("mask", window), run("cache", window));
        assert!((nll(&mask) - nll(&cache)).abs() < 1e-4, "{mask} vs {cache}");
        assert_eq!(mask["result"]["tokens"], cache["result"]["tokens"]);
    }
    // The window shows the model more: another perplexity (the random model is not trained
    // for either, so only "different" is a fact).
    assert_ne!(nll(&run("cache", "0")), nll(&run("cache", "4")));
    let bad = common::anllm(&[
        "eval",
        "ppl",
        "--model",
        common::s(&fx.model),
        "--text",
        common::s(&text),
        "--window",
        "8",
        "--stride",
        "9",
    ]);
    assert_last_line_failure(&bad, "stride");
}
