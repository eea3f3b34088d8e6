//! `anllm export`: a checkpoint written as a llama.cpp GGUF loads back with the source's
//! logits (F16 and Q8_0 against the HF goldens of the default model, and every type on a tiny
//! model, which also checks the Q/K permutation: a wrong row order changes the logits
//! completely), with llama.cpp's metadata and tensor types; bad input fails cleanly.

mod common;
mod export_fixture;

use std::path::Path;

use anllm::model::{ForwardInput, OutputRows};
use anllm::testutil::{self, TinySpec, golden, write_gguf, write_gguf_typed};
use anllm::{Pos, WeightDtype};
use candle_core::Device;
use candle_core::quantized::{GgmlDType, gguf_file};
use common::{add_chat_template, anllm, assert_clean_failure, hf_model, last_json, s, text};
use export_fixture::{export, score, train_one_step, trained_and_exported};

fn logits(model: &Path, tokens: &[u32]) -> Vec<Vec<f32>> {
    let loaded = anllm::load_model(model, WeightDtype::F32, &Device::Cpu).unwrap();
    let pos: Vec<Pos> = (0..tokens.len() as u32).map(Pos).collect();
    let mut cache = loaded.llama.new_cache(tokens.len()).unwrap();
    let input = ForwardInput::causal(tokens, &pos, OutputRows::All);
    loaded
        .llama
        .forward(&input, &mut cache)
        .unwrap()
        .to_vec2()
        .unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn a_tiny_checkpoint_round_trips_through_every_type() {
    // The use case: a training checkpoint (HF directory) of a model that came as a GGUF,
    // exported with the GGUF's vocabulary.
    let spec = TinySpec::gqa();
    let tmp = tempfile::tempdir().unwrap();
    let vocab = tmp.path().join("vocab.gguf");
    write_gguf(&vocab, &spec).unwrap();
    let dir = train_one_step(tmp.path(), &vocab, "ep", "0");
    let tokens: Vec<u32> = vec![1, 40, 41, 10, 42, 43, 44, 11, 45];
    let want = logits(&dir, &tokens);
    // Control: the same weights with Q/K rows left in HF order (a wrong permutation).
    let wrong = tmp.path().join("wrong.gguf");
    write_gguf_typed(&wrong, &spec, GgmlDType::F32, false).unwrap();
    let wrong_d = max_diff(&want, &logits(&wrong, &tokens));
    // Tolerances on logits up to 3.3 in size, measured here: 2.7e-3 (f16), 0.048 (q8_0),
    // 0.53 (q4_1: 4 bits of random weights); the wrong row order: 1.9.
    for (ty, ggml, tol) in [
        ("f16", GgmlDType::F16, 1e-2),
        ("q8_0", GgmlDType::Q8_0, 0.1),
        ("q4_1", GgmlDType::Q4_1, 0.8),
    ] {
        assert!(wrong_d > 2.0 * tol, "control {wrong_d} vs {ty} {tol}");
        let out = tmp.path().join(format!("tiny-{ty}.gguf"));
        let run = export(&dir, &out, ty, Some(&vocab));
        assert!(run.status.success(), "{}", text(&run.stderr));
        let got = logits(&out, &tokens);
        let d = max_diff(&want, &got);
        assert!(d <= tol, "{ty}: max logit difference {d}");
        let mut f = std::fs::File::open(&out).unwrap();
        let content = gguf_file::Content::read(&mut f).unwrap();
        let md = |k: &str| content.metadata.get(k).unwrap_or_else(|| panic!("{k}"));
        assert_eq!(md("general.architecture").to_string().unwrap(), "llama");
        assert_eq!(
            md("llama.block_count").to_u32().unwrap(),
            spec.layers as u32
        );
        assert!(content.metadata.contains_key("tokenizer.ggml.tokens"));
        assert_eq!(content.tensor_infos["blk.0.attn_q.weight"].ggml_dtype, ggml);
        assert_eq!(
            content.tensor_infos["blk.0.attn_norm.weight"].ggml_dtype,
            GgmlDType::F32
        );
    }
}

#[test]
fn the_trained_anchor_preset_travels_to_the_export_and_warns_on_other_anchors() {
    let (_tmp, vocab, dir, gguf) = trained_and_exported("ep-nodigit", "0", "ep-nodigit");
    let inspect = |m: &Path| last_json(&anllm(&["inspect", "-m", s(m), "--json"]));
    assert_eq!(inspect(&gguf)["trained_anchors"], "ep-nodigit");
    assert_eq!(inspect(&dir)["trained_anchors"], "ep-nodigit");
    assert!(
        inspect(&vocab)["trained_anchors"].is_null(),
        "never trained"
    );
    let warned = |m: &Path, anchors: &str| {
        let out = anllm(&[
            "generate",
            "-m",
            s(m),
            "-p",
            "a b",
            "--max-tokens",
            "1",
            "--anchors",
            anchors,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr).contains("trained with --anchors ep-nodigit, and runs with --anchors")
    };
    assert!(warned(&gguf, "ep"));
    assert!(warned(&dir, "ep-sentence"));
    assert!(!warned(&gguf, "ep-nodigit"));
    assert!(
        !warned(&gguf, "none"),
        "full attention is a fair way to run any model"
    );
    assert!(!warned(&vocab, "ep"), "a model that records no preset");
}

#[test]
fn an_ep_list_model_records_its_preset_and_runs_with_it_by_default() {
    let (_tmp, _, dir, gguf) = trained_and_exported("ep-list", "0", "ep-list");
    for m in [&dir, &gguf] {
        let out = anllm(&["generate", "-m", s(m), "-p", "a b", "-n", "1", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("trained with: --anchors ep-list"),
            "{stderr}"
        );
    }
}

#[test]
fn a_trained_window_is_recorded_with_the_anchors_and_warns_when_run_without_it() {
    let (_tmp, _, dir, gguf) = trained_and_exported("ep", "8", "ep --anchor-window 8");
    let warning = |m: &Path, flags: &[&str]| {
        let mut args = vec!["generate", "-m", s(m), "-p", "a b", "--max-tokens", "1"];
        args.extend(flags);
        let out = anllm(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr).contains("trained with --anchors ep --anchor-window 8, and runs with")
    };
    assert!(warning(&gguf, &["--anchors", "ep", "--anchor-window", "0"]));
    assert!(warning(&dir, &["--anchors", "ep", "--anchor-window", "4"]));
    // The recorded preset without a window runs with the recorded window.
    assert!(!warning(&gguf, &["--anchors", "ep"]));
    assert!(!warning(
        &gguf,
        &["--anchors", "ep", "--anchor-window", "8"]
    ));
    assert!(!warning(&gguf, &[]), "the default takes the recording");
    assert!(!warning(&dir, &["--anchors", "none"]));
    // A window without anchors is full attention too: no warning.
    assert!(!warning(
        &dir,
        &["--anchors", "none", "--anchor-window", "8"]
    ));
}

#[test]
fn a_trained_model_runs_with_its_recorded_anchors_unless_told_otherwise() {
    let (_tmp, vocab, dir, gguf) = trained_and_exported("ep", "8", "ep --anchor-window 8");
    for m in [&dir, &gguf] {
        let (auto, stderr) = score(m, &[]);
        assert_eq!(auto["anchors"], "ep");
        assert_eq!(auto["rule"], serde_json::json!({"an_san_window": 8}));
        assert!(
            stderr.contains("running with the anchors this model was trained with: --anchors ep --anchor-window 8"),
            "{stderr}"
        );
        let (explicit, _) = score(m, &["--anchors", "ep", "--anchor-window", "8"]);
        assert_eq!(auto, explicit);
        let (full, stderr) = score(m, &["--anchors", "none"]);
        assert_eq!(full["rule"], "causal");
        assert!(!stderr.contains("running with the anchors"), "{stderr}");
        let (plain, _) = score(m, &["--anchor-window", "0"]);
        assert_eq!(plain["rule"], "an_san", "a window given by hand wins");
    }
    // A model that records nothing (the original SmolLM2) keeps full attention by default.
    let (untrained, stderr) = score(&vocab, &[]);
    assert_eq!(
        (&untrained["anchors"], &untrained["rule"]),
        (&"none".into(), &"causal".into())
    );
    assert!(!stderr.contains("running with the anchors"), "{stderr}");
}

#[test]
fn a_model_trained_under_the_legacy_rule_runs_with_it_unless_told_otherwise() {
    let legacy = "ep --anchor-window 8 --mask-rule legacy";
    let (_tmp, _, dir, gguf) = trained_and_exported("ep", "8 --mask-rule legacy", legacy);
    for m in [&dir, &gguf] {
        let (auto, stderr) = score(m, &[]);
        let rule = serde_json::json!({"an_san_legacy_window": 8});
        assert_eq!((&auto["anchors"], &auto["rule"]), (&"ep".into(), &rule));
        assert!(
            stderr.contains(&format!("trained with: --anchors {legacy}")),
            "{stderr}"
        );
        let (ansan, stderr) = score(m, &["--mask-rule", "ansan"]);
        assert_eq!(ansan["rule"], serde_json::json!({"an_san_window": 8}));
        assert!(
            stderr.contains(&format!("trained with --anchors {legacy}, and runs with")),
            "{stderr}"
        );
        let (explicit, stderr) = score(m, &["--anchors", "ep", "--mask-rule", "legacy"]);
        assert_eq!(
            explicit, auto,
            "the recorded window goes with the recorded preset"
        );
        assert!(!stderr.contains("warning"), "{stderr}");
    }
}

#[test]
fn export_refuses_a_foreign_vocabulary_and_a_directory_without_one() {
    let (tmp, dir) = hf_model(&TinySpec::gqa());
    let other = tmp.path().join("other.gguf");
    write_gguf(
        &other,
        &TinySpec {
            vocab: 400,
            ..TinySpec::gqa()
        },
    )
    .unwrap();
    let out = tmp.path().join("x.gguf");
    assert_clean_failure(
        &export(&dir, &out, "f16", Some(&other)),
        "another vocabulary",
    );
    // No --vocab-from and no default model in the (empty) $ANLLM_HOME.
    assert_clean_failure(&export(&dir, &out, "f16", None), "default model");
    assert!(!out.exists(), "no partial file is left");
}

#[test]
fn the_default_model_exports_within_tolerance_of_the_hf_goldens() {
    let tmp = tempfile::tempdir().unwrap();
    let model = testutil::default_model();
    let gold = golden("smollm2-hf.json");
    for (ty, tol) in [("f16", 1e-2), ("q8_0", 0.05)] {
        let out = tmp.path().join(format!("smol-{ty}.gguf"));
        let run = export(&model, &out, ty, None);
        assert!(run.status.success(), "{}", text(&run.stderr));
        for case in gold["loglik"].as_array().unwrap() {
            let json = last_json(&anllm(&[
                "score",
                "-m",
                s(&out),
                "--dtype",
                "f32",
                "--json",
                "--context",
                case["context"].as_str().unwrap(),
                "--continuation",
                case["continuation"].as_str().unwrap(),
            ]));
            let (got, want) = (
                json["logprob"].as_f64().unwrap(),
                case["sum_logprob"].as_f64().unwrap(),
            );
            assert!((got - want).abs() <= tol, "{ty}: {got} vs HF {want}");
        }
    }
}

#[test]
fn bench_and_eval_kv_run_a_model_under_its_recorded_rule() {
    // ep-list, not eval kv's fallback ep: its default `auto` takes the recorded preset.
    let legacy = "ep-list --anchor-window 8 --mask-rule legacy";
    let (_tmp, _, dir, _) = trained_and_exported("ep-list", "8 --mask-rule legacy", legacy);
    add_chat_template(&dir); // the passkey question is a chat turn
    // Room for the passkey item (RoPE has no learned positions): 128 → 512.
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["max_position_embeddings"] = 512.into();
    std::fs::write(&path, config.to_string()).unwrap();
    let kv = |flags: &[&str]| {
        let mut args = vec!["eval", "kv", "-m", s(&dir), "--tasks", "passkey"];
        args.extend(["--lengths", "256", "--items", "1", "--policies", "anchor"]);
        args.extend(["--max-new-tokens", "2", "--json"]);
        args.extend(flags);
        let out = anllm(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rows = last_json(&out)["summary"].as_array().unwrap().clone();
        let anchor = rows.iter().find(|r| r["policy"] == "anchor").unwrap();
        (anchor["mask_rule"].clone(), text(&out.stderr))
    };
    let (rule, stderr) = kv(&[]);
    assert_eq!(rule, serde_json::json!({"an_san_legacy_window": 8}));
    assert!(!stderr.contains("warning"), "{stderr}");
    let (rule, stderr) = kv(&["--mask-rule", "ansan"]);
    assert_eq!(rule, serde_json::json!({"an_san_window": 8}));
    assert!(
        stderr.contains("and runs with --anchors ep-list --anchor-window 8"),
        "{stderr}"
    );
    let bench = |flags: &[&str]| {
        let mut args = vec![
            "bench",
            "-m",
            s(&dir),
            "--anchors",
            "ep-list",
            "--prompt-tokens",
            "16",
        ];
        args.extend(["--decode-tokens", "2", "--repeat", "1", "--depths", "0,32"]);
        args.extend(flags);
        let out = anllm(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let stderr = bench(&[]);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains(&format!("anchors {legacy},")), "{stderr}");
    let stderr = bench(&["--mask-rule", "ansan"]);
    assert!(
        stderr.contains("and runs with --anchors ep-list --anchor-window 8"),
        "{stderr}"
    );
}
