//! `anllm score`: summed log-probability of a continuation, tokenized the lm-eval way; with
//! `--requests`, many (context, continuation) pairs with one model load.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use anllm::chat::{ChatTemplate, Message};
use anllm::score::{ScoreMode, score};
use anllm::{LoadedModel, Role, TokenId, Tokenizer};

use crate::args::ScoreArgs;
use crate::config;

/// One scoring request: the flags' pair, or one record of `--requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    context: String,
    continuation: String,
    /// The system message (with --chat); a record's overrides `--system`.
    #[serde(default)]
    system: Option<String>,
}

/// Runs the subcommand.
pub fn run(mut args: ScoreArgs) -> Result<()> {
    config::set_threads(args.common.threads)?;
    if args.chat && args.session.insert_anchors {
        bail!("--insert-anchors cannot be combined with --chat");
    }
    let Some(path) = &args.requests else {
        let request = Request {
            context: args.context.clone().context("--context is required")?,
            continuation: args
                .continuation
                .clone()
                .context("--continuation is required")?,
            system: args.system.clone(),
        };
        let model = config::load(
            &args.common,
            &mut args.session.anchors,
            &mut args.session.anchor_window,
            &mut args.session.mask_rule,
        )?;
        let json = score_request(&model, &args, &request)?;
        if args.common.json {
            println!("{json}");
        } else {
            println!(
                "logprob: {:.5}\ntokens: {}\nis_greedy: {}",
                json["logprob"].as_f64().unwrap_or(f64::NAN),
                json["tokens"],
                json["is_greedy"]
            );
        }
        return Ok(());
    };
    let requests = read_requests(path, &args)?;
    let model = config::load(
        &args.common,
        &mut args.session.anchors,
        &mut args.session.anchor_window,
        &mut args.session.mask_rule,
    )?;
    for (at, request) in &requests {
        let json = score_request(&model, &args, request).with_context(|| at.clone())?;
        println!("{json}");
    }
    Ok(())
}

/// Every record of `--requests`, checked before the model loads, each with its `file:line`.
fn read_requests(path: &Path, args: &ScoreArgs) -> Result<Vec<(String, Request)>> {
    let mut requests = Vec::new();
    for (line, text) in read_lines(path)? {
        let at = format!("{}:{line}", path.display());
        let mut request: Request = serde_json::from_str(&text)
            .with_context(|| format!("{at}: not a {{\"context\", \"continuation\"}} record"))?;
        if request.system.is_some() && !args.chat {
            bail!("{at}: \"system\" needs --chat");
        }
        request.system = request.system.or_else(|| args.system.clone());
        requests.push((at, request));
    }
    Ok(requests)
}

/// The non-blank lines of `path` (`-`: stdin), numbered from 1.
fn read_lines(path: &Path) -> Result<Vec<(usize, String)>> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("reading the requests {}", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading the requests {}", path.display()))?;
        if !line.trim().is_empty() {
            lines.push((i + 1, line));
        }
    }
    Ok(lines)
}

/// Scores one request; the result as the JSON object `--json` prints (the cache line goes
/// to stderr).
fn score_request(
    model: &LoadedModel,
    args: &ScoreArgs,
    request: &Request,
) -> Result<serde_json::Value> {
    let tok = &model.tokenizer;
    let mut context = match config::encode_with_anchors(&args.session, tok, &request.context)? {
        Some(ids) => ids,
        None if args.chat => chat_context(tok, request)?,
        None => tok.encode(&request.context, false)?,
    };
    let mut continuation = tok.encode(&request.continuation, false)?;
    if continuation.is_empty() {
        bail!("the continuation is empty after tokenization");
    }
    if args.end_of_turn {
        continuation.push(ChatTemplate::of(tok)?.answer_terminator()?);
    }
    let bos = tok.specials().bos.or(tok.specials().eos);
    // lm-eval scores an empty context after a single prefix token (BOS, else EOS).
    if (args.bos || context.is_empty())
        && let Some(bos) = bos
    {
        context.insert(0, bos);
    }
    let session = config::session_config(&args.session, tok, context.len())?;
    let mode = if args.mask_only {
        ScoreMode::MaskOnly
    } else {
        ScoreMode::Cached
    };
    let result = score(&model.llama, &context, &continuation, &session, mode)?;
    // Which continuation tokens are anchors by the session's preset, each classified after the
    // token before it (the context's last for the first), as the session classifies them.
    let anchors: Vec<usize> = (0..continuation.len())
        .filter(|&i| {
            let prev = if i == 0 {
                context.last()
            } else {
                continuation.get(i - 1)
            };
            session.anchors.classify(prev.copied(), continuation[i]) == Role::Anchor
        })
        .collect();
    if !args.common.json && args.requests.is_none() {
        eprintln!("{}", config::cache_line(&result.cache));
    }
    Ok(serde_json::json!({
        "context_ids": context,
        "continuation_ids": continuation,
        "logprob": result.logprob,
        "tokens": result.tokens,
        "is_greedy": result.is_greedy,
        "token_logprobs": result.token_logprobs,
        "continuation_anchors": anchors,
        "mode": mode,
        "anchors": args.session.anchors,
        "rule": session.rule,
        "kv_policy": session.policy,
        "position_mode": session.positions,
        "cache": result.cache,
    }))
}

/// The context as a user message (after the system message, if any) in the model's chat
/// template, ending with the assistant's generation prompt; special tokens as ids.
fn chat_context(tok: &Tokenizer, request: &Request) -> Result<Vec<TokenId>> {
    let message = |role: &str, content: &str| Message {
        role: role.into(),
        content: content.into(),
    };
    let mut messages: Vec<Message> = request
        .system
        .iter()
        .map(|s| message("system", s))
        .collect();
    messages.push(message("user", &request.context));
    let text = ChatTemplate::of(tok)?.render(&messages)?;
    Ok(tok.encode(&text, true)?)
}
