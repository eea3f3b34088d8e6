//! `anllm score`: summed log-probability of a continuation, tokenized the lm-eval way.

use anyhow::{Result, bail};

use anllm::score::score;

use crate::args::ScoreArgs;
use crate::config;

/// Runs the subcommand.
pub fn run(args: ScoreArgs) -> Result<()> {
    config::set_threads(args.common.threads)?;
    let model = config::load(&args.common)?;
    let tok = &model.tokenizer;
    let mut context = tok.encode(&args.context, false)?;
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
    let result = score(&model.llama, &context, &continuation, args.chunk_size)?;
    if args.common.json {
        let json = serde_json::json!({
            "context_ids": context,
            "continuation_ids": continuation,
            "logprob": result.logprob,
            "tokens": result.tokens,
            "is_greedy": result.is_greedy,
            "token_logprobs": result.token_logprobs,
        });
        println!("{json}");
    } else {
        println!(
            "logprob: {:.5}\ntokens: {}\nis_greedy: {}",
            result.logprob, result.tokens, result.is_greedy
        );
    }
    Ok(())
}
