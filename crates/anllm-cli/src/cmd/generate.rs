//! `anllm generate`: stream text to stdout, statistics to stderr. Several `--prompt`s are the
//! turns of one conversation on one session: each turn prefills only its own tokens.

use std::io::Write;
use std::sync::Arc;

use anyhow::Result;

use anllm::chat::{ChatTemplate, Message};
use anllm::generate::{Flow, GenerateRequest, GenerationStats, TokenSink, generate};
use anllm::sample::Sampling;
use anllm::{LoadedModel, Session, TokenId};

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

/// The conversation so far, for the chat template.
struct Conversation {
    messages: Vec<Message>,
}

impl Conversation {
    fn new(args: &GenerateArgs) -> Self {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message {
                role: "system".into(),
                content: system.clone(),
            });
        }
        Self { messages }
    }

    fn push(&mut self, role: &str, content: &str) {
        self.messages.push(Message {
            role: role.into(),
            content: content.into(),
        });
    }
}

/// Builds the prompt ids: chat template when asked, BOS by the model's preference or `--bos`.
fn first_turn_ids(
    model: &LoadedModel,
    args: &GenerateArgs,
    chat: &mut Conversation,
) -> Result<Vec<TokenId>> {
    let tok = &model.tokenizer;
    let prompt = &args.prompt[0];
    let text = if args.chat {
        chat.push("user", prompt);
        ChatTemplate::of(tok)?.render(&chat.messages)?
    } else {
        prompt.clone()
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

/// The tokens of a later turn: with `--chat`, the template's rendering from just after the
/// previous answer's end-of-turn token; else the text itself, continuing the stream.
fn next_turn_ids(
    model: &LoadedModel,
    args: &GenerateArgs,
    session: &mut Session,
    chat: &mut Conversation,
    prompt: &str,
) -> Result<Vec<TokenId>> {
    let tok = &model.tokenizer;
    if !args.chat {
        return match config::encode_with_anchors(&args.session, tok, prompt)? {
            Some(ids) => Ok(ids),
            None => Ok(tok.encode(prompt, false)?),
        };
    }
    chat.push("user", prompt);
    Ok(ChatTemplate::of(tok)?.next_turn(session, &chat.messages)?)
}

fn report(turn: usize, turns: usize, stats: &GenerationStats) {
    let label = match turns {
        1 => String::new(),
        _ => format!("turn {}/{turns}: ", turn + 1),
    };
    eprintln!(
        "{label}prompt tokens: {} (cached: {}) | prefill: {:.1} tok/s | generated: {} | \
         decode: {:.1} tok/s | stop: {:?}",
        stats.prompt_tokens,
        stats.cached_tokens,
        stats.prefill_tokens_per_s(),
        stats.generated_tokens,
        stats.decode_tokens_per_s(),
        stats.stop_reason,
    );
    eprintln!("{label}{}", config::cache_line(&stats.cache));
}

/// Runs the subcommand.
pub fn run(mut args: GenerateArgs) -> Result<()> {
    if let (Some(prompts), Some(out)) = (args.prompts_file.clone(), args.transcripts.clone()) {
        return crate::cmd::transcripts::run(args, &prompts, &out);
    }
    config::set_threads(args.common.threads)?;
    let model = config::load(
        &args.common,
        &mut args.session.anchors,
        &mut args.session.anchor_window,
        &mut args.session.mask_rule,
    )?;
    let mut chat = Conversation::new(&args);
    let first = first_turn_ids(&model, &args, &mut chat)?;
    if first.is_empty() {
        anyhow::bail!("the prompt is empty after tokenization");
    }
    let cfg = config::session_config(&args.session, &model.tokenizer, first.len())?;
    let expected = first.len() + args.prompt.len() * args.max_tokens.min(4096);
    let mut session = Session::new(Arc::clone(&model.llama), cfg, expected)?;
    let sampling = sampling(&args, model.llama.config().vocab_size)?;
    let mut turns = Vec::new();
    for (turn, text) in args.prompt.iter().enumerate() {
        let prompt = match turn {
            0 => first.clone(),
            _ => {
                let ids = next_turn_ids(&model, &args, &mut session, &mut chat, text)?;
                // --pin-prompt keeps every turn's own words, as `serve --pin-prompt` does.
                if args.session.pin_prompt {
                    let start = session.stream_len() as u32;
                    session.pin(start..start + ids.len() as u32);
                }
                ids
            }
        };
        let req = GenerateRequest {
            prompt,
            max_tokens: args.max_tokens,
            sampling: sampling.clone(),
        };
        let mut sink = StdoutSink {
            out: std::io::stdout(),
            text: String::new(),
        };
        let stats = generate(&mut session, &model.tokenizer, &req, &mut sink)?;
        println!();
        report(turn, args.prompt.len(), &stats);
        chat.push("assistant", &sink.text);
        turns.push(serde_json::json!({
            "text": sink.text,
            "stats": stats,
            "prefill_tokens_per_s": stats.prefill_tokens_per_s(),
            "decode_tokens_per_s": stats.decode_tokens_per_s(),
        }));
    }
    if args.common.json {
        let mut json = turns.last().cloned().unwrap_or_default();
        if turns.len() > 1 {
            json["turns"] = serde_json::Value::Array(turns);
        }
        println!("{json}");
    }
    Ok(())
}

/// The sampling flags of `generate`, checked (`vocab`: the model's vocabulary size).
pub fn sampling(args: &GenerateArgs, vocab: usize) -> Result<Sampling> {
    Ok(Sampling {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        logit_bias: args.logits.logit_bias(vocab)?,
        penalties: args.logits.penalties()?,
    })
}
