//! Flags of `anllm eval kv`.

use std::path::PathBuf;

use clap::Args;

use crate::args::{CommonArgs, MaskRuleArg};

/// `anllm eval kv`: KV policies × budgets on seeded long-context tasks, against the full cache.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Tasks: passkey, multikey, vt, agreement (comma-separated).
    #[arg(long, default_value = "passkey,multikey,vt,agreement")]
    pub tasks: String,
    /// Context lengths in tokens (comma-separated).
    #[arg(long, default_value = "1024,2048,4096")]
    pub lengths: String,
    /// Items per task and length.
    #[arg(long, default_value_t = 20)]
    pub items: usize,
    /// Policies: full, streaming, sepllm, h2o, tova, tova_layer (a set per layer), snapkv,
    /// snapkv_head (a set per layer and KV head), knorm, knorm_head, anchor (comma-separated;
    /// the full cache is always run, as the reference). `NAME+q` (e.g. snapkv+q): query-aware,
    /// the question is compressed with the context (kvpress's SnapKV with the question).
    #[arg(long, default_value = "streaming,sepllm,h2o,tova,snapkv,knorm")]
    pub policies: String,
    /// Budgets as shares of the context kept (comma-separated).
    #[arg(long, default_value = "0.1,0.25,0.5")]
    pub budgets: String,
    /// Most tokens generated after the question.
    #[arg(long, default_value_t = 16)]
    pub max_new_tokens: usize,
    /// Seed of the generated items.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Real text for the agreement task [default: the fetched held-out text,
    /// $ANLLM_HOME/corpus/heldout.txt].
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Anchors of the `anchor` policy, e.g. ep or ep-sentence [default: auto, the anchors the
    /// model records it was trained with (and their window and rule), else ep].
    #[arg(long, default_value = "auto")]
    pub anchors: String,
    /// Visibility rule of the `anchor` policy [default: the rule the model records with these
    /// anchors, else ansan].
    #[arg(long, value_enum)]
    pub mask_rule: Option<MaskRuleArg>,
    /// Local window of the `anchor` policy (our extension, not the paper's; 0: the paper's
    /// rule) [default: the window the model records with these anchors, else 0].
    #[arg(long, value_name = "W")]
    pub anchor_window: Option<u32>,
    /// Separators of `sepllm` (an anchor spec, marked under the causal rule).
    #[arg(long, default_value = "ep-sentence")]
    pub separators: String,
    /// Prompt tokens per step of the `anchor` policy's prefill.
    #[arg(long, default_value_t = 512)]
    pub chunk_size: usize,
    /// Prefill every cell's context in chunks of N tokens under its own policy, evicting after
    /// each chunk (the memory bound holds during the prefill too; one prefill per cell), instead
    /// of kvpress's one-shot compression after a full prefill.
    #[arg(long, value_name = "N")]
    pub chunked: Option<usize>,
    /// Write one JSON record per item and cell to this JSONL file.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Write one PNG per task (score against share of KV kept, a line per policy) as
    /// PREFIX-TASK.png.
    #[arg(long, value_name = "PREFIX")]
    pub plot: Option<PathBuf>,
    /// Write the items as token ids (JSONL, what benches/kvpress.sh eval reads).
    #[arg(long, value_name = "FILE.jsonl")]
    pub export_items: Option<PathBuf>,
    /// Summarize (table, plots, --json) the records of an earlier run, complete or not; run
    /// nothing.
    #[arg(long, value_name = "RECORDS.jsonl", conflicts_with_all = ["output", "export_only"])]
    pub summarize: Option<PathBuf>,
    /// Only generate (and export) the items; run nothing.
    #[arg(long)]
    pub export_only: bool,
}
