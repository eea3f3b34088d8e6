//! The `anllm` binary with anchors on tiny models written by `anllm::testutil`: anchored
//! `generate` and `score` report a smaller cache and agree with the mask-only run, and
//! `--insert-anchors` puts `<AC>` after each context sentence.

mod common;

use std::process::Command;

use anllm::testutil::{HfLayout, TinySpec, anllm_llama2_spec, asset, write_hf_dir};
use common::{anllm, assert_clean_failure, hf_model, last_json, s};

#[test]
fn cli_anchored_generate_and_score_report_cache_statistics() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let prompt = "ab. cd. ef. gh. ij. kl";
    let generated = last_json(&anllm(&[
        "generate",
        "-m",
        s(&dir),
        "-p",
        prompt,
        "-n",
        "4",
        "--anchors",
        "ep",
        "--chunk-size",
        "3",
        "--json",
    ]));
    let cache = &generated["stats"]["cache"];
    let (entries, seen) = (cache["entries"].as_u64(), cache["tokens_seen"].as_u64());
    assert!(entries < seen, "{generated}");
    assert!(cache["reduction"].as_f64() > Some(0.0), "{generated}");
    assert!(
        cache["peak_kv_bytes"].as_u64() >= cache["kv_bytes"].as_u64(),
        "{generated}"
    );
    let score = |extra: &[&str]| {
        let mut args = vec![
            "score",
            "-m",
            s(&dir),
            "--context",
            prompt,
            "--continuation",
            " mn. op",
        ];
        args.extend_from_slice(extra);
        args.extend(["--anchors", "ep", "--json"]);
        last_json(&anllm(&args))
    };
    let (cached, masked) = (score(&["--chunk-size", "2"]), score(&["--mask-only"]));
    let diff = cached["logprob"].as_f64().unwrap() - masked["logprob"].as_f64().unwrap();
    assert!(diff.abs() < 1e-4, "{cached} {masked}");
    assert_eq!(masked["mode"], "mask_only");
    assert!(cached["cache"]["entries"].as_u64() < masked["cache"]["entries"].as_u64());
    // The pinned context stays whole; only the continuation's closed segment is dropped.
    let pinned = score(&["--pin-prompt"]);
    let context = pinned["context_ids"].as_array().unwrap().len() as u64;
    let kept = pinned["cache"]["entries"].as_u64().unwrap();
    assert!(
        kept > context && kept < masked["cache"]["entries"].as_u64().unwrap(),
        "{pinned}"
    );
}

/// `--anchor-window W`: the pruned cache scores as the mask-only run with the same window, and
/// keeps at most the W − 1 positions before the next query beyond what plain AnSAN keeps; the
/// window goes with the AnSAN rule only.
#[test]
fn cli_anchor_window_matches_the_mask_and_keeps_at_most_w_minus_1_more() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let run = |extra: &[&str]| {
        let mut args = vec!["score", "-m", s(&dir), "--context", "ab. cd. ef. gh. ij"];
        args.extend(["--continuation", " kl. mn. op", "--anchors", "ep", "--json"]);
        args.extend(extra);
        anllm(&args)
    };
    let json = |extra: &[&str]| last_json(&run(extra));
    // W = 5 reaches past the last anchor (`.`, then `▁`, `o` of " op" before the next query).
    let window = ["--anchor-window", "5", "--chunk-size", "2"];
    let (cached, masked) = (
        json(&window),
        json(&[&window[..], &["--mask-only"]].concat()),
    );
    let diff = cached["logprob"].as_f64().unwrap() - masked["logprob"].as_f64().unwrap();
    assert!(diff.abs() < 1e-4, "{cached} {masked}");
    let entries = |v: &serde_json::Value| v["cache"]["entries"].as_u64().unwrap();
    let plain = json(&["--chunk-size", "2"]);
    // The continuation's anchors by index: the `.` of " kl." and " mn." (not " op").
    let model =
        anllm::load_model(&dir, anllm::WeightDtype::Auto, &candle_core::Device::Cpu).unwrap();
    let ids = model.tokenizer.encode(" kl. mn. op", false).unwrap();
    let dot = model.tokenizer.encode(".", false).unwrap();
    let dot = *dot.last().unwrap();
    let dots: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == dot).collect();
    assert_eq!(dots.len(), 2, "{ids:?}");
    assert_eq!(plain["continuation_anchors"], serde_json::json!(dots));
    let full = last_json(&anllm(&[
        "score",
        "-m",
        s(&dir),
        "--context",
        "ab. cd",
        "--continuation",
        " kl. mn. op",
        "--json",
    ]));
    assert_eq!(full["continuation_anchors"], serde_json::json!([]));
    let more = entries(&cached) - entries(&plain);
    assert!((1..=4).contains(&more), "{cached}\n{plain}");
    // The legacy rule takes the window too (anchors also see it), cached = masked as well; its
    // cache is the window rule's. Plain causal attention has no window to give.
    let legacy = [&window[..], &["--mask-rule", "legacy"]].concat();
    let (cached, masked) = (
        json(&legacy),
        json(&[&legacy[..], &["--mask-only"]].concat()),
    );
    let diff = cached["logprob"].as_f64().unwrap() - masked["logprob"].as_f64().unwrap();
    assert!(diff.abs() < 1e-4, "{cached} {masked}");
    assert_eq!(
        cached["rule"],
        serde_json::json!({"an_san_legacy_window": 5})
    );
    assert_eq!(entries(&cached), entries(&json(&window)));
    assert_clean_failure(
        &run(&["--anchor-window", "3", "--mask-rule", "causal"]),
        "--mask-rule ansan or legacy",
    );
}

#[test]
fn cli_insert_anchors_puts_ac_after_each_context_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    write_hf_dir(tmp.path(), &anllm_llama2_spec(32002), HfLayout::Safetensors).unwrap();
    // The sentence splitter's parameters come from the fetched assets.
    asset("punkt/english.json");
    let home = anllm::testutil::anllm_home();
    let run = |anchors: &str| {
        Command::new(env!("CARGO_BIN_EXE_anllm"))
            .args([
                "score",
                "-m",
                s(tmp.path()),
                "--anchors",
                anchors,
                "--insert-anchors",
            ])
            .args([
                "--context",
                "Mr. Smith left. It rained. We",
                "--continuation",
                " ran",
            ])
            .arg("--json")
            .env("ANLLM_HOME", &home)
            .output()
            .unwrap()
    };
    let json = last_json(&run("ac"));
    let ids = json["context_ids"].as_array().unwrap();
    assert_eq!(ids.iter().filter(|&id| id == 32001).count(), 2, "{json}");
    assert_clean_failure(&run("ep"), "--anchors ac");
}

/// `--mask-rule causal` keeps plain causal attention with anchors on: with a full cache it scores
/// exactly as `--anchors none`, and with `sepllm` the cache keeps the sink, every anchor and the
/// window (counted by the policy's dry run over the same tokens, not by the binary).
#[test]
fn cli_causal_rule_with_anchors_scores_causally_and_sepllm_keeps_separators() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let (context, continuation) = ("ab. cd. ef. gh. ij", " kl");
    let run = |extra: &[&str]| {
        let mut args = vec!["score", "-m", s(&dir), "--context", context];
        args.extend([
            "--continuation",
            continuation,
            "--chunk-size",
            "2",
            "--json",
        ]);
        args.extend(extra);
        last_json(&anllm(&args))
    };
    let plain = run(&["--anchors", "none"]);
    let causal = ["--anchors", "ep", "--mask-rule", "causal"];
    let full = run(&[&causal[..], &["--kv-policy", "full"]].concat());
    assert_eq!(plain["logprob"], full["logprob"], "{plain}\n{full}");
    let sep = run(&[&causal[..], &["--kv-policy", "sepllm:1,2"]].concat());
    assert!(sep["logprob"].as_f64().is_some_and(f64::is_finite), "{sep}");
    let model =
        anllm::load_model(&dir, anllm::WeightDtype::Auto, &candle_core::Device::Cpu).unwrap();
    let anchors = anllm::AnchorSet::from_spec(&anllm::AnchorSpec::Ep, &model.tokenizer).unwrap();
    let ids = [
        model.tokenizer.encode(context, false).unwrap(),
        model.tokenizer.encode(continuation, false).unwrap(),
    ]
    .concat();
    let cfg = anllm::SessionConfig {
        anchors,
        chunk_size: 2,
        policy: anllm::PolicyConfig::Sepllm {
            sinks: 1,
            window: 2,
        },
        ..anllm::SessionConfig::default()
    };
    let kept = anllm::session::kept_entries(&cfg, &ids[..ids.len() - 1]).unwrap();
    assert_eq!(sep["cache"]["entries"].as_u64(), Some(kept as u64), "{sep}");
    assert!(
        kept < ids.len() - 1,
        "sepllm dropped nothing: {kept} of {}",
        ids.len() - 1
    );
}

/// `--kv-policy NAME --kv-budget B`: a share keeps ⌈B × tokens seen⌉ entries (hand-derived
/// from the stream length the binary reports), entries keep that many; misuse fails cleanly.
#[test]
fn cli_kv_budget_gives_a_bare_policy_its_budget_and_rejects_misuse() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "score",
            "-m",
            s(&dir),
            "--context",
            "ab cd ef gh ij kl mn op",
        ];
        args.extend(["--continuation", " qr", "--chunk-size", "4", "--json"]);
        args.extend(extra);
        anllm(&args)
    };
    for (policy, budget) in [
        ("snapkv", "0.25"),
        ("knorm", "0.5"),
        ("tova", "5"),
        ("h2o", "6"),
    ] {
        let out = last_json(&run(&["--kv-policy", policy, "--kv-budget", budget]));
        let seen = out["cache"]["tokens_seen"].as_f64().unwrap();
        let b: f64 = budget.parse().unwrap();
        let want = if b < 1.0 { (b * seen).ceil() } else { b };
        assert_eq!(
            out["cache"]["entries"].as_f64(),
            Some(want),
            "{policy}: {out}"
        );
    }
    for (extra, needle) in [
        (&["--kv-budget", "0.5"][..], "--kv-policy"),
        (&["--kv-policy", "h2o:8,2", "--kv-budget", "4"], "bare"),
        (&["--kv-policy", "streaming", "--kv-budget", "0.5"], "share"),
        (&["--kv-policy", "full", "--kv-budget", "8"], "no budget"),
        (&["--kv-policy", "snapkv"], "kv_policy"),
    ] {
        assert_clean_failure(&run(extra), needle);
    }
    // A malformed budget is a bad flag value: clap's usage error (exit 2), with our reason.
    let out = run(&["--kv-policy", "knorm", "--kv-budget", "1.5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kv_budget"));
}
