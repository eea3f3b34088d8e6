//! `anllm average`: the written weights are the element-wise mean of the sources' (checked
//! against the mean computed here from the sources' own files), the result loads and runs,
//! `--run DIR --last N` takes the newest N checkpoints, and bad input fails cleanly.

mod common;

use std::path::{Path, PathBuf};

use anllm::testutil::TinySpec;
use candle_core::{DType, Device};
use common::{anllm, assert_clean_failure, hf_model, s, text};

/// Every tensor of `dir/model.safetensors` as f64 values, by name.
fn weights(dir: &Path) -> Vec<(String, Vec<f64>)> {
    let map = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<f64>)> = map
        .into_iter()
        .map(|(n, t)| {
            let v = t.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
            (n, v.to_vec1().unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn spec(seed: u64) -> TinySpec {
    TinySpec {
        seed,
        ..TinySpec::gqa()
    }
}

fn average(args: &[&str]) -> std::process::Output {
    anllm(&[&["average"], args].concat())
}

#[test]
fn average_is_the_elementwise_mean_of_the_sources() {
    let models: Vec<_> = [1, 2, 3].map(|seed| hf_model(&spec(seed))).into();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("avg");
    let dirs: Vec<&str> = models.iter().map(|(_, d)| s(d)).collect();
    let out = average(&[&dirs[..], &["--out", s(&out_dir)]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sources: Vec<_> = models.iter().map(|(_, d)| weights(d)).collect();
    let got = weights(&out_dir);
    assert_eq!(got.len(), sources[0].len());
    for (i, (name, values)) in got.iter().enumerate() {
        assert_eq!(name, &sources[0][i].0);
        for (j, v) in values.iter().enumerate() {
            let mean = sources.iter().map(|w| w[i].1[j]).sum::<f64>() / 3.0;
            // Saved in f32: one rounding of the f64 mean.
            assert!(
                (v - mean).abs() <= 1e-6 * mean.abs().max(1e-3),
                "{name}[{j}]: {v} vs {mean}"
            );
        }
    }
    // Not a copy of one source: the seeds differ, so the mean differs from each of them.
    assert!(sources.iter().all(|w| w[0].1 != got[0].1));
    let gen_out = anllm(&[
        "generate",
        "-m",
        s(&out_dir),
        "--prompt",
        "a b",
        "--max-tokens",
        "4",
    ]);
    assert!(gen_out.status.success(), "{}", text(&gen_out.stderr));
    assert!(out_dir.join("tokenizer.json").is_file());
    let provenance = std::fs::read_to_string(out_dir.join("anllm_average.json")).unwrap();
    assert!(provenance.contains(dirs[2]), "{provenance}");
}

/// `DIR/checkpoint-00000N` for each seed, as `train --out` lays them out.
fn run_dir(tmp: &Path, seeds: &[u64]) -> (Vec<tempfile::TempDir>, PathBuf) {
    let run = tmp.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let mut keep = Vec::new();
    for (step, &seed) in seeds.iter().enumerate() {
        let (t, dir) = hf_model(&spec(seed));
        std::fs::rename(&dir, run.join(format!("checkpoint-{:06}", step + 1))).unwrap();
        keep.push(t);
    }
    (keep, run)
}

#[test]
fn run_and_last_average_the_newest_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let (_keep, run) = run_dir(tmp.path(), &[1, 2, 3]);
    let by_last = tmp.path().join("last2");
    let out = average(&["--run", s(&run), "--last", "2", "--out", s(&by_last)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let named = tmp.path().join("named");
    let (c2, c3) = (run.join("checkpoint-000002"), run.join("checkpoint-000003"));
    let out = average(&[s(&c2), s(&c3), "--out", s(&named)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(weights(&by_last), weights(&named));
}

#[test]
fn bad_input_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (_a, a) = hf_model(&spec(1));
    let (_b, b) = hf_model(&spec(2));
    let other = TinySpec {
        hidden: 48,
        ..spec(3)
    };
    let (_c, c) = hf_model(&other);
    let out_dir = tmp.path().join("avg");
    let o = s(&out_dir);
    assert_clean_failure(&average(&[s(&a), "--out", o]), "two or more");
    assert_clean_failure(&average(&[s(&a), s(&c), "--out", o]), "config.json differs");
    let missing = tmp.path().join("missing");
    assert_clean_failure(&average(&[s(&a), s(&missing), "--out", o]), "missing");
    let (_keep, run) = run_dir(tmp.path(), &[1, 2]);
    assert_clean_failure(
        &average(&["--run", s(&run), "--last", "3", "--out", o]),
        "has 2 checkpoints",
    );
    assert_clean_failure(
        &average(&["--run", s(&run), "--last", "1", "--out", o]),
        "two or more",
    );
    assert!(!out_dir.exists(), "a failed average leaves no output");
    std::fs::create_dir(&out_dir).unwrap();
    assert_clean_failure(&average(&[s(&a), s(&b), "--out", o]), "already exists");
}
