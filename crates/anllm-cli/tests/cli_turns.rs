//! `anllm generate` with several `--prompt`s: the turns of one conversation on one session.
//! Each later turn prefills only its own tokens (plus the previous answer's last token, which
//! was sampled but not yet run); the expected counts come from the library's tokenizer and
//! chat template, not from the binary.

mod common;

use std::path::Path;
use std::process::Command;

use anllm::chat::{Message, apply_chat_template, next_turn_text};
use serde_json::Value;

use common::{CHAT_TEMPLATE as TEMPLATE, hf_model_with_template as model_with_template};

fn run(dir: &Path, extra: &[&str]) -> Value {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_anllm"))
        .args([
            "generate",
            "-m",
            dir.to_str().unwrap(),
            "--max-tokens",
            "4",
            "--json",
        ])
        .args(extra)
        .env("ANLLM_HOME", home.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("turn 2/2: prompt tokens"), "{stderr}");
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn stat(turn: &Value, key: &str) -> usize {
    turn["stats"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key}: {turn}")) as usize
}

#[test]
fn cli_chat_second_turn_prefills_only_its_own_tokens() {
    let (_tmp, dir) = model_with_template();
    let json = run(&dir, &["--chat", "-p", "hello world", "-p", "and then"]);
    let turns = json["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 2);
    let (t1, t2) = (&turns[0], &turns[1]);
    let model =
        anllm::load_model(&dir, anllm::WeightDtype::Auto, &candle_core::Device::Cpu).unwrap();
    let msg = |role: &str, content: &str| Message {
        role: role.into(),
        content: content.into(),
    };
    let first = apply_chat_template(TEMPLATE, &[msg("user", "hello world")], "<s>", "</s>");
    let first_ids = model.tokenizer.encode(&first.unwrap(), true).unwrap();
    assert_eq!(stat(t1, "prompt_tokens"), first_ids.len());
    assert_eq!(stat(t1, "cached_tokens"), 0);
    // Turn 2 = the answer's pending last token (or the `</s>` that closes a cut-off answer)
    // + the template's text after that `</s>`.
    let answer = t1["text"].as_str().unwrap();
    let all = [
        msg("user", "hello world"),
        msg("assistant", answer),
        msg("user", "and then"),
    ];
    let next = next_turn_text(TEMPLATE, &all, "</s>", "<s>", "</s>").unwrap();
    let next_ids = model.tokenizer.encode(&next, true).unwrap();
    let closing = usize::from(t1["stats"]["stop_reason"] != "eos");
    let generated = stat(t1, "generated_tokens");
    assert_eq!(stat(t2, "cached_tokens"), first_ids.len() + generated - 1);
    assert_eq!(stat(t2, "prompt_tokens"), 1 + closing + next_ids.len());
    assert_eq!(json["text"], t2["text"]);
}

#[test]
fn cli_plain_second_prompt_continues_the_stream() {
    let (_tmp, dir) = model_with_template();
    let json = run(
        &dir,
        &[
            "-p",
            "hello world",
            "-p",
            " more words",
            "--anchors",
            "ids:13",
        ],
    );
    let turns = json["turns"].as_array().expect("turns");
    let (t1, t2) = (&turns[0], &turns[1]);
    let model =
        anllm::load_model(&dir, anllm::WeightDtype::Auto, &candle_core::Device::Cpu).unwrap();
    let more = model.tokenizer.encode(" more words", false).unwrap();
    let generated = stat(t1, "generated_tokens");
    assert_eq!(
        stat(t2, "cached_tokens"),
        stat(t1, "prompt_tokens") + generated - 1
    );
    assert_eq!(stat(t2, "prompt_tokens"), 1 + more.len());
    assert_eq!(
        stat(t2, "cached_tokens") + stat(t2, "prompt_tokens") + stat(t2, "generated_tokens") - 1,
        t2["stats"]["cache"]["tokens_seen"].as_u64().unwrap() as usize
    );
}

/// `--pin-prompt` pins every turn's new prompt tokens: the same answer and kept entries as
/// the explicit `--pin` ranges of those tokens (positions from the turns' own counts). `</s>`
/// is the anchor, so an unpinned prompt would be pruned to it.
#[test]
fn cli_pin_prompt_pins_every_turns_new_tokens() {
    let (_tmp, dir) = model_with_template();
    let base = [
        "--chat",
        "-p",
        "hello world",
        "-p",
        "and then",
        "--anchors",
        "ids:2",
    ];
    let pinned = run(&dir, &[&base[..], &["--pin-prompt"]].concat());
    let turns = pinned["turns"].as_array().expect("turns");
    let (t1, t2) = (&turns[0], &turns[1]);
    let n1 = stat(t1, "prompt_tokens");
    // Turn 2 runs the previous answer's pending last token, then its own new tokens.
    let start = n1 + stat(t1, "generated_tokens");
    let end = start + stat(t2, "prompt_tokens") - 1;
    let (first, second) = (format!("0:{n1}"), format!("{start}:{end}"));
    let explicit = run(
        &dir,
        &[&base[..], &["--pin", &first, "--pin", &second]].concat(),
    );
    let entries = |j: &Value| j["stats"]["cache"]["entries"].as_u64().unwrap();
    assert_eq!(pinned["text"], explicit["text"]);
    assert_eq!(entries(&pinned), entries(&explicit));
    let unpinned = run(&dir, &base);
    assert!(
        entries(&pinned) > entries(&unpinned),
        "{pinned}\n{unpinned}"
    );
}
