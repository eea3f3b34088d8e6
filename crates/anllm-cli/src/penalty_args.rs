//! Repetition-penalty flags of `anllm generate`, named as llama.cpp's.

use anllm::Penalties;
use clap::Args;

/// `--repeat-penalty`, `--repeat-last-n`, `--frequency-penalty`, `--presence-penalty`.
#[derive(Debug, Clone, Args)]
pub struct PenaltyArgs {
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

impl PenaltyArgs {
    /// The library's penalties; a bad value is a clear error.
    pub fn penalties(&self) -> anyhow::Result<Penalties> {
        let last_n = match self.repeat_last_n {
            -1 => usize::MAX,
            n if n < -1 => anyhow::bail!("--repeat-last-n must be -1 (all) or more, got {n}"),
            n => n as usize,
        };
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
