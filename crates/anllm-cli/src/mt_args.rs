//! Flags of `anllm eval mt`.

use std::path::PathBuf;

use clap::Args;

use crate::args::{CommonArgs, MaskRuleArg, PositionModeArg};

/// `anllm eval mt`: the paper's Table 2 (translation with anchors and a pinned source).
#[derive(Debug, Args)]
pub struct MtArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Source language code.
    #[arg(long, default_value = "de")]
    pub src: String,
    /// Target language code.
    #[arg(long, default_value = "en")]
    pub tgt: String,
    /// Pairs: a Ding dictionary file (split into the fixed test / training sets), or a .tsv
    /// (source<TAB>reference) or .jsonl file of the user's, used whole [default: the fetched
    /// Ding file, $ANLLM_HOME/mt/de-en].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which part of a Ding file to translate.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Anchor tokens: none, ep, ep-sentence, ac or ids:<id>,… (ac also switches to the
    /// authors' AC prompt, with <AC> after each sentence of the source).
    #[arg(long, default_value = "none")]
    pub anchors: String,
    /// Keep the source sentence's entries in the cache, visible to every later token (the
    /// paper's "Src Cach").
    #[arg(long)]
    pub pin_source: bool,
    /// Visibility rule when anchors are on.
    #[arg(long, value_enum, default_value_t = MaskRuleArg::Ansan)]
    pub mask_rule: MaskRuleArg,
    /// AnSAN's local window of the anchored runs (our extension, not the paper's; 0: the
    /// paper's rule).
    #[arg(long, default_value_t = 0, value_name = "W")]
    pub anchor_window: u32,
    /// RoPE positions of new tokens.
    #[arg(long, value_enum, default_value_t = PositionModeArg::Absolute)]
    pub position_mode: PositionModeArg,
    /// Prompt tokens per forward step (the cache is pruned after each).
    #[arg(long, default_value_t = 512)]
    pub chunk_size: usize,
    /// Demonstrations before each item, drawn (seeded) from the training pairs.
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// Translate only the first N pairs.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Most tokens generated per sentence (the answer also ends at its first line's end or EOS).
    #[arg(long, default_value_t = 200)]
    pub max_tokens: usize,
    /// Sampling temperature (0 = greedy, the default).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Top-k sampling (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub sampling_seed: u64,
    /// The authors' sampling settings: temperature 0.1, top-p 0.95, top-k 40 (overrides the
    /// three flags above).
    #[arg(long)]
    pub authors_sampling: bool,
    /// Logit bias and repetition penalties (as `generate`'s; the window includes the prompt).
    #[command(flatten)]
    pub logits: crate::logit_args::LogitArgs,
    /// Seed of the test / training split of a Ding file and of the demonstrations.
    #[arg(long, default_value_t = 34)]
    pub seed: u64,
    /// Pairs in the test set of a Ding file.
    #[arg(long, default_value_t = 500)]
    pub test_size: usize,
    /// Time the first N items again with a full cache, for T⇑ (0: off) [default: all].
    #[arg(long)]
    pub speedup_items: Option<usize>,
    /// Write the summary and one record per pair to this JSON file.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Write the training pairs of the Ding file (all pairs of a .tsv/.jsonl file) as Alpaca
    /// JSONL for `anllm train`, with this command's instruction, and exit without translating.
    #[arg(long, value_name = "FILE.jsonl")]
    pub write_alpaca: Option<PathBuf>,
}

/// Part of a Ding file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    /// The fixed test set.
    Test,
    /// Everything else, disjoint from the test set.
    Train,
}
