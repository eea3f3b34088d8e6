//! Opening a model path: a GGUF file or a Hugging Face directory, weights plus tokenizer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;

use crate::model::Llama;
use crate::tokenizer::Tokenizer;
use crate::weights::{
    CheckpointFormat, WeightDtype, WeightSource, detect_format, read_config, recorded_anchors,
    recorded_default_anchors,
};
use crate::{Error, Result};

/// A model ready to run: the network, its tokenizer, and facts for `inspect`.
#[derive(Debug)]
pub struct LoadedModel {
    /// The network, shared by the sessions that run on it.
    pub llama: Arc<Llama>,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Where it came from and how it is stored.
    pub info: ModelInfo,
}

/// Facts about a loaded model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// The resolved model path.
    pub path: PathBuf,
    /// "gguf" or "hf-dir".
    pub format: &'static str,
    /// Model architecture ("llama").
    pub architecture: String,
    /// Storage type of each kind of weight (`attn_q` → "Q4_1", …), as stored on disk.
    pub storage: Vec<(String, String)>,
    /// How weights are held in memory ("quantized" or "f32").
    pub compute: &'static str,
    /// RoPE pair layout ("half" or "interleaved").
    pub rope_style: &'static str,
    /// The `--anchors` preset the model was trained with, when anllm trained it.
    pub trained_anchors: Option<String>,
    /// The anchor flags the model runs with under `--anchors auto` when it records others than
    /// `trained_anchors` (`anllm export --default-anchor-window`).
    pub default_anchors: Option<String>,
}

impl ModelInfo {
    /// Whether weights are held quantized in memory (a GGUF with quantized tensors, loaded
    /// without dequantizing).
    pub fn is_quantized(&self) -> bool {
        self.compute.starts_with("quantized")
            && (self.storage.iter()).any(|(_, t)| !matches!(t.as_str(), "F32" | "F16" | "BF16"))
    }
}

/// The anchor flags the model at `path` records, read from its GGUF header or `config.json`
/// without loading its weights: the preset it was trained with, and the flags it runs with by
/// default when it records others (`ModelInfo::trained_anchors`, `ModelInfo::default_anchors`).
pub fn recorded_anchors_of(path: &Path) -> Result<(Option<String>, Option<String>)> {
    let (_, src) = open_source(path, WeightDtype::F32, &Device::Cpu)?;
    Ok((recorded_anchors(&src), recorded_default_anchors(&src)))
}

/// The weights at `path` opened (a GGUF header, or the safetensors / pth files mapped), and
/// which format they are in.
fn open_source(
    path: &Path,
    dtype: WeightDtype,
    device: &Device,
) -> Result<(CheckpointFormat, WeightSource)> {
    let format = detect_format(path)?;
    let src = match format {
        CheckpointFormat::Gguf => WeightSource::open_gguf(path, dtype, device)?,
        CheckpointFormat::HfDir => WeightSource::open_hf_dir(path, dtype, device)?,
    };
    Ok((format, src))
}

/// Loads the model at `path` (GGUF file or HF directory).
pub fn load_model(path: &Path, dtype: WeightDtype, device: &Device) -> Result<LoadedModel> {
    let (format, mut src) = open_source(path, dtype, device)?;
    let tokenizer = match src.gguf_content() {
        Some(content) => Tokenizer::from_gguf(content)?,
        None => Tokenizer::from_hf_dir(path)?,
    };
    let cfg = read_config(&src)?;
    if tokenizer.vocab_size() > cfg.vocab_size {
        return Err(Error::Shape {
            op: "tokenizer vocabulary vs model vocab_size".into(),
            expected: format!("<= {}", cfg.vocab_size),
            got: tokenizer.vocab_size().to_string(),
        });
    }
    let storage = storage_types(&src);
    let trained_anchors = recorded_anchors(&src);
    let default_anchors = recorded_default_anchors(&src);
    let llama = Llama::load(&mut src, &cfg, device)?;
    let info = ModelInfo {
        path: path.to_path_buf(),
        format: match format {
            CheckpointFormat::Gguf => "gguf",
            CheckpointFormat::HfDir => "hf-dir",
        },
        architecture: "llama".into(),
        storage,
        compute: match (format, dtype) {
            (CheckpointFormat::Gguf, WeightDtype::Auto) => {
                "quantized (Q4_1/Q8_0: anllm kernels, others: candle)"
            }
            _ => "f32",
        },
        rope_style: match src.rope_style() {
            crate::config::RopeStyle::Half => "half",
            crate::config::RopeStyle::Interleaved => "interleaved",
        },
        trained_anchors,
        default_anchors,
    };
    Ok(LoadedModel {
        llama: Arc::new(llama),
        tokenizer,
        info,
    })
}

fn storage_types(src: &WeightSource) -> Vec<(String, String)> {
    let names = [
        ("embed_tokens", "model.embed_tokens.weight"),
        ("lm_head", "lm_head.weight"),
        ("q_proj", "model.layers.0.self_attn.q_proj.weight"),
        ("k_proj", "model.layers.0.self_attn.k_proj.weight"),
        ("v_proj", "model.layers.0.self_attn.v_proj.weight"),
        ("o_proj", "model.layers.0.self_attn.o_proj.weight"),
        ("gate_proj", "model.layers.0.mlp.gate_proj.weight"),
        ("up_proj", "model.layers.0.mlp.up_proj.weight"),
        ("down_proj", "model.layers.0.mlp.down_proj.weight"),
        ("norm", "model.norm.weight"),
    ];
    names
        .iter()
        .filter_map(|(short, name)| src.storage_type(name).map(|t| (short.to_string(), t)))
        .collect()
}
