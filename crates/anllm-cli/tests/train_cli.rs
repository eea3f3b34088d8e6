//! `anllm train` end to end on a tiny model built in code: a from-scratch run leaves a JSONL
//! log, a PNG loss curve and checkpoints that `score` and `generate` load; the loss falls;
//! a run killed with SIGKILL and `--resume`d loses at most one save interval and continues the
//! same loss curve as an uninterrupted run; bad flags fail with one clean error line.

mod train_fixture;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anllm::testutil::TinySpec;
use serde_json::Value;

use train_fixture::*;

#[test]
fn train_from_scratch_logs_plots_and_saves_a_usable_checkpoint() {
    let fx = fixture();
    let out = fx.out("run");
    let res = run(fx.train_cmd(
        &out,
        &[&FAST[..], &["--steps", "24", "--save-every", "8"]].concat(),
    ));
    assert_ok(&res);
    let records = log_records(&out);
    assert_eq!(steps(&records), (1..=24).collect::<Vec<_>>());
    for r in &records {
        for key in ["step", "loss", "lr", "tokens_per_s"] {
            assert!(r[key].is_number(), "{key} missing in {r}");
        }
    }
    let l = losses(&records);
    let first: f64 = l[..4].iter().sum::<f64>() / 4.0;
    let last: f64 = l[l.len() - 4..].iter().sum::<f64>() / 4.0;
    assert!(
        last < first - 0.5,
        "loss did not fall: {first:.3} → {last:.3}"
    );
    let png = std::fs::read(out.join("loss.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    for step in [8, 16, 24] {
        let dir = out.join(format!("checkpoint-{step:06}"));
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            assert!(dir.join(f).is_file(), "{} lacks {f}", dir.display());
        }
    }
    let ckpt = out.join("checkpoint-000024");
    let ckpt = ckpt.to_str().unwrap();
    let score = run({
        let mut c = Command::new(env!("CARGO_BIN_EXE_anllm"));
        c.args(["score", "--model", ckpt, "--context", "the cat sat on a"])
            .args(["--continuation", " mat.", "--anchors", "ep", "--json"]);
        c
    });
    assert_ok(&score);
    let json: Value = serde_json::from_str(text(&score.stdout).lines().last().unwrap()).unwrap();
    assert!(
        json["logprob"].as_f64().is_some_and(f64::is_finite),
        "{json}"
    );
    let gen_out = run({
        let mut c = Command::new(env!("CARGO_BIN_EXE_anllm"));
        c.args(["generate", "--model", ckpt, "--prompt", "the dog"])
            .args(["--max-tokens", "4", "--temperature", "0", "--anchors", "ep"]);
        c
    });
    assert_ok(&gen_out);
}

#[test]
fn block_mode_fit_trains_whole_documents_where_pack_cuts_them() {
    let fx = fixture();
    // Blank-line documents of two sentences (under 60 tokens): rows of 128 cut many of them
    // under pack.
    let docs: Vec<String> = (0..60).map(|i| sentences(2, 2 * i)).collect();
    std::fs::write(&fx.train, docs.join("\n\n")).unwrap();
    let flags = ["--block-size", "128", "--steps", "2", "--warmup", "0"];
    let pack = run(fx.train_cmd(&fx.out("pack"), &flags));
    assert_ok(&pack);
    let err = text(&pack.stderr);
    assert!(
        err.contains("packing cuts ") && err.contains("--block-mode fit keeps them whole"),
        "{err}"
    );
    let fit = run(fx.train_cmd(
        &fx.out("fit"),
        &[&flags[..], &["--block-mode", "fit"]].concat(),
    ));
    assert_ok(&fit);
    let err = text(&fit.stderr);
    assert!(
        err.contains("--block-mode fit: ") && err.contains(" rows of 128 tokens, "),
        "{err}"
    );
    assert!(!err.contains("packing cuts"), "{err}");
    let records = log_records(&fx.out("fit"));
    assert_eq!(steps(&records), [1, 2]);
    assert!(losses(&records).iter().all(|l| l.is_finite()));
    // The mode is one of the run's flags: resuming a packed run with fit is refused.
    let resumed = run(fx.train_cmd(
        &fx.out("pack"),
        &[&flags[..], &["--block-mode", "fit", "--resume"]].concat(),
    ));
    assert!(!resumed.status.success());
    assert!(
        text(&resumed.stderr).contains("the flags differ"),
        "{}",
        text(&resumed.stderr)
    );
}

/// A size that `train --dry-run` prints ("1.62 GB", "3.4 MB", "91.0 kB"), in bytes.
fn parse_size(s: &str) -> f64 {
    let (n, unit) = s.trim().split_once(' ').unwrap();
    let scale = match unit {
        "GB" => 1e9,
        "MB" => 1e6,
        "kB" => 1e3,
        _ => panic!("unit of {s:?}"),
    };
    n.parse::<f64>().unwrap() * scale
}

#[test]
fn dry_run_prints_the_plan_writes_nothing_and_foretells_the_checkpoints() {
    let fx = fixture();
    let flags = ["--steps", "7", "--save-every", "3", "--block-size", "32"];
    let out = fx.out("run");
    let dry = run(fx.train_cmd(&out, &[&flags[..], &["--dry-run"]].concat()));
    assert_ok(&dry);
    assert!(!out.exists(), "a dry run wrote {}", out.display());
    let plan = text(&dry.stdout);
    assert!(plan.contains("steps: 7"), "{plan}");
    // Saves at steps 3, 6 and the last, 7.
    let line = plan
        .lines()
        .find(|l| l.starts_with("checkpoints: "))
        .unwrap();
    assert!(
        line.starts_with("checkpoints: 3 (every 3 steps and at the end), "),
        "{line}"
    );
    let each = line.split(", ").nth(1).unwrap().trim_end_matches(" each");
    // The oracle: the files a real run of the same flags writes.
    let real = run(fx.train_cmd(&out, &flags));
    assert_ok(&real);
    let saved: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("checkpoint-")
        })
        .collect();
    assert_eq!(saved.len(), 3, "{saved:?}");
    // Weights and optimizer moments; the tokenizer and JSON files are not counted.
    let bytes: u64 = std::fs::read_dir(&saved[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let predicted = parse_size(each);
    // Within 5%: the printed size has three significant digits, the files carry headers.
    assert!(
        (predicted - bytes as f64).abs() <= 0.05 * bytes as f64,
        "predicted {each}, the checkpoint's safetensors hold {bytes} bytes"
    );
    // With `<AC>` added to the vocabulary the scratch tokenizer is removed, and --out stays
    // unwritten.
    let ac_out = fx.out("ac");
    let mut cmd = fx.train_cmd_with("ac", &ac_out, &[&flags[..], &["--dry-run"]].concat());
    // The sentence splitter's parameters come from the fetched assets.
    cmd.env("ANLLM_HOME", real_home());
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let scratch = std::env::temp_dir().join(format!("anllm-dry-run-{}", child.id()));
    let ac = child.wait_with_output().unwrap();
    assert_ok(&ac);
    assert!(!ac_out.exists());
    assert!(!scratch.exists(), "{} is left", scratch.display());
    assert!(text(&ac.stderr).contains("<AC>"), "{}", text(&ac.stderr));
}

#[test]
fn train_sigkill_then_resume_continues_the_same_curve() {
    let fx = fixture();
    let flags = [&FAST[..], &["--steps", "200", "--save-every", "20"]].concat();
    let reference = fx.out("reference");
    assert_ok(&run(fx.train_cmd(&reference, &flags)));
    let expected = losses(&log_records(&reference));

    let out = fx.out("killed");
    let mut child = fx
        .train_cmd(&out, &flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while log_records(&out).len() < 90 {
        assert!(Instant::now() < deadline, "the run never reached step 90");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let logged = log_records(&out).len() as u64;
    let saved = anllm_train::checkpoint::list_checkpoints(&out).unwrap();
    let last_saved = saved.last().map_or(0, |(s, _)| *s);
    assert!(
        logged < 200 && logged - last_saved <= 20,
        "killed at step {logged}, last checkpoint {last_saved}"
    );

    let resumed = run(fx.train_cmd(&out, &[&flags[..], &["--resume"]].concat()));
    assert_ok(&resumed);
    assert!(text(&resumed.stderr).contains("resuming from"));
    let records = log_records(&out);
    assert_eq!(steps(&records), (1..=200).collect::<Vec<_>>());
    for (i, (got, want)) in losses(&records).iter().zip(&expected).enumerate() {
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "step {}: resumed loss {got} vs uninterrupted {want}",
            i + 1
        );
    }
}

#[test]
fn train_bad_flags_fail_cleanly() {
    let fx = fixture();
    let mut cases: Vec<(&[&str], &str)> = vec![
        (&["--steps", "3", "--lr", "0"], "--lr"),
        (&["--steps", "3", "--save-every", "0"], "--save-every"),
        (&[], "--steps"),
        (&["--steps", "3", "--resume"], "no checkpoint"),
        (&["--steps", "3", "--grad-accum", "0"], "--grad-accum"),
        // The tiny model's context is 128 positions.
        (
            &["--steps", "3", "--block-size", "130"],
            "max_position_embeddings 128",
        ),
        (&["--steps", "3", "--block-size", "1"], "--block-size 1"),
    ];
    if !cfg!(feature = "cuda") {
        cases.push((&["--steps", "3", "--device", "cuda"], "CUDA device 0"));
    }
    for (i, (extra, needle)) in cases.iter().enumerate() {
        let res = run(fx.train_cmd(&fx.out(&format!("bad{i}")), extra));
        let stderr = text(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
        let err: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("anllm: error:"))
            .collect();
        assert_eq!(err.len(), 1, "{extra:?}: {stderr}");
        assert!(
            err[0].contains(needle),
            "{extra:?}: expected `{needle}` in {stderr}"
        );
    }
    let missing = fx.train_cmd(&fx.out("missing"), &["--steps", "3", "--block-size", "32"]);
    let mut missing = missing;
    missing.arg("--data").arg(fx.out("nope.txt"));
    let res = run(missing);
    assert_eq!(res.status.code(), Some(1), "{}", text(&res.stderr));
    assert!(text(&res.stderr).contains("nope.txt"));
}

#[test]
fn train_ac_adds_the_anchor_token_and_the_checkpoint_scores_with_it() {
    let fx = fixture();
    let out = fx.out("ac");
    let mut cmd = fx.train_cmd_with(
        "ac",
        &out,
        &[
            "--steps",
            "2",
            "--init-new-rows",
            "mean",
            "--block-size",
            "32",
        ],
    );
    // The sentence splitter's parameters come from the fetched assets.
    cmd.env("ANLLM_HOME", real_home());
    let res = run(cmd);
    assert_ok(&res);
    assert!(text(&res.stderr).contains("<AC>"), "{}", text(&res.stderr));
    let ckpt = out.join("checkpoint-000002");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["vocab_size"], TinySpec::gqa().vocab + 1, "{config}");
    let score = run({
        let mut c = Command::new(env!("CARGO_BIN_EXE_anllm"));
        c.arg("score")
            .arg("--model")
            .arg(&ckpt)
            .args([
                "--context",
                "the cat sat. the dog ran.",
                "--continuation",
                " home.",
            ])
            .args(["--anchors", "ac", "--insert-anchors", "--json"])
            .env("ANLLM_HOME", real_home());
        c
    });
    assert_ok(&score);
}

/// Where `scripts/fetch-assets.sh` put the assets, checked to hold the Punkt parameters.
fn real_home() -> PathBuf {
    anllm::testutil::asset("punkt/english.json");
    anllm::testutil::anllm_home()
}
