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
