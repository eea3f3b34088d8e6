//! `anllm eval qa` on the fetched default model and benchmark files: in cache mode with EP
//! anchors and 5 demonstrations, every task's predictions equal the masked (non-caching) ones and
//! the log-likelihoods agree within 1e-3 (f32). Fails (does not skip) when assets are missing.

use std::process::Command;

use anllm::testutil::asset;
use serde_json::Value;

#[test]
fn default_model_cache_mode_equals_mask_mode_on_all_eight_tasks() {
    for needed in [
        "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "eval/piqa/validation.arrow",
    ] {
        asset(needed);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_anllm"))
        .args([
            "eval", "qa", "--tasks", "all", "--limit", "1", "--shots", "5",
        ])
        .args([
            "--anchors",
            "ep",
            "--mode",
            "cache",
            "--dtype",
            "f32",
            "--json",
        ])
        .output()
        .expect("run anllm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 8);
    for t in tasks {
        assert_eq!(t["items"], 1, "{t}");
        assert_eq!(t["mask_agreement"], 1.0, "{t}");
        assert!(t["mask_max_diff"].as_f64().unwrap() < 1e-3, "{t}");
        let c = t["c_demos"]["kept"].as_u64().unwrap();
        let seen = t["c_demos"]["seen"].as_u64().unwrap();
        assert!(c <= seen, "{t}");
        if ["boolq", "hellaswag", "sciq"].contains(&t["task"].as_str().unwrap()) {
            assert!(
                c < seen / 2,
                "EP anchors compress these demonstrations: {t}"
            );
        }
    }
}
