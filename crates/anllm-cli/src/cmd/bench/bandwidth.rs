//! `anllm bench --bandwidth`: the machine's streaming-read bandwidth with the bench's threads,
//! and the share of it a decode step reaches (bytes read per token × tokens/s ÷ bandwidth).

use std::time::Instant;

use anllm::prefetch::{AHEAD, prefetch};
use rayon::prelude::*;
use serde_json::{Value, json};

use super::report::Measured;

/// Bytes of the buffer read: far above any last-level cache.
const BUFFER_BYTES: usize = 1 << 29;
/// Passes over it.
const PASSES: usize = 7;

/// Read bandwidth, GB/s, and what a decode step reads of the weights.
#[derive(Debug, Clone)]
pub struct Bandwidth {
    /// GB/s of each pass.
    pub samples: Vec<f64>,
    /// Weight bytes a decode step reads ([`anllm::Llama::decode_weight_bytes`]).
    pub weight_bytes: usize,
}

impl Bandwidth {
    /// Sums a 512 MiB buffer of u64 (integer adds vectorize, so the loop is bound by memory,
    /// not by the adder) with the current thread pool, `PASSES` times, prefetching
    /// [`AHEAD`] bytes in front of the read as the decode kernels do (without the hints a
    /// pass read 11 GB/s on one thread of the issue-16 machine against 14.6 with them, below
    /// what a prefetching decode step reached).
    pub fn measure(weight_bytes: usize) -> Self {
        let words = BUFFER_BYTES / 8;
        // Written in parallel so the pages are spread as the readers will touch them.
        let buf: Vec<u64> = (0..words as u64)
            .into_par_iter()
            .map(|i| i ^ 0x5a)
            .collect();
        let samples = (0..PASSES)
            .map(|_| {
                let start = Instant::now();
                let sum: u64 = buf
                    .par_chunks(1 << 15)
                    .map(|c| {
                        // One cache line at a time, prefetched as the decode kernels do.
                        c.chunks_exact(8).fold(0u64, |a, line| {
                            prefetch(line.as_ptr().wrapping_add(AHEAD / 8));
                            line.iter().fold(a, |a, &x| a.wrapping_add(x))
                        })
                    })
                    .reduce(|| 0, u64::wrapping_add);
                std::hint::black_box(sum);
                BUFFER_BYTES as f64 / start.elapsed().as_secs_f64() / 1e9
            })
            .collect();
        Self {
            samples,
            weight_bytes,
        }
    }

    /// Fastest pass, GB/s.
    pub fn best(&self) -> f64 {
        self.samples.iter().copied().fold(0.0, f64::max)
    }

    /// Bytes one decode step of `m` reads: the weights and the KV entries held at its end.
    fn bytes_per_token(&self, m: &Measured) -> Option<usize> {
        let c = m.cache.as_ref()?;
        Some(self.weight_bytes + c.kv_bytes)
    }

    /// One line per decode row of ours: bytes per token, GB/s reached, share of the best pass.
    pub fn print(&self, rows: &[Measured]) -> Value {
        let mut median = self.samples.clone();
        median.sort_by(f64::total_cmp);
        let median = median[median.len() / 2];
        println!(
            "\nstreaming read, {} MiB × {PASSES}: best {:.1} GB/s, median {median:.1} GB/s\n",
            BUFFER_BYTES >> 20,
            self.best()
        );
        println!(
            "| test | runtime | MB read per token | median tok/s | GB/s | share of best read |"
        );
        println!("|---|---|---:|---:|---:|---:|");
        let mut out = Vec::new();
        for m in rows.iter().filter(|m| m.test.starts_with("tg")) {
            let Some(bytes) = self.bytes_per_token(m) else {
                continue;
            };
            let gbps = bytes as f64 * m.median() / 1e9;
            let share = gbps / self.best();
            println!(
                "| {} | {} | {:.1} | {:.1} | {gbps:.2} | {:.0}% |",
                m.test,
                m.runtime,
                bytes as f64 / 1e6,
                m.median(),
                100.0 * share
            );
            out.push(
                json!({"test": m.test, "runtime": m.runtime, "bytes_per_token": bytes,
                "gb_per_s": gbps, "share": share}),
            );
        }
        json!({"read_gb_per_s": self.samples, "best": self.best(), "median": median,
            "weight_bytes": self.weight_bytes, "decode": out})
    }
}
