//! `anllm export`: a checkpoint (a training run's Hugging Face directory, or any model anllm
//! loads) written as a llama.cpp GGUF: llama architecture, the tokenizer's `tokenizer.*`
//! metadata, Q/K rows permuted for llama.cpp's interleaved RoPE, matrices as F16, Q8_0 or
//! Q4_1 (norms stay F32), quantized by candle's `QTensor::quantize` and written by its
//! `gguf_file::write`.
//!
//! The tokenizer metadata is copied from a GGUF whose vocabulary is the checkpoint's (every
//! piece equal): the source itself when it is a GGUF, else `vocab_from` (for a run trained
//! from SmolLM2, its GGUF). Writing a tokenizer from `tokenizer.json` alone is not supported.

use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};

use crate::model::params::rope_heads;
use crate::setup::open_checkpoint;
use anllm::config::LlamaConfig;
use anllm::tokenizer::Tokenizer;
use anllm::weights::{gguf_name, permute_for_interleaved_rope};
use anllm::{Error, Result};

/// The storage type of the exported matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportType {
    /// IEEE half precision.
    F16,
    /// 8-bit blocks of 32 with one f16 scale (llama.cpp `Q8_0`).
    Q8_0,
    /// 4-bit blocks of 32 with an f16 scale and minimum (llama.cpp `Q4_1`).
    Q4_1,
}

impl ExportType {
    fn ggml(self) -> GgmlDType {
        match self {
            Self::F16 => GgmlDType::F16,
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4_1 => GgmlDType::Q4_1,
        }
    }

    /// llama.cpp's `general.file_type` (`LLAMA_FTYPE_MOSTLY_*`).
    fn file_type(self) -> u32 {
        match self {
            Self::F16 => 1,
            Self::Q4_1 => 3,
            Self::Q8_0 => 7,
        }
    }
}

/// What [`export_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of the file.
    pub bytes: u64,
    /// Where the tokenizer metadata came from.
    pub vocab_from: PathBuf,
}

/// Writes the model at `source` to `out` as a GGUF of `ty`, the tokenizer metadata copied from
/// `source` (a GGUF) or from `vocab_from`; `default_anchors`, when given, is recorded as the
/// anchor flags the model runs with by default (`anllm.anchors.default`).
pub fn export_gguf(
    source: &Path,
    vocab_from: Option<&Path>,
    out: &Path,
    ty: ExportType,
    default_anchors: Option<&str>,
) -> Result<ExportSummary> {
    let start = open_checkpoint(source, &Device::Cpu)?;
    let vocab_path = match vocab_from {
        Some(p) => p.to_path_buf(),
        None if source.is_file() => source.to_path_buf(),
        None => {
            return Err(Error::config(
                "vocab-from",
                "a Hugging Face directory needs --vocab-from GGUF: a GGUF with the same vocabulary",
            ));
        }
    };
    let vocab = vocab_metadata(&vocab_path, &start.tokenizer)?;
    let cfg = start.model.config();
    let mut tensors = Vec::new();
    for (name, t) in start.model.tensors() {
        let t = match rope_heads(&name, cfg) {
            Some(heads) => permute_for_interleaved_rope(&t, heads)?,
            None => t,
        };
        let dtype = if t.rank() == 1 {
            GgmlDType::F32
        } else {
            ty.ggml()
        };
        let q = QTensor::quantize(&t, dtype)
            .map_err(|e| Error::unsupported(format!("{name} {:?} as {dtype:?}: {e}", t.dims())))?;
        tensors.push((gguf_name(&name), q));
    }
    let mut metadata = model_metadata(cfg, ty, source);
    if let Some(anchors) = &start.trained_anchors {
        let value = gguf_file::Value::String(anchors.clone());
        metadata.push((anllm::weights::ANCHORS_GGUF_KEY.into(), value));
    }
    if let Some(anchors) = default_anchors {
        let value = gguf_file::Value::String(anchors.to_string());
        metadata.push((anllm::weights::DEFAULT_ANCHORS_GGUF_KEY.into(), value));
    }
    metadata.extend(vocab);
    write_file(out, &metadata, &tensors)?;
    let bytes = std::fs::metadata(out).map_err(|e| Error::io(out, e))?.len();
    Ok(ExportSummary {
        tensors: tensors.len(),
        bytes,
        vocab_from: vocab_path,
    })
}

type Metadata = Vec<(String, gguf_file::Value)>;

fn model_metadata(cfg: &LlamaConfig, ty: ExportType, source: &Path) -> Metadata {
    let u32v = |n: usize| gguf_file::Value::U32(n as u32);
    let name = source
        .file_stem()
        .map_or("anllm".into(), |s| s.to_string_lossy().into_owned());
    vec![
        (
            "general.architecture",
            gguf_file::Value::String("llama".into()),
        ),
        ("general.name", gguf_file::Value::String(name)),
        ("general.file_type", gguf_file::Value::U32(ty.file_type())),
        ("general.quantization_version", u32v(2)),
        ("llama.vocab_size", u32v(cfg.vocab_size)),
        ("llama.context_length", u32v(cfg.max_position_embeddings)),
        ("llama.embedding_length", u32v(cfg.hidden_size)),
        ("llama.block_count", u32v(cfg.num_hidden_layers)),
        ("llama.feed_forward_length", u32v(cfg.intermediate_size)),
        ("llama.attention.head_count", u32v(cfg.num_attention_heads)),
        ("llama.attention.head_count_kv", u32v(cfg.kv_heads())),
        ("llama.rope.dimension_count", u32v(cfg.head_dim())),
        (
            "llama.attention.layer_norm_rms_epsilon",
            gguf_file::Value::F32(cfg.rms_norm_eps as f32),
        ),
        (
            "llama.rope.freq_base",
            gguf_file::Value::F32(cfg.rope_theta as f32),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The `tokenizer.*` metadata of the GGUF at `path`, after checking that its vocabulary is
/// `tokenizer`'s, piece for piece.
fn vocab_metadata(path: &Path, tokenizer: &Tokenizer) -> Result<Metadata> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = anllm::weights::read_gguf_content(path, &mut file)?;
    let theirs = Tokenizer::from_gguf(&content)?;
    let same = theirs.vocab_size() == tokenizer.vocab_size()
        && (0..tokenizer.vocab_size() as u32).all(|id| theirs.piece(id) == tokenizer.piece(id));
    if !same {
        return Err(Error::config(
            "vocab-from",
            format!(
                "{} has another vocabulary ({} tokens, the model's tokenizer {})",
                path.display(),
                theirs.vocab_size(),
                tokenizer.vocab_size()
            ),
        ));
    }
    let mut out: Metadata = content
        .metadata
        .into_iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes through a temporary file renamed into place, so a failed export leaves no
/// half-written GGUF behind.
fn write_file(out: &Path, metadata: &Metadata, tensors: &[(String, QTensor)]) -> Result<()> {
    let tmp = out.with_extension("gguf.partial");
    let md: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let result = (|| {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
        gguf_file::write(&mut file, &md, &ts)?;
        std::io::Write::flush(&mut file).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
