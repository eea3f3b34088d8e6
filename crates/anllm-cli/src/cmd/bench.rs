//! `anllm bench`: prefill tok/s at N prompt tokens and decode tok/s at several KV depths, with
//! min/median over repetitions, optionally beside llama.cpp's llama-bench in the same run.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use anllm::generate::prefill;
use anllm::{ForwardInput, Llama, OutputRows, TokenId};

use crate::args::BenchArgs;
use crate::config;

/// One measured test: tokens/s of each repetition.
struct Measured {
    name: String,
    samples: Vec<f64>,
}

impl Measured {
    fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    }
}

/// Deterministic pseudo-random token ids (what llama-bench feeds, too).
fn bench_tokens(n: usize, vocab: usize) -> Vec<TokenId> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (100 + (state >> 33) as usize % (vocab - 100)) as TokenId
        })
        .collect()
}

fn time_prefill(model: &Llama, tokens: &[TokenId], repeat: usize) -> Result<Measured> {
    let mut samples = Vec::new();
    for _ in 0..repeat {
        let mut cache = model.new_cache(tokens.len())?;
        let start = Instant::now();
        prefill(model, &mut cache, tokens, 512, tokens.len() - 1)?;
        samples.push(tokens.len() as f64 / start.elapsed().as_secs_f64());
    }
    Ok(Measured {
        name: format!("pp{}", tokens.len()),
        samples,
    })
}

fn time_decode(
    model: &Llama,
    tokens: &[TokenId],
    depth: usize,
    n: usize,
    repeat: usize,
) -> Result<Measured> {
    let mut cache = model.new_cache(depth + n)?;
    if depth > 0 {
        prefill(model, &mut cache, &tokens[..depth], 512, depth - 1)?;
    }
    let mut samples = Vec::new();
    for _ in 0..repeat {
        cache.truncate(depth);
        let start = Instant::now();
        for &token in &tokens[depth..depth + n] {
            let pos = [cache.next_pos()];
            let input = ForwardInput::causal(std::slice::from_ref(&token), &pos, OutputRows::Last);
            model.forward(&input, &mut cache)?;
        }
        samples.push(n as f64 / start.elapsed().as_secs_f64());
    }
    Ok(Measured {
        name: format!("tg{n} @ d{depth}"),
        samples,
    })
}

/// Runs llama-bench through the peer script and returns its JSON records.
fn llamacpp(args: &BenchArgs, model: &std::path::Path, extra: &[String]) -> Result<Vec<Value>> {
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

/// Best llama.cpp tokens/s (over flash-attention settings) for a test.
fn llamacpp_best(
    records: &[Value],
    prompt: u64,
    generated: u64,
    depth: u64,
) -> Option<(f64, String)> {
    records
        .iter()
        .filter(|r| {
            r["n_prompt"] == prompt
                && r["n_gen"] == generated
                && r["n_depth"].as_u64().unwrap_or(0) == depth
        })
        .filter_map(|r| Some((r["avg_ts"].as_f64()?, format!("fa={}", r["flash_attn"]))))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Runs the subcommand.
pub fn run(args: BenchArgs) -> Result<()> {
    config::set_threads(args.common.threads)?;
    let path = config::resolve_model(&args.common)?;
    let model = config::load(&args.common)?;
    let llama = &model.llama;
    let max_depth = args.depths.iter().copied().max().unwrap_or(0);
    let need = args.prompt_tokens.max(max_depth + args.decode_tokens);
    anllm::generate::check_context(llama, 0, need)?;
    if args.prompt_tokens == 0 || args.repeat == 0 || args.decode_tokens == 0 {
        bail!("--prompt-tokens, --decode-tokens and --repeat must be positive");
    }
    let tokens = bench_tokens(need, llama.config().vocab_size);
    eprintln!(
        "bench: {} ({}), threads {:?}",
        path.display(),
        model.info.compute,
        args.common.threads
    );
    let mut results = vec![time_prefill(
        llama,
        &tokens[..args.prompt_tokens],
        args.repeat,
    )?];
    eprintln!("bench: {} done", results[0].name);
    for &depth in &args.depths {
        results.push(time_decode(
            llama,
            &tokens,
            depth,
            args.decode_tokens,
            args.repeat,
        )?);
        eprintln!("bench: decode at depth {depth} done");
    }
    let peer = if args.llamacpp {
        let r = args.repeat.to_string();
        let depths: Vec<String> = args.depths.iter().map(|d| d.to_string()).collect();
        let pp = llamacpp(
            &args,
            &path,
            &[
                "-p".into(),
                args.prompt_tokens.to_string(),
                "-n".into(),
                "0".into(),
                "-fa".into(),
                "0,1".into(),
                "-r".into(),
                r.clone(),
            ],
        )?;
        let tg = llamacpp(
            &args,
            &path,
            &[
                "-p".into(),
                "0".into(),
                "-n".into(),
                args.decode_tokens.to_string(),
                "-d".into(),
                depths.join(","),
                "-fa".into(),
                "0,1".into(),
                "-r".into(),
                r,
            ],
        )?;
        Some([pp, tg].concat())
    } else {
        None
    };
    report(&args, &results, peer.as_deref())
}

fn report(args: &BenchArgs, results: &[Measured], peer: Option<&[Value]>) -> Result<()> {
    println!(
        "| test | anllm min tok/s | anllm median tok/s | llama.cpp best tok/s | anllm / llama.cpp |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (i, m) in results.iter().enumerate() {
        let (p, g, d) = if i == 0 {
            (args.prompt_tokens as u64, 0, 0)
        } else {
            (0, args.decode_tokens as u64, args.depths[i - 1] as u64)
        };
        let best = peer.and_then(|recs| llamacpp_best(recs, p, g, d));
        let (peer_txt, ratio_txt) = match &best {
            Some((ts, setting)) => (
                format!("{ts:.1} ({setting})"),
                format!("{:.2}×", m.median() / ts),
            ),
            None => ("–".into(), "–".into()),
        };
        println!(
            "| {} | {:.1} | {:.1} | {peer_txt} | {ratio_txt} |",
            m.name,
            m.min(),
            m.median()
        );
        rows.push(json!({
            "test": m.name, "samples_tokens_per_s": m.samples, "min": m.min(), "median": m.median(),
            "llamacpp_best_tokens_per_s": best.as_ref().map(|b| b.0),
            "llamacpp_setting": best.as_ref().map(|b| b.1.clone()),
        }));
    }
    if args.common.json {
        println!(
            "{}",
            json!({ "threads": args.common.threads, "results": rows })
        );
    }
    Ok(())
}
