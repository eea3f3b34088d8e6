//! Where a run starts: any checkpoint the engine loads (dequantized to f32), or random weights
//! from a `config.json` and a tokenizer; then the vocabulary extension (`[PAD]`, `<AC>`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};

use super::model::TrainModel;
use super::vocab::{NewRowInit, extend_model_tensors, extend_tokenizer};
use anllm::config::LlamaConfig;
use anllm::tokenizer::Tokenizer;
use anllm::weights::{
    CheckpointFormat, WeightDtype, WeightSource, detect_format, read_config, read_gguf_content,
};
use anllm::{Error, Result, TokenId};

/// A model to train with its tokenizer, and the tokenizer's Hugging Face files (written into
/// every checkpoint).
#[derive(Debug)]
pub struct RunStart {
    /// The trainable model (f32).
    pub model: TrainModel,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// `tokenizer.json`, `tokenizer_config.json`, … as written into checkpoints.
    pub tokenizer_files: Vec<(String, Vec<u8>)>,
    /// The `--anchors` preset the model records it was trained with, if any.
    pub trained_anchors: Option<String>,
}

/// Opens a GGUF file or a Hugging Face directory for training: every weight in f32 (quantized
/// ones dequantized), the tokenizer exported to Hugging Face form.
pub fn open_checkpoint(path: &Path, device: &Device) -> Result<RunStart> {
    let mut src = match detect_format(path)? {
        CheckpointFormat::Gguf => WeightSource::open_gguf(path, WeightDtype::F32, device)?,
        CheckpointFormat::HfDir => WeightSource::open_hf_dir(path, WeightDtype::F32, device)?,
    };
    let tokenizer = match src.gguf_content() {
        Some(content) => Tokenizer::from_gguf(content)?,
        None => Tokenizer::from_hf_dir(path)?,
    };
    let cfg = read_config(&src)?;
    check_vocab(&tokenizer, &cfg)?;
    let model = TrainModel::from_source(&mut src, &cfg, device)?;
    let tokenizer_files = tokenizer.to_hf_files()?;
    Ok(RunStart {
        model,
        tokenizer,
        tokenizer_files,
        trained_anchors: anllm::weights::recorded_anchors(&src),
    })
}

/// Random weights of the shape in `config` (a Hugging Face `LlamaConfig` JSON file), seeded,
/// with the tokenizer at `tokenizer`: a `tokenizer.json`, a directory holding one, or a GGUF.
pub fn from_scratch(
    config: &Path,
    tokenizer: &Path,
    seed: u64,
    device: &Device,
) -> Result<RunStart> {
    let text = std::fs::read_to_string(config).map_err(|e| Error::io(config, e))?;
    let cfg = LlamaConfig::from_json(&text)?;
    let tokenizer = load_tokenizer(tokenizer)?;
    check_vocab(&tokenizer, &cfg)?;
    let model = TrainModel::init(&cfg, seed, DType::F32, device)?;
    let tokenizer_files = tokenizer.to_hf_files()?;
    Ok(RunStart {
        model,
        tokenizer,
        tokenizer_files,
        trained_anchors: None,
    })
}

/// A tokenizer from a `tokenizer.json` file, a Hugging Face directory or a GGUF file.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    if path.is_dir() {
        return Tokenizer::from_hf_dir(path);
    }
    if path.file_name().is_some_and(|n| n == "tokenizer.json") {
        let dir = path.parent().unwrap_or(Path::new("."));
        return Tokenizer::from_hf_dir(dir);
    }
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = read_gguf_content(path, &mut file).map_err(|e| match e {
        Error::Format { path, reason } => Error::Format {
            path,
            reason: format!("not a tokenizer.json, a directory or a GGUF file: {reason}"),
        },
        other => other,
    })?;
    Tokenizer::from_gguf(&content)
}

/// Adds `pieces` (e.g. `[PAD]`, `<AC>`) that the vocabulary lacks: new tokenizer entries and
/// new embedding (and untied head) rows initialised by `init`. The extended tokenizer files
/// are written to `dir` and the tokenizer reloaded from there. Returns the ids of `pieces`.
pub fn add_tokens(
    start: RunStart,
    pieces: &[&str],
    init: NewRowInit,
    dir: &Path,
) -> Result<(RunStart, Vec<TokenId>)> {
    let missing: Vec<&str> = pieces
        .iter()
        .copied()
        .filter(|p| start.tokenizer.token_id(p).is_none())
        .collect();
    if missing.is_empty() {
        let ids = pieces
            .iter()
            .filter_map(|p| start.tokenizer.token_id(p))
            .collect();
        return Ok((start, ids));
    }
    let RunStart {
        model,
        mut tokenizer_files,
        trained_anchors,
        ..
    } = start;
    extend_tokenizer(&mut tokenizer_files, &missing)?;
    write_files(dir, &tokenizer_files)?;
    let tokenizer = Tokenizer::from_hf_dir(dir)?;
    let mut cfg = model.config().clone();
    let new_vocab = tokenizer.vocab_size().max(cfg.vocab_size);
    let period = match (tokenizer.token_id("."), init) {
        (Some(id), _) => id,
        (None, NewRowInit::Mean) => 0,
        (None, NewRowInit::CopyPeriod) => {
            return Err(Error::config(
                "init-new-rows",
                "copy-period needs a `.` token in the vocabulary; use mean",
            ));
        }
    };
    let device = model.device().clone();
    let mut tensors: HashMap<String, _> = model.tensors().into_iter().collect();
    drop(model);
    extend_model_tensors(&mut tensors, &mut cfg, new_vocab, init, period)?;
    let model = TrainModel::from_tensors(&cfg, tensors, DType::F32, &device)?;
    let ids = pieces
        .iter()
        .filter_map(|p| tokenizer.token_id(p))
        .collect();
    Ok((
        RunStart {
            model,
            tokenizer,
            tokenizer_files,
            trained_anchors,
        },
        ids,
    ))
}

/// Writes `files` into `dir` (created), each atomically.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (name, bytes) in files {
        super::checkpoint::write_atomic(&dir.join(name), bytes)?;
    }
    Ok(())
}

fn check_vocab(tokenizer: &Tokenizer, cfg: &LlamaConfig) -> Result<()> {
    if tokenizer.vocab_size() > cfg.vocab_size {
        return Err(Error::Shape {
            op: "tokenizer vocabulary vs model vocab_size".into(),
            expected: format!("<= {}", cfg.vocab_size),
            got: tokenizer.vocab_size().to_string(),
        });
    }
    Ok(())
}
