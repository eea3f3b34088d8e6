//! `anllm generate`: stream text to stdout, statistics to stderr.

use std::io::Write;

use anyhow::{Context, Result};

use anllm::chat::{Message, apply_chat_template};
use anllm::generate::{Flow, GenerateRequest, TokenSink, generate};
use anllm::sample::Sampling;
use anllm::{LoadedModel, TokenId};

use crate::args::GenerateArgs;
use crate::config;

struct StdoutSink {
    out: std::io::Stdout,
    text: String,
}

impl TokenSink for StdoutSink {
    fn token(&mut self, _id: TokenId, text: &str) -> anllm::Result<Flow> {
        self.text.push_str(text);
        let mut lock = self.out.lock();
        lock.write_all(text.as_bytes())
            .and_then(|()| lock.flush())
            .map_err(|e| anllm::Error::io("<stdout>", e))?;
        Ok(Flow::Continue)
    }
}

/// Builds the prompt ids: chat template when asked, BOS by the model's preference or `--bos`.
pub fn prompt_ids(model: &LoadedModel, args: &GenerateArgs) -> Result<Vec<TokenId>> {
    let tok = &model.tokenizer;
    let piece = |id: Option<TokenId>| {
        id.and_then(|i| tok.piece(i))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let text = if args.chat {
        let template = tok
            .chat_template()
            .context("--chat: the model has no chat template in its metadata")?;
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message {
                role: "system".into(),
                content: system.clone(),
            });
        }
        messages.push(Message {
            role: "user".into(),
            content: args.prompt.clone(),
        });
        let (bos, eos) = (piece(tok.specials().bos), piece(tok.specials().eos));
        apply_chat_template(template, &messages, &bos, &eos)?
    } else {
        args.prompt.clone()
    };
    if args.chat && args.session.insert_anchors {
        anyhow::bail!("--insert-anchors cannot be combined with --chat");
    }
    let mut ids = match config::encode_with_anchors(&args.session, tok, &text)? {
        Some(ids) => ids,
        None => tok.encode(&text, args.chat)?,
    };
    let want_bos = args.bos.unwrap_or(tok.add_bos() && !args.chat);
    if want_bos
        && let Some(bos) = tok.specials().bos
        && ids.first() != Some(&bos)
    {
        ids.insert(0, bos);
    }
    Ok(ids)
}

/// Runs the subcommand.
pub fn run(args: GenerateArgs) -> Result<()> {
    config::set_threads(args.common.threads)?;
    let model = config::load(&args.common)?;
    let prompt = prompt_ids(&model, &args)?;
    if prompt.is_empty() {
        anyhow::bail!("the prompt is empty after tokenization");
    }
    let req = GenerateRequest {
        max_tokens: args.max_tokens,
        sampling: Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
        session: config::session_config(&args.session, &model.tokenizer, prompt.len())?,
        prompt,
    };
    let mut sink = StdoutSink {
        out: std::io::stdout(),
        text: String::new(),
    };
    let stats = generate(&model, &req, &mut sink)?;
    println!();
    let c = &stats.cache;
    eprintln!(
        "prompt tokens: {} | prefill: {:.1} tok/s | generated: {} | decode: {:.1} tok/s | \
         stop: {:?}",
        stats.prompt_tokens,
        stats.prefill_tokens_per_s(),
        stats.generated_tokens,
        stats.decode_tokens_per_s(),
        stats.stop_reason,
    );
    eprintln!("{}", config::cache_line(c));
    if args.common.json {
        let json = serde_json::json!({
            "text": sink.text,
            "stats": stats,
            "prefill_tokens_per_s": stats.prefill_tokens_per_s(),
            "decode_tokens_per_s": stats.decode_tokens_per_s(),
        });
        println!("{json}");
    }
    Ok(())
}
