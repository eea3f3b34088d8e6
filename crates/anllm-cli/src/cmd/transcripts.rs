//! `anllm generate --chat --prompts-file P --transcripts T`: the model answers every prompt
//! of `P` in a fresh conversation, and each conversation is appended to `T` as one JSONL
//! record `{"messages": [system?, user, assistant], "finish_reason": "stop"|"length"}`, the chat
//! format `anllm train` reads (`length`: the answer was cut at `--max-tokens` or the context, so
//! `train` puts no loss on the end-of-turn token the template closes it with).
//! Distillation data made by the teacher itself (issue: AnLLM-EP-135M). Resumable: prompts
//! already in `T` (by count, in file order) are skipped.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use anllm::chat::{ChatTemplate, Message};
use anllm::generate::{Flow, GenerateRequest, StopReason, TokenSink, generate};
use anllm::sample::Sampling;
use anllm::{LoadedModel, Session, TokenId};

use crate::args::GenerateArgs;
use crate::config;

struct TextSink(String);

impl TokenSink for TextSink {
    fn token(&mut self, _id: TokenId, text: &str) -> anllm::Result<Flow> {
        self.0.push_str(text);
        Ok(Flow::Continue)
    }
}

/// The prompts of `path`: one per non-blank line.
fn read_prompts(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the prompts {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.replace("\\n", "\n"))
        .collect())
}

/// How many complete records `path` already holds (0 when it does not exist).
fn done_count(path: &Path) -> Result<usize> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter(|l| !l.trim().is_empty()).count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
    }
}

/// One conversation: the messages with the model's answer, and why the answer ended (OpenAI's
/// `finish_reason`: `stop` at the end of its turn, `length` when cut).
fn answer(
    model: &LoadedModel,
    args: &GenerateArgs,
    sampling: &Sampling,
    prompt: &str,
) -> Result<(Vec<Message>, &'static str)> {
    let mut messages: Vec<Message> = args.system.iter().map(|s| message("system", s)).collect();
    messages.push(message("user", prompt));
    let text = ChatTemplate::of(&model.tokenizer)?.render(&messages)?;
    let ids = model.tokenizer.encode(&text, true)?;
    if ids.is_empty() {
        bail!("prompt `{prompt}` is empty after tokenization");
    }
    let cfg = config::session_config(&args.session, &model.tokenizer, ids.len())?;
    let mut session = Session::new(Arc::clone(&model.llama), cfg, ids.len() + args.max_tokens)?;
    let req = GenerateRequest {
        prompt: ids,
        max_tokens: args.max_tokens,
        sampling: sampling.clone(),
    };
    let mut sink = TextSink(String::new());
    let stats = generate(&mut session, &model.tokenizer, &req, &mut sink)?;
    messages.push(message("assistant", sink.0.trim()));
    let finish = match stats.stop_reason {
        StopReason::Eos | StopReason::Sink => "stop",
        StopReason::Length | StopReason::Context => "length",
    };
    Ok((messages, finish))
}

/// Runs the batch.
pub fn run(mut args: GenerateArgs, prompts: &Path, out: &Path) -> Result<()> {
    config::set_threads(args.common.threads)?;
    let model = config::load(
        &args.common,
        &mut args.session.anchors,
        &mut args.session.anchor_window,
        &mut args.session.mask_rule,
    )?;
    let prompts = read_prompts(prompts)?;
    let done = done_count(out)?;
    if done > prompts.len() {
        bail!(
            "{} holds {done} transcripts but there are only {} prompts",
            out.display(),
            prompts.len()
        );
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("opening {}", out.display()))?;
    let sampling = crate::cmd::generate::sampling(&args, model.llama.config().vocab_size)?;
    let started = Instant::now();
    for (i, prompt) in prompts.iter().enumerate().skip(done) {
        let (messages, finish) = answer(&model, &args, &sampling, prompt)?;
        let record = serde_json::json!({ "messages": messages, "finish_reason": finish });
        let mut line = serde_json::to_string(&record)?;
        line.push('\n');
        // One write per record, so a stopped run leaves whole lines.
        file.write_all(line.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        let n = i + 1 - done;
        if n % 10 == 0 || i + 1 == prompts.len() {
            eprintln!(
                "anllm: {}/{} transcripts ({:.1} s each)",
                i + 1,
                prompts.len(),
                started.elapsed().as_secs_f64() / n as f64
            );
        }
    }
    Ok(())
}
