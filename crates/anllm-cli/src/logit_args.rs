//! Logit-bias and repetition-penalty flags of `anllm generate`, named as llama.cpp's.

use anllm::{Penalties, TokenId};
use anyhow::{Context, bail};
use clap::Args;

/// `--logit-bias`, `--repeat-penalty`, `--repeat-last-n`, `--frequency-penalty`,
/// `--presence-penalty`.
#[derive(Debug, Clone, Args)]
pub struct LogitArgs {
    /// Add BIAS to the logit of token ID: ID+BIAS or ID-BIAS (llama.cpp's form) or ID=BIAS;
    /// repeatable; -100 bans a token.
    #[arg(long, value_name = "ID+BIAS", allow_hyphen_values = true)]
    pub logit_bias: Vec<String>,
    /// Divide the positive logit (multiply the negative one) of every token in the penalty
    /// window by this (1.0 = off; llama.cpp's --repeat-penalty, HF's repetition_penalty).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// The penalty window: the stream's last N tokens, prompt included (0 = off, -1 = all).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true)]
    pub repeat_last_n: i64,
    /// Subtract this from a token's logit per occurrence in the window (0.0 = off; OpenAI's
    /// frequency_penalty).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Subtract this once from the logit of every token in the window (0.0 = off; OpenAI's
    /// presence_penalty).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
}

impl LogitArgs {
    /// The `--logit-bias` pairs, each id checked against the vocabulary's `vocab` ids.
    pub fn logit_bias(&self, vocab: usize) -> anyhow::Result<Vec<(TokenId, f32)>> {
        self.logit_bias
            .iter()
            .map(|spec| {
                let cut = spec.find(['+', '-', '=']).with_context(|| {
                    format!("--logit-bias {spec}: expected ID+BIAS, ID-BIAS or ID=BIAS")
                })?;
                let (id, bias) = spec.split_at(cut);
                let id: usize = id
                    .parse()
                    .with_context(|| format!("--logit-bias {spec}: {id:?} is not a token id"))?;
                let bias: f32 = bias
                    .trim_start_matches(['+', '='])
                    .parse()
                    .with_context(|| format!("--logit-bias {spec}: the bias is not a number"))?;
                if id >= vocab || !bias.is_finite() {
                    bail!("--logit-bias {spec}: needs an id below {vocab} and a finite bias");
                }
                Ok((id as TokenId, bias))
            })
            .collect()
    }

    /// The library's penalties; a bad value is a clear error.
    pub fn penalties(&self) -> anyhow::Result<Penalties> {
        let n = self.repeat_last_n;
        let last_n = Penalties::last_n_of(n)
            .with_context(|| format!("--repeat-last-n must be -1 (all) or more, got {n}"))?;
        let p = Penalties {
            repeat: self.repeat_penalty,
            frequency: self.frequency_penalty,
            presence: self.presence_penalty,
            last_n,
        };
        p.validate()?;
        Ok(p)
    }
}
