//! The `anllm` binary on the fetched default model against HF transformers' golden outputs
//! (`tests/golden/smollm2-hf.json`, made by `benches/golden_hf.sh`). Fails (does not skip)
//! when the assets are missing.

use std::process::Command;

use anllm::testutil::{default_model, golden};
use serde_json::Value;

/// Runs anllm and returns the JSON object on the last stdout line.
fn anllm_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_anllm"))
        .args(args)
        .arg("--model")
        .arg(default_model())
        .args(["--threads", "2", "--json"])
        .output()
        .expect("run anllm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("output")).expect("json last line")
}

#[test]
fn default_model_f32_generate_prints_hf_greedy_text() {
    let gold = golden("smollm2-hf.json");
    let case = &gold["greedy"][0];
    let prompt = case["prompt"].as_str().unwrap();
    let args = [
        "generate",
        "--prompt",
        prompt,
        "--max-tokens",
        "16",
        "--temperature",
        "0",
        "--dtype",
        "f32",
    ];
    let json = anllm_json(&args);
    assert_eq!(json["text"], case["text"]);
    assert_eq!(json["stats"]["generated_tokens"], 16);
}

#[test]
fn default_model_quantized_generate_starts_with_paris() {
    let args = [
        "generate",
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "4",
        "--temperature",
        "0",
    ];
    let json = anllm_json(&args);
    assert!(
        json["text"].as_str().unwrap().starts_with(" Paris"),
        "{json}"
    );
}

#[test]
fn default_model_score_matches_hf_loglik() {
    let gold = golden("smollm2-hf.json");
    for (dtype, tol) in [("f32", 1e-3), ("auto", 0.05)] {
        for case in gold["loglik"].as_array().unwrap() {
            let (ctx, cont) = (
                case["context"].as_str().unwrap(),
                case["continuation"].as_str().unwrap(),
            );
            let json = anllm_json(&[
                "score",
                "--context",
                ctx,
                "--continuation",
                cont,
                "--dtype",
                dtype,
            ]);
            let (got, want) = (
                json["logprob"].as_f64().unwrap(),
                case["sum_logprob"].as_f64().unwrap(),
            );
            assert!(
                (got - want).abs() <= tol,
                "{dtype} {cont:?}: {got} vs {want}"
            );
            assert_eq!(json["is_greedy"], case["is_greedy"]);
            assert_eq!(json["continuation_ids"], case["continuation_ids"]);
        }
    }
}

/// Multi-sentence contexts for the anchored scoring checks.
const STORIES: [(&str, &str); 2] = [
    (
        "The sun rose over the hills. Birds began to sing. A farmer walked to his field. He \
         looked at the sky and smiled. The harvest would be good this year. His children ran \
         behind him.",
        " They laughed and played in the warm morning light.",
    ),
    (
        "Paris is the capital of France. It is known for the Eiffel Tower. Many tourists visit \
         it every year. The city has many museums.",
        " The most famous one is the Louvre.",
    ),
];

#[test]
fn default_model_anchored_score_equals_mask_only_for_every_chunk_size() {
    for (context, continuation) in STORIES {
        let run = |extra: &[&str]| {
            let mut args = vec!["score", "--dtype", "f32", "--anchors", "ep"];
            args.extend_from_slice(extra);
            args.extend(["--context", context, "--continuation", continuation]);
            anllm_json(&args)
        };
        let masked = run(&["--mask-only"]);
        let want = masked["logprob"].as_f64().unwrap();
        assert_eq!(masked["cache"]["entries"], masked["cache"]["tokens_seen"]);
        for chunk in ["1", "7", "512"] {
            let got = run(&["--chunk-size", chunk]);
            let lp = got["logprob"].as_f64().unwrap();
            assert!((lp - want).abs() <= 1e-3, "chunk {chunk}: {lp} vs {want}");
            let cache = &got["cache"];
            assert!(cache["entries"].as_u64() < cache["tokens_seen"].as_u64());
            assert!(cache["reduction"].as_f64().unwrap() > 0.5, "{cache}");
        }
    }
}

/// `--anchors ep-list`: the same segments as `ep-nodigit`, plus the period of every list number
/// kept in the cache; the pruned cache still scores as the mask-only run.
#[test]
fn default_model_ep_list_keeps_the_list_marks_and_equals_mask_only() {
    let context = "Three fruits:\n1. Apples are red.\n2. Pears are green.\n3. Plums";
    let run = |anchors: &str, extra: &[&str]| {
        let mut args = vec!["score", "--dtype", "f32", "--anchors", anchors];
        args.extend_from_slice(extra);
        args.extend(["--context", context, "--continuation", " are purple."]);
        anllm_json(&args)
    };
    let masked = run("ep-list", &["--mask-only"]);
    let want = masked["logprob"].as_f64().unwrap();
    for chunk in ["1", "5", "512"] {
        let got = run("ep-list", &["--chunk-size", chunk]);
        let lp = got["logprob"].as_f64().unwrap();
        assert!((lp - want).abs() <= 1e-3, "chunk {chunk}: {lp} vs {want}");
    }
    let entries = |v: &Value| v["cache"]["entries"].as_u64().unwrap();
    // Hand-derived: "1." and "2." sit in closed segments (each item ends with its own period);
    // "3." is in the open segment, which both presets keep.
    let (list, nodigit) = (run("ep-list", &[]), run("ep-nodigit", &[]));
    assert_eq!(entries(&list), entries(&nodigit) + 2, "{list}\n{nodigit}");
}
