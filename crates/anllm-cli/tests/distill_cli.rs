//! The AnLLM-EP-135M pipeline's commands end to end: the teacher writes chat transcripts
//! (`generate --prompts-file --transcripts`, resumable), `train --distill` learns from them,
//! and `eval overlap` refuses training data that holds a scored evaluation item. The overlap
//! checks read the fetched benchmarks and corpus (`scripts/fetch-assets.sh`).

mod common;

use std::process::Command;

use anllm::testutil::{self, TinySpec};
use common::{anllm, assert_clean_failure, hf_model, s, text};
use serde_json::Value;

const TEMPLATE: &str = "{% for m in messages %}<s>{{ m.role }}: {{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}";

#[test]
fn transcripts_resume_and_train_distill_learns_from_them() {
    let (tmp, dir) = hf_model(&TinySpec::gqa());
    let cfg = dir.join("tokenizer_config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    config["chat_template"] = Value::String(TEMPLATE.into());
    std::fs::write(&cfg, config.to_string()).unwrap();
    let prompts = tmp.path().join("prompts.txt");
    std::fs::write(&prompts, "hello world\n\nthe cat sat\nand then\n").unwrap();
    let out = tmp.path().join("chat.jsonl");
    let generate = |n: &str| {
        anllm(&[
            "generate",
            "-m",
            s(&dir),
            "--chat",
            "--prompts-file",
            s(&prompts),
            "--transcripts",
            s(&out),
            "--max-tokens",
            n,
        ])
    };
    let first = generate("6");
    assert!(first.status.success(), "{}", text(&first.stderr));
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    // A second run finds every prompt answered and adds nothing.
    assert!(generate("6").status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), lines);
    for (line, prompt) in lines
        .lines()
        .zip(["hello world", "the cat sat", "and then"])
    {
        let record: Value = serde_json::from_str(line).unwrap();
        let messages = record["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["role"], "user");
        assert_eq!(messages[0]["content"], prompt);
        assert_eq!(messages[1]["role"], "assistant");
    }
    let run = tmp.path().join("run");
    let train = anllm(&[
        "train",
        "-m",
        s(&dir),
        "--data",
        s(&out),
        "--anchors",
        "ep",
        "--distill",
        "--distill-alpha",
        "0.8",
        "--block-size",
        "16",
        "--steps",
        "2",
        "--warmup",
        "0",
        "--lr",
        "1e-3",
        "--out",
        s(&run),
    ]);
    assert!(train.status.success(), "{}", text(&train.stderr));
    let log = std::fs::read_to_string(run.join("train_log.jsonl")).unwrap();
    for line in log.lines() {
        let rec: Value = serde_json::from_str(line).unwrap();
        assert!(rec["teacher_s"].as_f64().is_some(), "{rec}");
        assert!(rec["loss"].as_f64().unwrap().is_finite(), "{rec}");
    }
}

#[test]
fn distill_refuses_ac_anchors_and_a_bad_alpha() {
    let (tmp, dir) = hf_model(&TinySpec::gqa());
    let data = tmp.path().join("t.txt");
    std::fs::write(&data, "a b c. d e f.\n").unwrap();
    let base = |extra: &[&str]| {
        let run = tmp.path().join(format!("run{}", extra.len()));
        let mut args = vec![
            "train",
            "-m",
            s(&dir),
            "--data",
            s(&data),
            "--steps",
            "1",
            "--out",
        ];
        args.push(s(&run));
        args.extend_from_slice(extra);
        anllm(&args)
    };
    let ac = base(&["--anchors", "ac", "--distill"]);
    assert_clean_failure(&ac, "--distill with --anchors ac");
    let alpha = base(&["--anchors", "ep", "--distill", "--distill-alpha", "1.5"]);
    assert_clean_failure(&alpha, "not in [0, 1]");
}

fn overlap(files: &[&str]) -> std::process::Output {
    let eval = testutil::asset("eval");
    let mut args = vec!["eval", "overlap", "--data-dir", s(&eval), "--data"];
    args.extend_from_slice(files);
    anllm(&args)
}

#[test]
fn the_recipes_prompts_hold_no_scored_item() {
    let tmp = tempfile::tempdir().unwrap();
    let train = testutil::asset("corpus/train.txt");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../benches/anllm-ep-135m/prompts.py"
    );
    let out = Command::new("python3")
        .args([script, s(&train), "360"])
        .output()
        .expect("python3 runs the prompt generator");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 360);
    let prompts = tmp.path().join("prompts.txt");
    std::fs::write(&prompts, &out.stdout).unwrap();
    let check = overlap(&[s(&prompts)]);
    assert!(check.status.success(), "{}", text(&check.stdout));
    assert!(
        text(&check.stderr).contains(": 0 contaminated"),
        "{}",
        text(&check.stderr)
    );
}

#[test]
fn the_whole_corpus_quotes_two_boolq_passages_and_is_refused() {
    // Hand-checked: State of the Union speeches quote the Second and Sixth Amendments, which
    // BoolQ's validation passages 1850 and 2868 also quote.
    let train = testutil::asset("corpus/train.txt");
    let check = overlap(&[s(&train)]);
    assert!(!check.status.success());
    let stdout = text(&check.stdout);
    assert!(stdout.contains("boolq item 1850"), "{stdout}");
    assert!(stdout.contains("boolq item 2868"), "{stdout}");
    assert!(!stdout.contains("arc_"), "{stdout}");
}
