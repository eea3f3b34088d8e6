//! `anllm eval kv` on the fetched default model (fails, does not skip, when it is missing): a
//! 256-token passkey the full cache answers, every budgeted cell holding its budget, the
//! records, plots and exported token ids written, bad flags refused.

mod common;

use anllm::testutil::{asset, default_model};
use common::{anllm, assert_clean_failure, last_json, s};
use serde_json::Value;

#[test]
fn eval_kv_on_the_default_model_writes_records_plots_and_items() {
    let model = default_model();
    assert!(
        model.exists(),
        "missing {}: run scripts/fetch-assets.sh",
        model.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let (records, items, plot) = (
        tmp.path().join("r.jsonl"),
        tmp.path().join("items.jsonl"),
        tmp.path().join("kv"),
    );
    let out = anllm(&[
        "eval",
        "kv",
        "-m",
        s(&model),
        "--threads",
        "2",
        "--tasks",
        "passkey,agreement",
        "--lengths",
        "256",
        "--items",
        "1",
        "--policies",
        "streaming,snapkv",
        "--budgets",
        "0.5",
        "--max-new-tokens",
        "8",
        "--json",
        "--text",
        s(&asset("corpus/heldout.txt")),
        "-o",
        s(&records),
        "--plot",
        s(&plot),
        "--export-items",
        s(&items),
    ]);
    let summary = last_json(&out);
    let rows = summary["summary"].as_array().unwrap();
    assert_eq!(rows.len(), 2 * 3, "{summary}");
    let full_passkey = rows
        .iter()
        .find(|r| r["task"] == "passkey" && r["policy"] == "full")
        .unwrap();
    assert_eq!(full_passkey["accuracy"], 1.0, "{full_passkey}");
    let lines: Vec<Value> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for r in &lines {
        let context = r["context"].as_u64().unwrap() as f64;
        assert!(
            (240.0..=256.0).contains(&context) || r["task"] == "passkey",
            "{r}"
        );
        match r["share"].as_f64() {
            Some(share) => {
                let budget = (share * context).round();
                assert_eq!(r["kv_entries"].as_f64(), Some(budget), "{r}");
            }
            None => assert_eq!(r["kv_entries"].as_f64(), Some(context)),
        }
    }
    let exported = std::fs::read_to_string(&items).unwrap();
    for line in exported.lines() {
        let item: Value = serde_json::from_str(line).unwrap();
        assert!(!item["context_ids"].as_array().unwrap().is_empty());
        assert!(!item["answer_ids"].as_array().unwrap().is_empty());
    }
    for task in ["passkey", "agreement"] {
        assert!(tmp.path().join(format!("kv-{task}.png")).exists());
    }
    // The records alone give the same summary back.
    let again = last_json(&anllm(&[
        "eval",
        "kv",
        "--summarize",
        s(&records),
        "--json",
    ]));
    assert_eq!(again["summary"], summary["summary"]);
}

#[test]
fn eval_kv_refuses_bad_flags() {
    let model = default_model();
    for (extra, needle) in [
        (&["--budgets", "1.5"][..], "--budgets"),
        (&["--tasks", "nope"], "nope"),
        (&["--policies", "nope"], "nope"),
        (&["--items", "0"], "--items"),
        (&["--lengths", "16", "--tasks", "passkey"], "64"),
    ] {
        let mut args = vec!["eval", "kv", "-m", s(&model), "--export-only"];
        args.extend_from_slice(extra);
        assert_clean_failure(&anllm(&args), needle);
    }
}

#[test]
fn eval_kv_anchor_policy_with_a_window_keeps_at_most_w_minus_one_entries_more() {
    let model = default_model();
    let (tmp, text) = (tempfile::tempdir().unwrap(), asset("corpus/heldout.txt"));
    let entries = |window: &str| {
        let records = tmp.path().join(format!("w{window}.jsonl"));
        let mut args = vec!["eval", "kv", "-m", s(&model), "--threads", "2"];
        args.extend(["--tasks", "agreement", "--lengths", "256", "--items", "1"]);
        args.extend(["--policies", "anchor", "--anchor-window", window]);
        // Window 0 leaves --anchors at its default: SmolLM2 records no anchors, so the anchor
        // policy falls back to EP's (with `none` it would refuse to run).
        if window != "0" {
            args.extend(["--anchors", "ep"]);
        }
        args.extend(["--max-new-tokens", "4", "--text", s(&text)]);
        args.extend(["-o", s(&records)]);
        let out = anllm(&args);
        assert!(out.status.success());
        let rows = std::fs::read_to_string(&records).unwrap();
        let row = rows
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|r| r["policy"] == "anchor")
            .unwrap_or_else(|| panic!("{rows}"));
        // The record and the table say which rule the anchor cell ran with.
        let (rule, budget) = match window {
            "0" => (serde_json::json!("an_san"), "| anchor | – |"),
            _ => (
                serde_json::json!({ "an_san_window": 32 }),
                "| anchor | W 32 |",
            ),
        };
        assert_eq!(row["mask_rule"], rule, "{rows}");
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains(budget), "{table}");
        row["kv_entries"].as_f64().unwrap()
    };
    // The anchor cache plus the last W − 1 tokens, some of which it keeps anyway.
    let (plain, windowed) = (entries("0"), entries("32"));
    assert!(
        plain < windowed && windowed <= plain + 31.0,
        "{plain} → {windowed}"
    );
}
