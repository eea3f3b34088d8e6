//! The fixture of the `train` tests: a tiny model directory built in code, a training file and
//! a held-out file of short sentences, and readers of the run's JSONL log.
#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anllm::testutil::{HfLayout, TinySpec, write_hf_dir};
use serde_json::Value;
use tempfile::TempDir;

/// A tiny model directory (its `config.json` and tokenizer seed `--init-from-scratch`), a
/// training file and a held-out file.
pub struct Fixture {
    pub tmp: TempDir,
    pub model: PathBuf,
    pub train: PathBuf,
    pub heldout: PathBuf,
}

pub fn sentences(n: usize, offset: usize) -> String {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "home",
    ];
    let mut text = String::new();
    for i in 0..n {
        let k = i + offset;
        let len = 3 + k % 4;
        let s: Vec<&str> = (0..len)
            .map(|j| words[(k * 3 + j * 7) % words.len()])
            .collect();
        text.push_str(&s.join(" "));
        text.push_str(". ");
        if i % 6 == 5 {
            text.push_str("\n\n");
        }
    }
    text
}

pub fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_hf_dir(&model, &TinySpec::gqa(), HfLayout::Safetensors).unwrap();
    let train = tmp.path().join("train.txt");
    std::fs::write(&train, sentences(240, 0)).unwrap();
    let heldout = tmp.path().join("heldout.txt");
    std::fs::write(&heldout, sentences(30, 1000)).unwrap();
    Fixture {
        tmp,
        model,
        train,
        heldout,
    }
}

impl Fixture {
    pub fn out(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `anllm train` from scratch with anchors `ep`; `extra` adds flags.
    pub fn train_cmd(&self, out: &Path, extra: &[&str]) -> Command {
        self.train_cmd_with("ep", out, extra)
    }

    /// [`Self::train_cmd`] with other anchors.
    pub fn train_cmd_with(&self, anchors: &str, out: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_anllm"));
        cmd.arg("train")
            .arg("--init-from-scratch")
            .arg("--config")
            .arg(self.model.join("config.json"))
            .arg("--tokenizer")
            .arg(&self.model)
            .arg("--data")
            .arg(&self.train)
            .arg("--eval-data")
            .arg(&self.heldout)
            .arg("--out")
            .arg(out)
            .args(["--anchors", anchors, "--batch-size", "2"])
            .args(["--threads", "1", "--seed", "7"])
            .args(extra)
            .env("ANLLM_HOME", self.tmp.path().join("home"))
            .env("RUST_BACKTRACE", "0");
        cmd
    }
}

/// The optimisation of the runs that must learn something in a few steps.
pub const FAST: [&str; 6] = ["--lr", "1e-2", "--warmup", "2", "--block-size", "32"];

pub fn run(mut cmd: Command) -> Output {
    cmd.output().expect("running the anllm binary")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("panicked"));
}

/// The complete records of the run's log: a line the trainer is still writing (no newline yet,
/// as a test that polls a running run can catch it) is not one.
pub fn log_records(out: &Path) -> Vec<Value> {
    let log = std::fs::read_to_string(out.join("train_log.jsonl")).unwrap_or_default();
    let complete = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn losses(records: &[Value]) -> Vec<f64> {
    records
        .iter()
        .map(|r| r["loss"].as_f64().unwrap())
        .collect()
}

pub fn steps(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect()
}
