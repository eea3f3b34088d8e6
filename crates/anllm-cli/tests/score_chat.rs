//! `anllm score --chat`: the context is a user message in the model's chat template, scored as
//! the assistant's answer. The expected context ids come from the library's template renderer
//! and tokenizer, not from the binary.

mod common;

use anllm::chat::{Message, apply_chat_template};
use common::{CHAT_TEMPLATE, anllm, assert_clean_failure, hf_model_with_template, last_json, s};
use serde_json::Value;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn msg(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
    }
}

#[test]
fn score_chat_renders_the_context_as_a_user_message_with_special_tokens_as_ids() {
    let (_tmp, dir) = hf_model_with_template();
    let model =
        anllm::load_model(&dir, anllm::WeightDtype::Auto, &candle_core::Device::Cpu).unwrap();
    let score = |extra: &[&str]| {
        let base = [
            "score",
            "-m",
            s(&dir),
            "--context",
            "hello world",
            "--continuation",
            " and then",
            "--json",
        ];
        last_json(&anllm(&[&base[..], extra].concat()))
    };
    for (extra, messages) in [
        (&["--chat"][..], vec![msg("user", "hello world")]),
        (
            &["--chat", "--system", "be brief"][..],
            vec![msg("system", "be brief"), msg("user", "hello world")],
        ),
    ] {
        let json = score(extra);
        let text = apply_chat_template(CHAT_TEMPLATE, &messages, "<s>", "</s>").unwrap();
        let want = model.tokenizer.encode(&text, true).unwrap();
        assert_eq!(ids(&json["context_ids"]), want, "{extra:?}");
        // `<s>` and `</s>` are single ids, not pieces of text.
        let eos = model.tokenizer.specials().eos.unwrap();
        assert!(want.contains(&eos), "{want:?}");
        let plain = score(&[]);
        assert_eq!(json["continuation_ids"], plain["continuation_ids"]);
        assert!(json["logprob"].as_f64().unwrap() < 0.0, "{json}");
    }
    let out = anllm(&[
        "score",
        "-m",
        s(&dir),
        "--context",
        "a. b",
        "--continuation",
        " c",
        "--chat",
        "--anchors",
        "ac",
        "--insert-anchors",
    ]);
    assert_clean_failure(&out, "--insert-anchors");
}

/// `score --requests`: each record's result equals the single-pair call with the same flags
/// (one model load instead of one per pair); a record's `system` overrides `--system`.
#[test]
fn score_requests_match_single_calls_in_order() {
    let (tmp, dir) = hf_model_with_template();
    let requests = tmp.path().join("requests.jsonl");
    std::fs::write(
        &requests,
        concat!(
            "{\"context\": \"hello world\", \"continuation\": \" and then\"}\n",
            "\n",
            "{\"context\": \"a b c\", \"continuation\": \" d e\", \"system\": \"be brief\"}\n",
        ),
    )
    .unwrap();
    let single = |context: &str, continuation: &str, system: &str| {
        let base = ["score", "-m", s(&dir), "--chat", "--json"];
        let pair = ["--context", context, "--continuation", continuation];
        let system = ["--system", system];
        last_json(&anllm(&[&base[..], &pair, &system].concat()))
    };
    let out = anllm(&[
        "score",
        "-m",
        s(&dir),
        "--chat",
        "--system",
        "say little",
        "--requests",
        s(&requests),
    ]);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let lines: Vec<Value> = common::text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            single("hello world", " and then", "say little"),
            single("a b c", " d e", "be brief"),
        ]
    );
}

#[test]
fn score_requests_reject_bad_records_before_scoring() {
    let (tmp, dir) = hf_model_with_template();
    for (body, needle) in [
        (
            "{\"context\": \"a\", \"continuation\": \" b\"}\n{\"context\": 1}\n",
            ":2: not a",
        ),
        (
            "{\"context\": \"a\", \"continuation\": \" b\", \"system\": \"x\"}\n",
            ":1: \"system\" needs --chat",
        ),
        ("{\"context\": \"a\", \"continuation\": \"\"}\n", ":1"),
        (
            "{\"context\": \"a\", \"continuation\": \" b\", \"extra\": 1}\n",
            "unknown field",
        ),
    ] {
        let requests = tmp.path().join("bad.jsonl");
        std::fs::write(&requests, body).unwrap();
        let out = anllm(&["score", "-m", s(&dir), "--requests", s(&requests)]);
        assert_clean_failure(&out, needle);
        assert!(
            out.stdout.is_empty(),
            "{body}: {}",
            common::text(&out.stdout)
        );
    }
    let out = anllm(&["score", "-m", s(&dir), "--requests", "/no/such/file.jsonl"]);
    assert_clean_failure(&out, "/no/such/file.jsonl");
}

/// `score --chat --end-of-turn` scores the answer as a whole turn: the continuation gets the
/// token the template writes after an answer (this template's `</s>`, the EOS id), the rest of
/// the result is the plain continuation's, and the added token's log-probability is the last.
#[test]
fn score_end_of_turn_appends_the_templates_answer_terminator() {
    let (_tmp, dir) = hf_model_with_template();
    let model =
        anllm::load_model(&dir, anllm::WeightDtype::Auto, &candle_core::Device::Cpu).unwrap();
    let eos = model.tokenizer.specials().eos.unwrap();
    let score = |extra: &[&str]| {
        let base = ["score", "-m", s(&dir), "--chat", "--json"];
        let pair = ["--context", "hello world", "--continuation", " and then"];
        last_json(&anllm(&[&base[..], &pair, extra].concat()))
    };
    let plain = score(&[]);
    let turn = score(&["--end-of-turn"]);
    let mut want = ids(&plain["continuation_ids"]);
    want.push(eos);
    assert_eq!(ids(&turn["continuation_ids"]), want);
    assert_eq!(turn["context_ids"], plain["context_ids"]);
    let logprobs = |v: &Value| -> Vec<f64> {
        let xs = v["token_logprobs"].as_array().unwrap();
        xs.iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let (p, t) = (logprobs(&plain), logprobs(&turn));
    assert_eq!(t.len(), p.len() + 1);
    for (a, b) in p.iter().zip(&t) {
        assert!((a - b).abs() < 1e-5, "{p:?} vs {t:?}");
    }
    let total = plain["logprob"].as_f64().unwrap() + t[p.len()];
    assert!((turn["logprob"].as_f64().unwrap() - total).abs() < 1e-4);
    let out = anllm(&[
        "score",
        "-m",
        s(&dir),
        "--context",
        "a",
        "--continuation",
        " b",
        "--end-of-turn",
    ]);
    // A usage error: clap's exit code 2 and its message naming the missing flag.
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--chat") && !stderr.contains("panicked"),
        "{stderr}"
    );
}
