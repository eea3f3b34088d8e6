//! The bench table: one row per (test, runtime), ours and the peers', with the ratios the
//! issues ask for computed from numbers measured in the same run.

use serde_json::{Value, json};

use anllm::CacheStats;

/// One measured test of one runtime: tokens/s of each repetition, and the KV it held.
#[derive(Debug, Clone)]
pub struct Measured {
    /// `pp512`, `tg64 @ d4096`, ….
    pub test: String,
    /// `anllm full`, `anllm anchor`, `llama.cpp FA off`, `kvpress knorm 0.5`, ….
    pub runtime: String,
    /// Tokens/s of each repetition.
    pub samples: Vec<f64>,
    /// Cache statistics at the end of the run (ours only).
    pub cache: Option<CacheStats>,
    /// KV bytes after the prefill (peers that report it).
    pub kv_bytes: Option<usize>,
    /// KV bytes of a full cache over the same tokens.
    pub full_kv_bytes: Option<usize>,
}

impl Measured {
    /// A row without cache information.
    pub fn new(test: String, runtime: String, samples: Vec<f64>) -> Self {
        Self {
            test,
            runtime,
            samples,
            cache: None,
            kv_bytes: None,
            full_kv_bytes: None,
        }
    }

    /// Slowest repetition.
    pub fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// Median repetition.
    pub fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
    }

    /// Fastest repetition.
    pub fn max(&self) -> f64 {
        self.samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    fn kv_cells(&self) -> (String, String, String) {
        let mib = |b: usize| format!("{:.2}", b as f64 / 1048576.0);
        match (&self.cache, self.kv_bytes) {
            (Some(c), _) => (
                format!("{} / {}", c.entries, c.peak_entries),
                format!("{} / {}", mib(c.kv_bytes), mib(c.peak_kv_bytes)),
                format!(
                    "{:.1}%",
                    100.0 * (1.0 - c.peak_kv_bytes as f64 / c.full_kv_bytes.max(1) as f64)
                ),
            ),
            (None, Some(b)) => {
                let reduction = self.full_kv_bytes.map_or("–".into(), |f| {
                    format!("{:.1}%", 100.0 * (1.0 - b as f64 / f.max(1) as f64))
                });
                ("–".into(), mib(b), reduction)
            }
            _ => ("–".into(), "–".into(), "–".into()),
        }
    }
}

/// Median of the row of `runtime` for `test`, if measured.
fn median_of(rows: &[Measured], test: &str, runtime: &str) -> Option<f64> {
    rows.iter()
        .find(|m| m.test == test && m.runtime == runtime)
        .map(Measured::median)
}

/// Best (fastest median) row of a runtime family for `test`.
fn best_of(rows: &[Measured], test: &str, family: &str) -> Option<(f64, String)> {
    rows.iter()
        .filter(|m| m.test == test && m.runtime.starts_with(family))
        .map(|m| (m.median(), m.runtime.clone()))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Prints the markdown table (and JSON with `--json`).
pub fn print(
    rows: &[Measured],
    threads: Option<usize>,
    as_json: bool,
    bandwidth: Option<&super::bandwidth::Bandwidth>,
) {
    println!(
        "| test | runtime | KV entries end / peak | KV MiB end / peak | C⇓ at peak | min tok/s | \
         median tok/s | ÷ anllm full | ÷ llama.cpp FA off |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut out = Vec::new();
    for m in rows {
        let (entries, mib, reduction) = m.kv_cells();
        let ratio =
            |base: Option<f64>| base.map_or("–".into(), |b| format!("{:.2}×", m.median() / b));
        let vs_full = median_of(rows, &m.test, "anllm full").filter(|_| m.runtime != "anllm full");
        let vs_lcpp =
            median_of(rows, &m.test, "llama.cpp FA off").filter(|_| m.runtime.starts_with("anllm"));
        println!(
            "| {} | {} | {entries} | {mib} | {reduction} | {:.1} | {:.1} | {} | {} |",
            m.test,
            m.runtime,
            m.min(),
            m.median(),
            ratio(vs_full),
            ratio(vs_lcpp),
        );
        out.push(json!({
            "test": m.test, "runtime": m.runtime, "samples_tokens_per_s": m.samples,
            "min": m.min(), "median": m.median(), "max": m.max(), "cache": m.cache,
            "kv_bytes": m.kv_bytes, "full_kv_bytes": m.full_kv_bytes,
            "llamacpp_best": best_of(rows, &m.test, "llama.cpp").map(|b| json!({"median": b.0, "runtime": b.1})),
        }));
    }
    let bandwidth = bandwidth.map(|b| b.print(rows));
    if as_json {
        println!(
            "{}",
            json!({ "threads": threads, "results": Value::Array(out), "bandwidth": bandwidth })
        );
    }
}
