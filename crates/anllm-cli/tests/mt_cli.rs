//! `anllm eval mt` end to end on a tiny seeded model: the exact prompt, the pinned source span,
//! MaxKV / C⇓ of full and anchored runs, the Alpaca export that `anllm train` reads, and clean
//! errors for bad input.

mod common;

use std::path::Path;

use anllm::testutil::TinySpec;
use anllm::tokenizer::Tokenizer;
use common::{anllm, assert_clean_failure, hf_model, last_json, s};
use serde_json::Value;

/// The tiny model with room for the prompt (its pieces are mostly single characters).
fn model() -> (tempfile::TempDir, std::path::PathBuf) {
    hf_model(&TinySpec {
        max_pos: 1024,
        ..TinySpec::gqa()
    })
}

fn pairs(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("pairs.tsv");
    std::fs::write(
        &path,
        "Der Hund schläft. Die Katze spielt.\tThe dog sleeps. The cat plays.\n\
         Wir gehen heute nach Hause.\tWe are going home today.\n",
    )
    .unwrap();
    path
}

fn eval_mt(dir: &Path, data: &Path, extra: &[&str]) -> (Value, Value) {
    let out = dir.join(format!("out{}.json", extra.len()));
    let mut args = vec![
        "eval",
        "mt",
        "-m",
        s(dir),
        "--data",
        s(data),
        "--max-tokens",
        "6",
        "--json",
        "--output",
        s(&out),
    ];
    args.extend_from_slice(extra);
    let summary = last_json(&anllm(&args));
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (summary, written)
}

#[test]
fn anchored_run_with_pinned_source_keeps_the_source_and_reports_table_2() {
    let (tmp, dir) = model();
    let data = pairs(tmp.path());
    let (summary, out) = eval_mt(&dir, &data, &["--anchors", "ep", "--pin-source"]);
    assert_eq!(summary["items"], 2);
    let records = out["records"].as_array().unwrap();
    let expected_prompt = "Below is an instruction that describes a task, paired with an input \
        that provides further context. Write a response that appropriately completes the \
        request.\n\n### Instruction:\nTranslate the following sentences from German to \
        English.\n\n### Input:\nDer Hund schläft. Die Katze spielt.\n\n### Response:";
    assert_eq!(records[0]["prompt"], expected_prompt);
    let tok = Tokenizer::from_hf_dir(&dir).unwrap();
    for (record, source) in records.iter().zip([
        "Der Hund schläft. Die Katze spielt.",
        "Wir gehen heute nach Hause.",
    ]) {
        let ids = tok
            .encode(record["prompt"].as_str().unwrap(), false)
            .unwrap();
        let pin = record["pinned"].as_array().unwrap();
        let (a, b) = (
            pin[0].as_u64().unwrap() as usize,
            pin[1].as_u64().unwrap() as usize,
        );
        // The tiny tokenizer adds BOS: stream position = prompt token index + 1.
        assert_eq!(tok.decode(&ids[a - 1..b - 1], false).unwrap(), source);
        let (max_kv, all_kv) = (
            record["max_kv"].as_u64().unwrap(),
            record["all_kv"].as_u64().unwrap(),
        );
        // Pinned entries stay, the rest of the prompt's closed segments go.
        assert!(max_kv >= (b - a) as u64 && max_kv < all_kv, "{record}");
        assert!(record["output_tokens"].as_u64().unwrap() >= 1);
    }
    assert!(summary["c_reduction"].as_f64().unwrap() > 0.5, "{summary}");
    assert!(summary["t_speedup"].as_f64().unwrap() > 0.0, "{summary}");
    for key in ["bleu", "chrf", "max_kv"] {
        assert!(summary[key].is_number(), "{key}: {summary}");
    }
}

#[test]
fn full_cache_keeps_everything_and_pinning_keeps_more_than_anchors_alone() {
    let (tmp, dir) = model();
    let data = pairs(tmp.path());
    let (full, out) = eval_mt(&dir, &data, &[]);
    assert_eq!(full["c_reduction"], 0.0);
    for r in out["records"].as_array().unwrap() {
        assert_eq!(r["max_kv"], r["all_kv"]);
    }
    let (anchored, _) = eval_mt(&dir, &data, &["--anchors", "ep"]);
    let (pinned, _) = eval_mt(&dir, &data, &["--anchors", "ep", "--pin-source"]);
    let kv = |v: &Value| v["max_kv"].as_f64().unwrap();
    assert!(
        kv(&anchored) < kv(&pinned) && kv(&pinned) < kv(&full),
        "{anchored} {pinned} {full}"
    );
}

#[test]
fn training_pairs_export_as_alpaca_that_train_reads() {
    let (tmp, dir) = model();
    let data = pairs(tmp.path());
    let alpaca = tmp.path().join("train.jsonl");
    let out = anllm(&[
        "eval",
        "mt",
        "--data",
        s(&data),
        "--write-alpaca",
        s(&alpaca),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = std::fs::read_to_string(&alpaca).unwrap();
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["instruction"],
        "Translate the following sentences from German to English."
    );
    assert_eq!(first["input"], "Der Hund schläft. Die Katze spielt.");
    assert_eq!(first["output"], "The dog sleeps. The cat plays.");
    let run = tmp.path().join("run");
    let train = anllm(&[
        "train",
        "-m",
        s(&dir),
        "--data",
        s(&alpaca),
        "--anchors",
        "ep",
        "--out",
        s(&run),
        "--steps",
        "1",
        "--block-size",
        "128",
    ]);
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
}

#[test]
fn bad_input_fails_cleanly() {
    let (tmp, dir) = model();
    let data = pairs(tmp.path());
    let run = |extra: &[&str]| {
        let mut args = vec!["eval", "mt", "-m", s(&dir)];
        args.extend_from_slice(extra);
        anllm(&args)
    };
    assert_clean_failure(&run(&["--data", s(&data), "--pin-source"]), "--anchors");
    assert_clean_failure(&run(&[]), "scripts/fetch-assets.sh");
    assert_clean_failure(&run(&["--data", s(&data), "--shots", "1"]), "Ding");
    assert_clean_failure(&run(&["--data", s(&data), "--tgt", "xx"]), "xx");
    let bad = tmp.path().join("bad.tsv");
    std::fs::write(&bad, "no tab here\n").unwrap();
    assert_clean_failure(&run(&["--data", s(&bad)]), "row 1");
    let ding = tmp.path().join("not-ding");
    std::fs::write(&ding, "hello\n").unwrap();
    assert_clean_failure(&run(&["--data", s(&ding)]), "no sentence pairs");
}

/// `eval mt --logit-bias/--presence-penalty/--repeat-penalty` sample as llama.cpp's: a +30
/// bias forces a letter; a presence penalty of 50 then allows it once if the prompt lacks it
/// ("j") and never if the prompt has it ("z", in "Katze": the window holds the prompt); each
/// output equals `generate`'s with the same flags on the same prompt; the flags land in the
/// summary.
#[test]
fn penalties_and_logit_bias_sample_as_generate_does() {
    let (tmp, dir) = model();
    let data = pairs(tmp.path());
    let tok = Tokenizer::from_hf_dir(&dir).unwrap();
    for (letter, penalty, most) in [("j", "0", 6), ("j", "50", 1), ("z", "50", 0)] {
        let id = tok.token_id(letter).unwrap();
        let bias = format!("{id}+30");
        let flags = [
            "--logit-bias",
            &bias,
            "--presence-penalty",
            penalty,
            "--repeat-penalty",
            "1.5",
            "--repeat-last-n",
            "-1",
        ];
        let (summary, out) = eval_mt(&dir, &data, &flags);
        assert_eq!(summary["sampling"]["repeat_penalty"], 1.5);
        assert_eq!(summary["sampling"]["repeat_last_n"], -1);
        assert_eq!(summary["sampling"]["logit_bias"][0][0], id);
        let record = &out["records"][0];
        let raw = record["raw_output"].as_str().unwrap();
        assert_eq!(raw.matches(letter).count(), most, "{flags:?}: {raw:?}");
        let generate = [
            "generate",
            "-m",
            s(&dir),
            "-p",
            record["prompt"].as_str().unwrap(),
            "--max-tokens",
            "6",
            "--json",
        ];
        let generated = last_json(&anllm(&[&generate[..], &flags].concat()));
        let text = generated["text"].as_str().unwrap();
        assert_eq!(generated["stats"]["prompt_tokens"], record["prompt_tokens"]);
        assert!(text.starts_with(raw), "eval mt {raw:?}, generate {text:?}");
    }
}
