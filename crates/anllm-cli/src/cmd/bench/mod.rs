//! `anllm bench`: prefill tok/s at N prompt tokens and decode tok/s at several KV depths, with
//! min/median over repetitions, for the full cache and (with `--anchors`) the anchor-pruned
//! cache, optionally beside llama.cpp's llama-bench and NVIDIA kvpress in the same run.

mod bandwidth;
mod peers;
mod report;

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use anllm::{
    AnchorSet, AnchorSpec, KeepWarm, Llama, LoadedModel, OutputRows, Session, SessionConfig,
    TokenId,
};

use crate::args::BenchArgs;
use crate::config;
use report::Measured;

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

/// The benchmark tokens: the prompt file's text (BOS by the model's preference) or
/// pseudo-random ids.
fn tokens(args: &BenchArgs, model: &LoadedModel, need: usize) -> Result<Vec<TokenId>> {
    let Some(path) = &args.prompt_file else {
        return Ok(bench_tokens(need, model.llama.config().vocab_size));
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --prompt-file {}", path.display()))?;
    let tok = &model.tokenizer;
    let mut ids = tok.encode(&text, false)?;
    if tok.add_bos()
        && let Some(bos) = tok.specials().bos
    {
        ids.insert(0, bos);
    }
    if ids.len() < need {
        bail!(
            "--prompt-file {} has {} tokens; the depths and decode tokens need {need}",
            path.display(),
            ids.len()
        );
    }
    Ok(ids)
}

/// The sessions to compare: the full cache, plus the anchored one when `--anchors` is set.
fn sessions(args: &BenchArgs, model: &LoadedModel) -> Result<Vec<(String, SessionConfig)>> {
    let spec: AnchorSpec = args.anchors.parse()?;
    // One stream owns the machine: keep the pool's workers awake through decode steps.
    let full = SessionConfig::causal(512).with_keep_warm(KeepWarm::Spin);
    let mut out = vec![("anllm full".to_string(), full)];
    if spec != AnchorSpec::None {
        let anchors = AnchorSet::from_spec(&spec, &model.tokenizer)?;
        let cfg = SessionConfig::anchored(anchors, args.chunk_size)
            .with_rule(config::mask_rule(
                args.mask_rule.unwrap_or_default(),
                args.anchor_window.unwrap_or(0),
            )?)
            .with_keep_warm(KeepWarm::Spin);
        out.push(("anllm anchor".to_string(), cfg));
    }
    Ok(out)
}

fn time_prefill(
    model: &Arc<Llama>,
    cfg: &SessionConfig,
    tokens: &[TokenId],
    repeat: usize,
) -> Result<Vec<f64>> {
    let mut samples = Vec::new();
    for _ in 0..repeat {
        let mut session = Session::new(Arc::clone(model), cfg.clone(), tokens.len())?;
        let start = Instant::now();
        session.prefill(tokens, tokens.len() - 1)?;
        samples.push(tokens.len() as f64 / start.elapsed().as_secs_f64());
    }
    Ok(samples)
}

/// Decode `n` tokens (teacher-forced, one step each) after `depth` prefilled ones; the prefill
/// is done once and each repetition continues from a copy of its cache, the last one from the
/// cache itself (so a single repetition holds one cache, as llama-bench does).
fn time_decode(
    model: &Arc<Llama>,
    cfg: &SessionConfig,
    tokens: &[TokenId],
    (depth, n): (usize, usize),
    repeat: usize,
) -> Result<(Vec<f64>, anllm::CacheStats)> {
    let mut base = Session::new(Arc::clone(model), cfg.clone(), depth + n)?;
    if depth > 0 {
        base.prefill(&tokens[..depth], depth - 1)?;
    }
    let mut samples = Vec::new();
    let mut stats = base.stats();
    let mut base = Some(base);
    for rep in 0..repeat {
        let mut session = match (rep + 1 == repeat, &base) {
            (false, Some(b)) => b.fork()?,
            _ => base
                .take()
                .context("bench: the prefilled session (internal)")?,
        };
        let start = Instant::now();
        for &token in &tokens[depth..depth + n] {
            session.forward(std::slice::from_ref(&token), OutputRows::Last)?;
        }
        samples.push(n as f64 / start.elapsed().as_secs_f64());
        stats = session.stats();
    }
    Ok((samples, stats))
}

/// Runs the subcommand.
pub fn run(mut args: BenchArgs) -> Result<()> {
    config::set_threads(args.common.threads)?;
    let path = config::resolve_model(&args.common)?;
    let model = config::load(
        &args.common,
        &mut args.anchors,
        &mut args.anchor_window,
        &mut args.mask_rule,
    )?;
    let llama = &model.llama;
    if args.prompt_tokens == 0 || args.repeat == 0 || args.decode_tokens == 0 {
        bail!("--prompt-tokens, --decode-tokens and --repeat must be positive");
    }
    if args.chunk_size == 0 {
        bail!("--chunk-size must be at least 1");
    }
    let max_depth = args.depths.iter().copied().max().unwrap_or(0);
    let need = args.prompt_tokens.max(max_depth + args.decode_tokens);
    anllm::generate::check_context(llama, 0, need)?;
    let tokens = tokens(&args, &model, need)?;
    let sessions = sessions(&args, &model)?;
    eprintln!(
        "bench: {} ({}, {} KV), anchors {}, threads {:?}, {} tokens from {}",
        path.display(),
        model.info.compute,
        llama.kv_dtype().name(),
        config::anchor_flags(
            &args.anchors,
            args.anchor_window.unwrap_or(0),
            args.mask_rule.unwrap_or_default()
        ),
        args.common.threads,
        tokens.len(),
        args.prompt_file
            .as_ref()
            .map_or("pseudo-random ids".into(), |p| p.display().to_string()),
    );
    let mut rows = Vec::new();
    for (name, cfg) in &sessions {
        let pp = &tokens[..args.prompt_tokens];
        let samples = time_prefill(llama, cfg, pp, args.repeat)?;
        rows.push(Measured::new(
            format!("pp{}", pp.len()),
            name.clone(),
            samples,
        ));
        eprintln!("bench: {name} pp{} done", pp.len());
    }
    for &depth in &args.depths {
        for (name, cfg) in &sessions {
            let test = (depth, args.decode_tokens);
            let (samples, stats) = time_decode(llama, cfg, &tokens, test, args.repeat)?;
            let mut m = Measured::new(
                format!("tg{} @ d{depth}", args.decode_tokens),
                name.clone(),
                samples,
            );
            m.cache = Some(stats);
            rows.push(m);
            eprintln!("bench: {name} decode at depth {depth} done");
        }
    }
    if args.llamacpp {
        rows.extend(run_llamacpp(&args, &path)?);
    }
    if args.kvpress {
        let file = args
            .prompt_file
            .as_ref()
            .context("--kvpress needs --prompt-file (the same text for both runtimes)")?;
        rows.extend(peers::kvpress_rows(&peers::kvpress(&args, file)?));
    }
    let bandwidth = args
        .bandwidth
        .then(|| bandwidth::Bandwidth::measure(llama.decode_weight_bytes()));
    report::print(
        &rows,
        args.common.threads,
        args.common.json,
        bandwidth.as_ref(),
    );
    Ok(())
}

fn run_llamacpp(args: &BenchArgs, model: &std::path::Path) -> Result<Vec<Measured>> {
    let r = args.repeat.to_string();
    let depths: Vec<String> = args.depths.iter().map(|d| d.to_string()).collect();
    // Both flash-attention settings: the ratios are against llama.cpp's best.
    let fa = "0,1";
    let pp = [
        "-p",
        &args.prompt_tokens.to_string(),
        "-n",
        "0",
        "-fa",
        fa,
        "-r",
        &r,
    ]
    .map(String::from);
    let tg = [
        "-p",
        "0",
        "-n",
        &args.decode_tokens.to_string(),
        "-d",
        &depths.join(","),
        "-fa",
        fa,
        "-r",
        &r,
    ]
    .map(String::from);
    let mut records = peers::llamacpp(args, model, &pp)?;
    records.extend(peers::llamacpp(args, model, &tg)?);
    Ok(peers::llamacpp_rows(&records))
}
