//! `train --stop-at N` ends a run at step N on the schedule of `--steps` (the oracle: an
//! uninterrupted run of the same flags, step for step), saves there, plans it in `--dry-run`,
//! and a later `--resume` without it finishes the uninterrupted run's curve.

mod train_fixture;

use std::path::Path;

use anllm_train::checkpoint::list_checkpoints;
use serde_json::Value;
use train_fixture::*;

/// A cosine schedule, so that the learning rate of step k depends on where --steps ends it.
fn flags(extra: &[&'static str]) -> Vec<&'static str> {
    let base = [
        "--steps",
        "40",
        "--save-every",
        "20",
        "--schedule",
        "cosine",
    ];
    [&FAST[..], &base[..], extra].concat()
}

fn lrs(records: &[Value]) -> Vec<f64> {
    records.iter().map(|r| r["lr"].as_f64().unwrap()).collect()
}

fn saved_steps(out: &Path) -> Vec<u64> {
    let saved = list_checkpoints(out).unwrap();
    saved.iter().map(|(step, _)| *step).collect()
}

fn assert_same_curve(got: &[Value], want: &[Value]) {
    assert_eq!(steps(got), steps(want));
    assert_eq!(lrs(got), lrs(want), "the schedule differs");
    for (i, (g, w)) in losses(got).iter().zip(losses(want)).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
            "step {}: loss {g} vs uninterrupted {w}",
            i + 1
        );
    }
}

#[test]
fn stop_at_ends_on_the_schedule_of_steps_and_resume_finishes_it() {
    let fx = fixture();
    let reference = fx.out("reference");
    assert_ok(&run(fx.train_cmd(&reference, &flags(&[]))));
    let want = log_records(&reference);
    assert_eq!(want.len(), 40);

    let out = fx.out("stopped");
    let plan = run(fx.train_cmd(&out, &flags(&["--stop-at", "25", "--dry-run"])));
    assert_ok(&plan);
    let plan = text(&plan.stdout);
    assert!(plan.contains("stopping at step 25 (--stop-at)"), "{plan}");
    assert!(plan.contains("checkpoints: 2 (every 20 steps"), "{plan}");
    assert!(!out.exists());

    assert_ok(&run(fx.train_cmd(&out, &flags(&["--stop-at", "25"]))));
    assert_eq!(saved_steps(&out), [20, 25]);
    assert_same_curve(&log_records(&out), &want[..25]);

    // Resumed where it already stands: nothing trained, nothing rewritten.
    let again = run(fx.train_cmd(&out, &flags(&["--stop-at", "25", "--resume"])));
    assert_ok(&again);
    assert!(text(&again.stderr).contains("nothing to train"));
    assert_eq!(log_records(&out).len(), 25);

    assert_ok(&run(fx.train_cmd(&out, &flags(&["--resume"]))));
    assert_same_curve(&log_records(&out), &want);
    assert_eq!(saved_steps(&out), [20, 25, 40]);
}

#[test]
fn stop_at_zero_fails_cleanly() {
    let fx = fixture();
    let out = run(fx.train_cmd(&fx.out("zero"), &flags(&["--stop-at", "0"])));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--stop-at must be at least 1"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
