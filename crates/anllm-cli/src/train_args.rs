//! Flags of `anllm train`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::args::MaskRuleArg;

/// Which anchors the model is trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrainAnchorsArg {
    /// Full attention (the baseline): causal mask, nothing inserted.
    None,
    /// AnLLM-EP: the period `.` closes a segment; nothing is inserted.
    Ep,
    /// AnLLM-EP, but a `.` right after a digit (list numbers `1.`, decimals `3.14`) does not
    /// close a segment (`--anchors ep-nodigit` at inference).
    EpNodigit,
    /// `ep-nodigit`, and the `.` right after a digit is pinned: a list mark every later token
    /// sees (`--anchors ep-list` at inference; not the paper's rule).
    EpList,
    /// AnLLM-AC: `<AC>` is added to the vocabulary and inserted after every sentence.
    Ac,
}

/// How plain-text files are cut into documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocSplitArg {
    /// One document per blank-line-separated block.
    BlankLine,
    /// The whole file is one document.
    File,
}

/// How documents become rows of one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlockModeArg {
    /// One document per row, cut at the block size (the paper).
    Truncate,
    /// Documents packed into full blocks; attention never crosses a document.
    Pack,
    /// Documents packed whole (no document that fits in a block is cut), blocks padded.
    Fit,
}

/// Learning-rate schedule after the warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// Constant (the authors' continued pre-training).
    Constant,
    /// Cosine decay to `--min-lr-ratio` × lr at the last step (the authors' SFT).
    Cosine,
}

/// Initial value of the new embedding rows (`[PAD]`, `<AC>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NewRowsArg {
    /// A copy of the period's row (the authors' code).
    CopyPeriod,
    /// The mean of all rows (the paper).
    Mean,
}

/// `anllm train`: AnSAN continued pre-training / SFT, or full-attention training.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Model to start from: a GGUF file or a Hugging Face directory (dequantized to f32)
    /// [default: the fetched SmolLM2-135M-Instruct]. Ignored with --init-from-scratch.
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Start from random weights with --config and --tokenizer instead of a checkpoint.
    #[arg(long, requires_all = ["config", "tokenizer"])]
    pub init_from_scratch: bool,
    /// Model shape for --init-from-scratch: a Hugging Face `LlamaConfig` JSON file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Tokenizer for --init-from-scratch: a `tokenizer.json`, a directory holding one, or a GGUF.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Training files: plain text, JSONL with a `text` field, Alpaca JSON/JSONL, or chat JSONL
    /// (`messages`, rendered by the model's chat template; loss on the answers).
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Held-out files for the validation loss (same formats).
    #[arg(long, num_args = 1..)]
    pub eval_data: Vec<PathBuf>,
    /// Anchors of the trained model.
    #[arg(long, value_enum)]
    pub anchors: TrainAnchorsArg,
    /// Visibility rule with anchors.
    #[arg(long, value_enum, default_value_t = MaskRuleArg::Ansan)]
    pub mask_rule: MaskRuleArg,
    /// AnSAN's local window (our extension, not the paper's): a token also sees the tokens
    /// less than W positions before it; recorded in the checkpoint's config.json (0: the
    /// paper's rule).
    #[arg(long, default_value_t = 0, value_name = "W")]
    pub anchor_window: u32,
    /// How plain-text files are cut into documents.
    #[arg(long, value_enum, default_value_t = DocSplitArg::BlankLine)]
    pub doc_split: DocSplitArg,
    /// Most tokens in one row.
    #[arg(long, default_value_t = 256)]
    pub block_size: usize,
    /// Truncate each document to a block, pack documents into full blocks (cutting some), or
    /// fit whole documents into padded blocks.
    #[arg(long, value_enum, default_value_t = BlockModeArg::Pack)]
    pub block_mode: BlockModeArg,
    /// Rows per micro-batch.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 20)]
    pub warmup: u64,
    /// Schedule after the warmup.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Constant)]
    pub schedule: ScheduleArg,
    /// Final lr of the cosine schedule, as a fraction of --lr.
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Optimizer steps to run (total, counting steps before a --resume).
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<u64>,
    /// Epochs over the training data (converted to steps).
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Stop after this many minutes of training steps (then save), whatever --steps says: the
    /// step time the checkpoints record as `elapsed_s`; loading, evaluations and saves do not count.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// End this invocation at step N (then save), keeping the schedule of --steps: a later
    /// --resume without it continues to --steps. Unlike --max-minutes, a busy machine stops at
    /// the same step (the same weights) as a quiet one.
    #[arg(long, value_name = "N")]
    pub stop_at: Option<u64>,
    /// Save a checkpoint every N steps (and always at the end).
    #[arg(long, default_value_t = 100)]
    pub save_every: u64,
    /// Keep only the last K checkpoints.
    #[arg(long)]
    pub keep_last: Option<usize>,
    /// Measure the held-out loss every N steps (0: only at the end).
    #[arg(long, default_value_t = 0)]
    pub eval_every: u64,
    /// Most held-out rows per evaluation.
    #[arg(long, default_value_t = 64)]
    pub eval_rows: usize,
    /// Initial value of new embedding rows.
    #[arg(long, value_enum, default_value_t = NewRowsArg::CopyPeriod)]
    pub init_new_rows: NewRowsArg,
    /// Seed of the initialisation and the data order (the authors': 34).
    #[arg(long, default_value_t = 34)]
    pub seed: u64,
    /// Output directory: checkpoints, `train_log.jsonl`, `loss.png`.
    #[arg(long)]
    pub out: PathBuf,
    /// Distil: train the student to match the frozen starting model (run with full attention
    /// by the inference engine) with a KL loss on its next-token distributions.
    #[arg(long, conflicts_with = "init_from_scratch")]
    pub distill: bool,
    /// With --distill: weight of the KL term; the cross-entropy on the data gets 1 − this.
    #[arg(long, default_value_t = 1.0, requires = "distill")]
    pub distill_alpha: f64,
    /// With --distill: the teacher, a GGUF or Hugging Face directory [default: the starting
    /// model]. For a second stage that starts from a trained checkpoint but keeps distilling
    /// from the original model.
    #[arg(long, requires = "distill")]
    pub teacher: Option<PathBuf>,
    /// Share (0–1) of the chat documents whose prompts are pinned: every later token of the
    /// conversation sees every token but the answers, as `generate --chat --pin-prompt` and
    /// `serve --pin-prompt` keep each turn's prompt KV. A seeded choice per conversation.
    #[arg(long, default_value_t = 0.0)]
    pub pin_prompts: f64,
    /// Loss weight of the chat template's end-of-turn token (SmolLM2's `<|im_end|>`) where it
    /// is a target (the end of each chat answer); every other target weighs 1, and the loss is
    /// their weighted mean. The held-out loss stays unweighted.
    #[arg(long, default_value_t = 1.0)]
    pub end_of_turn_weight: f32,
    /// Continue the run saved in --out (same flags) from its latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Check the flags, the model and the data, print the plan (documents, rows, steps,
    /// epochs, checkpoints and the disk they take) and stop: no step, no file written.
    #[arg(long)]
    pub dry_run: bool,
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to train: `cpu`, or `cuda` / `cuda:N` (a binary built with `--features cuda`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceArg,
}

/// The device flag, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceArg {
    /// The CPU.
    Cpu,
    /// CUDA GPU number N.
    Cuda(usize),
}

fn parse_device(s: &str) -> Result<DeviceArg, String> {
    match s {
        "cpu" => Ok(DeviceArg::Cpu),
        "cuda" => Ok(DeviceArg::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceArg::Cuda)
            .ok_or_else(|| format!("`{s}`: expected cpu, cuda or cuda:N")),
    }
}
