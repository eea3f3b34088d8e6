//! Peer runtimes measured in the same run: llama.cpp's llama-bench and NVIDIA kvpress (HF
//! transformers), each through its script under `benches/`.

use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::report::Measured;
use crate::args::BenchArgs;

/// Runs llama-bench through the peer script and returns its JSON records.
pub fn llamacpp(args: &BenchArgs, model: &std::path::Path, extra: &[String]) -> Result<Vec<Value>> {
    let threads = args.common.threads.unwrap_or(2).to_string();
    let out = Command::new("bash")
        .arg(&args.llamacpp_script)
        .arg("bench")
        .args(extra)
        .env("MODEL", model)
        .env("THREADS", &threads)
        .output()
        .with_context(|| format!("running {}", args.llamacpp_script.display()))?;
    if !out.status.success() {
        bail!(
            "llama.cpp peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing llama-bench JSON")?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// llama-bench records as measured rows: `(test, runtime, samples tok/s)`.
pub fn llamacpp_rows(records: &[Value]) -> Vec<Measured> {
    records
        .iter()
        .filter_map(|r| {
            let (p, g, d) = (
                r["n_prompt"].as_u64()?,
                r["n_gen"].as_u64()?,
                r["n_depth"].as_u64().unwrap_or(0),
            );
            let test = if g == 0 {
                format!("pp{p}")
            } else {
                format!("tg{g} @ d{d}")
            };
            let fa = if r["flash_attn"].as_bool().unwrap_or(r["flash_attn"] == 1) {
                "on"
            } else {
                "off"
            };
            let samples: Vec<f64> = match r["samples_ts"].as_array() {
                Some(a) => a.iter().filter_map(Value::as_f64).collect(),
                None => vec![r["avg_ts"].as_f64()?],
            };
            Some(Measured::new(test, format!("llama.cpp FA {fa}"), samples))
        })
        .collect()
}

/// kvpress records as measured rows.
pub fn kvpress_rows(records: &[Value]) -> Vec<Measured> {
    records
        .iter()
        .filter_map(|r| {
            let depth = r["depth"].as_u64()?;
            let test = format!("tg{} @ d{depth}", r["decode_tokens"].as_u64()?);
            let press = r["press"].as_str().unwrap_or("?");
            let runtime = match r["compression_ratio"].as_f64() {
                Some(ratio) if press != "none" => format!("kvpress {press} {ratio}"),
                _ => "kvpress (HF, no press)".to_string(),
            };
            let samples: Vec<f64> = r["decode_tokens_per_s"]["runs"]
                .as_array()?
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            let mut m = Measured::new(test, runtime, samples);
            m.kv_bytes = r["kv_bytes"].as_u64().map(|b| b as usize);
            m.full_kv_bytes = r["full_kv_bytes"].as_u64().map(|b| b as usize);
            Some(m)
        })
        .collect()
}

/// Runs the kvpress peer over `prompt_file` and returns its JSON records (one per press and
/// depth).
pub fn kvpress(args: &BenchArgs, prompt_file: &std::path::Path) -> Result<Vec<Value>> {
    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let out = Command::new("bash")
        .arg(&args.kvpress_script)
        .arg("bench")
        .arg("--prompt-file")
        .arg(prompt_file)
        .args(["--depths", &join(&args.depths)])
        .args(["--decode-tokens", &args.decode_tokens.to_string()])
        .args(["--repeat", &args.repeat.to_string()])
        .args(["--threads", &args.common.threads.unwrap_or(2).to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", args.kvpress_script.display()))?;
    if !out.status.success() {
        bail!("kvpress peer failed with {}", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).context("parsing kvpress JSON"))
        .collect()
}
