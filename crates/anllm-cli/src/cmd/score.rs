//! `anllm score`: summed log-probability of a continuation, tokenized the lm-eval way.

use anyhow::{Result, bail};

use anllm::chat::{ChatTemplate, Message};
use anllm::score::{ScoreMode, score};
use anllm::{TokenId, Tokenizer};

use crate::args::ScoreArgs;
use crate::config;

/// Runs the subcommand.
pub fn run(args: ScoreArgs) -> Result<()> {
    config::set_threads(args.common.threads)?;
    let model = config::load(&args.common)?;
    let tok = &model.tokenizer;
    if args.chat && args.session.insert_anchors {
        bail!("--insert-anchors cannot be combined with --chat");
    }
    let mut context = match config::encode_with_anchors(&args.session, tok, &args.context)? {
        Some(ids) => ids,
        None if args.chat => chat_context(tok, &args)?,
        None => tok.encode(&args.context, false)?,
    };
    let continuation = tok.encode(&args.continuation, false)?;
    if continuation.is_empty() {
        bail!("the continuation is empty after tokenization");
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
    if args.common.json {
        let json = serde_json::json!({
            "context_ids": context,
            "continuation_ids": continuation,
            "logprob": result.logprob,
            "tokens": result.tokens,
            "is_greedy": result.is_greedy,
            "token_logprobs": result.token_logprobs,
            "mode": mode,
            "anchors": args.session.anchors,
            "rule": session.rule,
            "kv_policy": session.policy,
            "position_mode": session.positions,
            "cache": result.cache,
        });
        println!("{json}");
    } else {
        println!(
            "logprob: {:.5}\ntokens: {}\nis_greedy: {}",
            result.logprob, result.tokens, result.is_greedy
        );
        eprintln!("{}", config::cache_line(&result.cache));
    }
    Ok(())
}

/// The context as a user message (after the system message, if any) in the model's chat
/// template, ending with the assistant's generation prompt; special tokens as ids.
fn chat_context(tok: &Tokenizer, args: &ScoreArgs) -> Result<Vec<TokenId>> {
    let message = |role: &str, content: &str| Message {
        role: role.into(),
        content: content.into(),
    };
    let mut messages: Vec<Message> = args.system.iter().map(|s| message("system", s)).collect();
    messages.push(message("user", &args.context));
    let text = ChatTemplate::of(tok)?.render(&messages)?;
    Ok(tok.encode(&text, true)?)
}
