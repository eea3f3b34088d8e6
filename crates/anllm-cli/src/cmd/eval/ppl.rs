//! `anllm eval ppl`: perplexity of a text with a full, masked or anchor-pruned cache.

use anyhow::{Context, Result, bail};

use anllm_eval::ppl::{PplConfig, perplexity};

use super::eval_session;
use super::progress::Progress;
use crate::args::PplArgs;
use crate::config;

/// Runs the subcommand.
pub fn run(mut args: PplArgs) -> Result<()> {
    config::set_threads(args.common.threads)?;
    let path = args
        .text
        .clone()
        .unwrap_or_else(|| config::anllm_home().join("corpus").join("heldout.txt"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading --text {}", path.display()))?;
    let model = config::load(
        &args.common,
        &mut args.session.anchors,
        &mut args.session.anchor_window,
        &mut args.session.mask_rule,
    )?;
    let tok = &model.tokenizer;
    let (mode, anchored, _) = eval_session(&args.session, tok)?;
    let mut tokens = if args.insert_anchors {
        let session = crate::args::SessionArgs {
            anchors: args.session.anchors.clone(),
            insert_anchors: true,
            ..default_session_args()
        };
        config::encode_with_anchors(&session, tok, &text)?.unwrap_or_default()
    } else {
        tok.encode(&text, false)?
    };
    if let Some(max) = args.max_tokens {
        tokens.truncate(max);
    }
    if tokens.len() < 2 {
        bail!("{} has fewer than 2 tokens", path.display());
    }
    let cfg = PplConfig {
        window: args.window,
        stride: args.stride.unwrap_or(args.window),
        mode,
        anchored,
    };
    let windows = anllm_eval::ppl::windows(tokens.len(), cfg.window, cfg.stride.max(1)).len();
    let mut progress = Progress::new("ppl", windows as u64);
    let result = perplexity(&model.llama, &tokens, &cfg, &mut |_, _| progress.inc())?;
    progress.finish();
    let c = result.c_window.ratio_of_sums().unwrap_or(0.0);
    println!(
        "ppl: {:.4}\nnll: {:.5} nats/token\ntokens scored: {} in {} windows of {} (stride {})",
        result.ppl, result.nll, result.tokens, result.windows, cfg.window, cfg.stride
    );
    eprintln!(
        "anllm: mode {:?}, anchors {}: C⇓ at window end {:.1}%, peak KV entries {}, {:.1}s ({:.0} tok/s)",
        mode,
        args.session.flags(),
        100.0 * c,
        result
            .peak_entries
            .map_or("–".to_string(), |p| p.to_string()),
        result.seconds,
        result.tokens as f64 / result.seconds.max(1e-9)
    );
    if args.common.json {
        let json = serde_json::json!({
            "text": path,
            "mode": mode,
            "anchors": args.session.anchors,
            "anchor_window": args.session.window(),
            "window": cfg.window,
            "stride": cfg.stride,
            "result": result,
        });
        println!("{json}");
    }
    Ok(())
}

fn default_session_args() -> crate::args::SessionArgs {
    crate::args::SessionArgs {
        anchors: "none".into(),
        mask_rule: Some(crate::args::MaskRuleArg::Ansan),
        anchor_window: Some(0),
        kv_policy: None,
        kv_budget: None,
        position_mode: crate::args::PositionModeArg::Absolute,
        pin_prompt: false,
        pin: Vec::new(),
        insert_anchors: false,
        chunk_size: 512,
    }
}
