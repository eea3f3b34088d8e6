//! `anllm export --default-anchor-window W`: the GGUF records, beside the anchors a model was
//! trained with, the window it runs with by default ("train narrow, read wide"); `--anchors
//! auto` then runs it exactly as the flags given by hand would, `inspect` shows both, and a
//! model that records no anchors is refused with one clean line. Exported again without the
//! flag, a GGUF keeps the default it records.

mod common;
mod export_fixture;

use std::path::Path;

use common::{anllm, assert_clean_failure, last_json, s, text};
use export_fixture::{export, score, trained_and_exported};

fn export_wide(dir: &Path, vocab: &Path, to: &Path, window: &str) -> std::process::Output {
    let mut args = vec!["export", "-m", s(dir), "--to", s(to), "--type", "q8_0"];
    args.extend(["--vocab-from", s(vocab), "--default-anchor-window", window]);
    anllm(&args)
}

#[test]
fn an_export_runs_with_its_recorded_default_window_and_keeps_the_trained_one() {
    let trained = "ep --anchor-window 4 --mask-rule legacy";
    let wide = "ep --anchor-window 8 --mask-rule legacy";
    let (tmp, vocab, dir, narrow) = trained_and_exported("ep", "4 --mask-rule legacy", trained);
    let gguf = tmp.path().join("wide.gguf");
    let out = export_wide(&dir, &vocab, &gguf, "8");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("runs with --anchors {wide} by default")),
        "{stderr}"
    );

    let inspect = last_json(&anllm(&["inspect", "-m", s(&gguf), "--json"]));
    assert_eq!(inspect["trained_anchors"], trained);
    assert_eq!(inspect["default_anchors"], wide);
    let plain = anllm(&["inspect", "-m", s(&gguf)]);
    assert!(
        text(&plain.stdout).contains(&format!("runs with:     --anchors {wide} (by default)")),
        "{}",
        text(&plain.stdout)
    );
    // An export without the flag records no default.
    let narrow_inspect = last_json(&anllm(&["inspect", "-m", s(&narrow), "--json"]));
    assert!(narrow_inspect["default_anchors"].is_null());

    let (auto, stderr) = score(&gguf, &[]);
    assert_eq!(auto["rule"], serde_json::json!({"an_san_legacy_window": 8}));
    assert!(
        stderr.contains(&format!("records to run with by default: --anchors {wide}")),
        "{stderr}"
    );
    let by_hand = [
        "--anchors",
        "ep",
        "--anchor-window",
        "8",
        "--mask-rule",
        "legacy",
    ];
    let (explicit, stderr) = score(&gguf, &by_hand);
    assert_eq!(auto, explicit);
    assert!(!stderr.contains("warning"), "the default: {stderr}");
    let (at_trained, stderr) = score(&gguf, &["--anchors", "ep", "--anchor-window", "4"]);
    assert_eq!(
        at_trained["rule"],
        serde_json::json!({"an_san_legacy_window": 4})
    );
    assert!(!stderr.contains("warning"), "the trained flags: {stderr}");
    let (_, stderr) = score(&gguf, &["--anchors", "ep", "--anchor-window", "16"]);
    assert!(
        stderr.contains(&format!("trained with --anchors {trained}, and runs with")),
        "{stderr}"
    );
}

#[test]
fn a_default_window_needs_a_model_that_records_its_anchors() {
    let (tmp, vocab, _, _) = trained_and_exported("ep", "0", "ep");
    let out = export_wide(&vocab, &vocab, &tmp.path().join("x.gguf"), "8");
    assert_clean_failure(&out, "records no anchors it was trained with");
    assert!(!tmp.path().join("x.gguf").exists());
}

#[test]
fn a_reexport_keeps_the_recorded_default_unless_given_another() {
    let trained = "ep --anchor-window 4 --mask-rule legacy";
    let (tmp, vocab, dir, _) = trained_and_exported("ep", "4 --mask-rule legacy", trained);
    let wide = tmp.path().join("wide.gguf");
    assert!(export_wide(&dir, &vocab, &wide, "8").status.success());

    // The GGUF exported again, to another type, without the flag: both records carried over.
    let again = tmp.path().join("again.gguf");
    let out = export(&wide, &again, "f16", None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let kept = "ep --anchor-window 8 --mask-rule legacy";
    assert!(
        stderr.contains(&format!("runs with --anchors {kept} by default")),
        "{stderr}"
    );
    let inspect = last_json(&anllm(&["inspect", "-m", s(&again), "--json"]));
    assert_eq!(inspect["trained_anchors"], trained);
    assert_eq!(inspect["default_anchors"], kept);

    // With the flag, the new window replaces the recorded one.
    let wider = tmp.path().join("wider.gguf");
    assert!(export_wide(&wide, &vocab, &wider, "12").status.success());
    let inspect = last_json(&anllm(&["inspect", "-m", s(&wider), "--json"]));
    assert_eq!(
        inspect["default_anchors"],
        "ep --anchor-window 12 --mask-rule legacy"
    );
}
