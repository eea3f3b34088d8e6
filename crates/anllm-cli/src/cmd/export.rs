//! `anllm export`: a model as a llama.cpp GGUF ([`anllm_train::export`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use anllm_train::export::{ExportType, export_gguf};

use crate::args::CommonArgs;
use crate::config;

/// Storage type of the exported matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportTypeArg {
    /// Half precision.
    F16,
    /// llama.cpp Q8_0 (8 bits per weight plus a scale per 32).
    #[value(name = "q8_0")]
    Q8_0,
    /// llama.cpp Q4_1 (4 bits per weight plus a scale and a minimum per 32).
    #[value(name = "q4_1")]
    Q4_1,
}

/// `anllm export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Model to export: a Hugging Face directory (e.g. a `train` checkpoint) or a GGUF
    /// [default: the fetched SmolLM2-135M-Instruct].
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// The GGUF to write.
    #[arg(long)]
    pub to: PathBuf,
    /// Storage type of the matrices (norms stay f32).
    #[arg(long = "type", value_enum, default_value_t = ExportTypeArg::Q8_0)]
    pub ty: ExportTypeArg,
    /// A GGUF with the model's vocabulary, whose `tokenizer.*` metadata is copied [default:
    /// the model itself when it is a GGUF, else the fetched SmolLM2 GGUF].
    #[arg(long)]
    pub vocab_from: Option<PathBuf>,
    /// Record W as the window the exported model runs with by default (`--anchors auto`), with
    /// the preset and rule it was trained with: a model trained at one window can read best at
    /// a wider one (docs/anllm-ep-135m.md, "Train narrow, read wide"). `inspect` shows it.
    /// Without it, a default the source records is kept.
    #[arg(long, value_name = "W")]
    pub default_anchor_window: Option<u32>,
    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs the export.
pub fn run(args: ExportArgs) -> Result<()> {
    config::set_threads(args.threads)?;
    let common = CommonArgs {
        model: args.model.clone(),
        dtype: crate::args::DtypeArg::F32,
        kv_dtype: None,
        threads: None,
        json: false,
    };
    let source = config::resolve_model(&common)?;
    let vocab_from = match (&args.vocab_from, source.is_dir()) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(config::resolve_model(&CommonArgs {
            model: None,
            ..common
        })?),
        (None, false) => None,
    };
    let ty = match args.ty {
        ExportTypeArg::F16 => ExportType::F16,
        ExportTypeArg::Q8_0 => ExportType::Q8_0,
        ExportTypeArg::Q4_1 => ExportType::Q4_1,
    };
    let (trained, recorded_default) = anllm::loader::recorded_anchors_of(&source)
        .with_context(|| format!("exporting {} to {}", source.display(), args.to.display()))?;
    let default_anchors = match args.default_anchor_window {
        Some(w) => Some(default_anchors(&source, trained.as_deref(), w)?),
        None => recorded_default,
    };
    let summary = export_gguf(
        &source,
        vocab_from.as_deref(),
        &args.to,
        ty,
        default_anchors.as_deref(),
    )
    .with_context(|| format!("exporting {} to {}", source.display(), args.to.display()))?;
    eprintln!(
        "anllm: wrote {} ({} tensors, {:.1} MB, {ty:?}; tokenizer from {})",
        args.to.display(),
        summary.tensors,
        summary.bytes as f64 / 1e6,
        summary.vocab_from.display()
    );
    if let Some(flags) = default_anchors {
        eprintln!("anllm: it runs with --anchors {flags} by default");
    }
    Ok(())
}

/// The anchor flags `--default-anchor-window w` records: the trained preset and rule of
/// `source` (`trained`, as it records them) with the window `w`.
fn default_anchors(source: &Path, trained: Option<&str>, w: u32) -> Result<String> {
    let trained = trained.with_context(|| {
        format!(
            "--default-anchor-window: {} records no anchors it was trained with (a model `anllm train` made does)",
            source.display()
        )
    })?;
    let (preset, _, rule) = config::split_anchor_flags(trained).with_context(|| {
        format!("--default-anchor-window: this build cannot read the recorded anchors `{trained}`")
    })?;
    Ok(config::anchor_flags(preset, w, rule))
}
