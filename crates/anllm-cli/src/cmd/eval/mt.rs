//! `anllm eval mt`: the paper's Table 2 for one model and setting — translate the test pairs
//! with the authors' prompt, score BLEU and chrF, and measure MaxKV, C⇓ and T⇑.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;

use anllm::sample::Sampling;
use anllm::sentence::SentenceSplitter;
use anllm::{AnchorSet, AnchorSpec, KeepWarm, MaskRule, PolicyConfig, PositionMode, SessionConfig};
use anllm::{LoadedModel, TokenId};
use anllm_eval::mt::data::{Pair, SplitSpec, demonstrations, parse_ding, read_pairs, split};
use anllm_eval::mt::prompt::{self, Style};
use anllm_eval::mt::run::{Item, MtConfig, Summary, run};

use super::progress::Progress;
use super::qa::write_json;
use crate::args::PositionModeArg;
use crate::config;
use crate::mt_args::{MtArgs, SplitArg};

/// Runs the subcommand.
pub fn run_mt(args: MtArgs) -> Result<()> {
    let (scored, pool) = load_pairs(&args)?;
    let instruction = prompt::instruction(&args.src, &args.tgt)?;
    if let Some(path) = &args.write_alpaca {
        return write_alpaca(path, &pool, &instruction);
    }
    if args.pin_source && args.anchors == "none" {
        bail!("--pin-source keeps the source while anchors prune the rest: pass --anchors too");
    }
    if args.shots > 0 && pool.is_empty() {
        bail!("--shots needs demonstrations: they come from the training pairs of a Ding file");
    }
    config::set_threads(args.common.threads)?;
    let model = config::load_with(
        &args.common,
        &args.anchors,
        args.anchor_window,
        args.mask_rule,
    )?;
    let (session, spec) = session_config(&args, &model)?;
    let splitter = match spec {
        AnchorSpec::Ac => Some(
            anllm::sentence::load_english(&config::anllm_home())
                .context("loading the Punkt English parameters (run scripts/fetch-assets.sh)")?,
        ),
        _ => None,
    };
    let n = args.limit.map_or(scored.len(), |l| l.min(scored.len()));
    let items = build_items(
        &args,
        &model,
        &scored[..n],
        &pool,
        &instruction,
        splitter.as_ref(),
    )?;
    let cfg = MtConfig {
        session,
        pin_source: args.pin_source,
        max_tokens: args.max_tokens,
        sampling: sampling(&args, model.llama.config().vocab_size)?,
    };
    let speedup = match spec {
        AnchorSpec::None => 0,
        _ => args.speedup_items.unwrap_or(usize::MAX),
    };
    let mut progress = Progress::new("translating", items.len() as u64);
    let (summary, records) = run(
        &model.llama,
        &model.tokenizer,
        &items,
        &cfg,
        speedup,
        &mut || progress.inc(),
    )?;
    progress.finish();
    println!("{}", table(&args, &model, &summary));
    let summary = json!({
        "model": model.info.path,
        "dtype": format!("{:?}", args.common.dtype).to_lowercase(),
        "src": args.src, "tgt": args.tgt,
        "data": data_path(&args), "split": format!("{:?}", args.split).to_lowercase(),
        "anchors": args.anchors, "pin_source": args.pin_source, "shots": args.shots,
        "mask_rule": cfg.session.rule, "position_mode": cfg.session.positions,
        "sampling": {
            "temperature": cfg.sampling.temperature, "top_p": cfg.sampling.top_p,
            "top_k": cfg.sampling.top_k, "seed": cfg.sampling.seed,
            "repeat_penalty": cfg.sampling.penalties.repeat,
            "repeat_last_n": args.logits.repeat_last_n,
            "frequency_penalty": cfg.sampling.penalties.frequency,
            "presence_penalty": cfg.sampling.penalties.presence,
            "logit_bias": cfg.sampling.logit_bias,
        },
        "max_tokens": args.max_tokens,
        "scores": summary,
        "bleu": summary.bleu, "chrf": summary.chrf, "max_kv": summary.max_kv,
        "c_reduction": summary.c_reduction, "t_speedup": summary.t_speedup,
        "items": summary.items,
    });
    if let Some(path) = &args.output {
        write_json(path, &json!({ "summary": summary, "records": records }))?;
        eprintln!(
            "anllm: wrote {} records to {}",
            records.len(),
            path.display()
        );
    }
    if args.common.json {
        println!("{summary}");
    }
    Ok(())
}

fn data_path(args: &MtArgs) -> PathBuf {
    args.data
        .clone()
        .unwrap_or_else(|| config::anllm_home().join("mt").join("de-en"))
}

/// The scored pairs and the demonstration / training pool.
fn load_pairs(args: &MtArgs) -> Result<(Vec<Pair>, Vec<Pair>)> {
    let path = data_path(args);
    let user_file = path
        .extension()
        .is_some_and(|e| e == "tsv" || e == "jsonl" || e == "json");
    if user_file {
        let pairs = read_pairs(&path, &args.src, &args.tgt)?;
        return Ok((
            pairs.clone(),
            if args.write_alpaca.is_some() {
                pairs
            } else {
                Vec::new()
            },
        ));
    }
    let content = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the Ding dictionary {} (run scripts/fetch-assets.sh, or pass --data)",
            path.display()
        )
    })?;
    let swap = match (args.src.as_str(), args.tgt.as_str()) {
        ("de", "en") => false,
        ("en", "de") => true,
        (s, t) => bail!("a Ding file holds German–English pairs, not {s}→{t}"),
    };
    let mut pairs = parse_ding(&content);
    if pairs.is_empty() {
        bail!(
            "{} holds no sentence pairs: is it a Ding dictionary file?",
            path.display()
        );
    }
    if swap {
        pairs = pairs.into_iter().map(Pair::swapped).collect();
    }
    let spec = SplitSpec {
        seed: args.seed,
        test_size: args.test_size,
        ..SplitSpec::default()
    };
    let parts = split(&pairs, spec);
    Ok(match args.split {
        SplitArg::Test => (parts.test, parts.train),
        SplitArg::Train => (parts.train.clone(), parts.train),
    })
}

fn session_config(args: &MtArgs, model: &LoadedModel) -> Result<(SessionConfig, AnchorSpec)> {
    if args.chunk_size == 0 {
        bail!("--chunk-size must be at least 1");
    }
    let spec: AnchorSpec = args.anchors.parse()?;
    let anchors = AnchorSet::from_spec(&spec, &model.tokenizer)?;
    let rule = match spec {
        AnchorSpec::None => MaskRule::Causal,
        _ => crate::config::mask_rule(args.mask_rule, args.anchor_window)?,
    };
    let cfg = SessionConfig {
        anchors,
        rule,
        policy: match spec {
            AnchorSpec::None => PolicyConfig::Full,
            _ => PolicyConfig::Anchor,
        },
        positions: match args.position_mode {
            PositionModeArg::Absolute => PositionMode::Absolute,
            PositionModeArg::Compressed => PositionMode::Compressed,
        },
        pins: Vec::new(),
        chunk_size: args.chunk_size,
        keep_warm: KeepWarm::Spin,
    };
    Ok((cfg, spec))
}

/// The sampling flags, checked (`vocab`: the model's vocabulary size).
fn sampling(args: &MtArgs, vocab: usize) -> Result<Sampling> {
    let (temperature, top_p, top_k) = match args.authors_sampling {
        true => (0.1, 0.95, 40),
        false => (args.temperature, args.top_p, args.top_k),
    };
    Ok(Sampling {
        temperature,
        top_p,
        top_k,
        seed: args.sampling_seed,
        logit_bias: args.logits.logit_bias(vocab)?,
        penalties: args.logits.penalties()?,
    })
}

fn build_items(
    args: &MtArgs,
    model: &LoadedModel,
    pairs: &[Pair],
    pool: &[Pair],
    instruction: &str,
    splitter: Option<&SentenceSplitter>,
) -> Result<Vec<Item>> {
    let tok = &model.tokenizer;
    let style = splitter.map_or(Style::Plain, Style::Ac);
    let bos: Option<TokenId> = tok.add_bos().then(|| tok.specials().bos).flatten();
    pairs
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            let shots = demonstrations(pool, args.shots, args.seed, i, pair);
            let p = prompt::render(instruction, &pair.source, style, &shots);
            let (mut ids, mut span) = prompt::encode(tok, &p, splitter.is_some())
                .with_context(|| format!("encoding the prompt of pair {}", i + 1))?;
            if let Some(bos) = bos {
                ids.insert(0, bos);
                span = span.start + 1..span.end + 1;
            }
            Ok(Item {
                pair: pair.clone(),
                prompt: p.text,
                ids,
                source_tokens: span,
            })
        })
        .collect()
}

/// The Table-2-shaped row of this run.
fn table(args: &MtArgs, model: &LoadedModel, s: &Summary) -> String {
    let name = model.info.path.file_name().map_or_else(
        || model.info.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let speed = s.t_speedup.map_or("—".to_string(), |t| format!("{t:.2}×"));
    format!(
        "| model | anchors | Src Cach | items | BLEU | chrF | MaxKV | C⇓ | T⇑ |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|\n\
         | {name} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {:.1}% | {speed} |",
        args.anchors,
        if args.pin_source { "yes" } else { "no" },
        s.items,
        s.bleu,
        s.chrf,
        s.max_kv,
        100.0 * s.c_reduction,
    )
}

/// Alpaca records of `pairs` for `anllm train`.
fn write_alpaca(path: &Path, pairs: &[Pair], instruction: &str) -> Result<()> {
    if pairs.is_empty() {
        bail!("no pairs to write");
    }
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for p in pairs {
        let rec = json!({ "instruction": instruction, "input": p.source, "output": p.reference });
        writeln!(out, "{rec}")?;
    }
    out.flush()?;
    eprintln!(
        "anllm: wrote {} Alpaca records to {}",
        pairs.len(),
        path.display()
    );
    Ok(())
}
