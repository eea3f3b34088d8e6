//! Weight sources: Hugging Face directories (safetensors, sharded or not, and `pytorch_model*.bin`)
//! and GGUF files, behind one name-based lookup that speaks HF tensor names. Finding an HF
//! directory's files is in `hf.rs`; reading and checking a GGUF header, and the HF-to-GGUF
//! tensor names, in `gguf.rs`.
//!
//! Quantized GGUF weights stay quantized ([`LinearWeight::Quantized`]) unless [`WeightDtype::F32`] asks
//! to dequantize everything. Every lookup checks the shape against the config, so a config that
//! disagrees with its checkpoint is an [`Error::Shape`], not a panic deep inside a matmul.

mod gguf;
mod hf;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{DType, Device, Tensor};

use crate::config::{LlamaConfig, RopeStyle};
use crate::{Error, Result};

pub use gguf::{gguf_name, permute_for_interleaved_rope, read_gguf_content};
use hf::{mmap_safetensors, open_pth_shards, safetensors_files};

/// How weights are materialized in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightDtype {
    /// Keep GGUF quantization (quantized matmuls); dense checkpoints become f32.
    #[default]
    Auto,
    /// Dequantize / convert everything to f32 (exact comparisons, training).
    F32,
}

/// The weight of a linear layer as stored, before the model chooses a kernel for it.
#[derive(Debug, Clone)]
pub enum LinearWeight {
    /// A dense f32 matrix `[out, in]`.
    Dense(Tensor),
    /// A quantized GGUF matrix `[out, in]`.
    Quantized(Arc<QTensor>),
}

/// Which on-disk format a model path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// A Hugging Face model directory.
    HfDir,
    /// A single GGUF file.
    Gguf,
}

enum Backing {
    /// Safetensors files, memory-mapped.
    Safetensors(candle_core::safetensors::MmapedSafetensors),
    /// `pytorch_model*.bin` shards: tensor name -> shard.
    Pth(HashMap<String, Arc<candle_core::pickle::PthTensors>>),
    /// A GGUF file and its parsed header.
    Gguf {
        content: Box<gguf_file::Content>,
        reader: BufReader<File>,
    },
}

/// A checkpoint opened for loading, with its config.
pub struct WeightSource {
    backing: Backing,
    path: PathBuf,
    dtype: WeightDtype,
    device: Device,
}

impl std::fmt::Debug for WeightSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightSource")
            .field("path", &self.path)
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

/// Tells the format of `path`: a directory is HF, a file must start with the GGUF magic.
pub fn detect_format(path: &Path) -> Result<CheckpointFormat> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Ok(CheckpointFormat::HfDir);
    }
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    std::io::Read::read_exact(&mut file, &mut magic).map_err(|_| Error::Format {
        path: path.to_path_buf(),
        reason: "file too short to be a model".into(),
    })?;
    if &magic == b"GGUF" {
        Ok(CheckpointFormat::Gguf)
    } else {
        Err(Error::Format {
            path: path.to_path_buf(),
            reason: "not a GGUF file (no GGUF magic) and not a Hugging Face model directory".into(),
        })
    }
}

impl WeightSource {
    /// Opens a GGUF file and checks that every tensor lies inside the file.
    pub fn open_gguf(path: &Path, dtype: WeightDtype, device: &Device) -> Result<Self> {
        let (content, reader) = gguf::open(path)?;
        Ok(Self {
            backing: Backing::Gguf {
                content: Box::new(content),
                reader,
            },
            path: path.to_path_buf(),
            dtype,
            device: device.clone(),
        })
    }

    /// Opens the weights of a Hugging Face directory: `model.safetensors`, the shards named in
    /// `model.safetensors.index.json`, any `*.safetensors`, or `pytorch_model*.bin`.
    pub fn open_hf_dir(dir: &Path, dtype: WeightDtype, device: &Device) -> Result<Self> {
        let backing = match safetensors_files(dir)? {
            files if !files.is_empty() => Backing::Safetensors(mmap_safetensors(&files)?),
            _ => Backing::Pth(open_pth_shards(dir)?),
        };
        Ok(Self {
            backing,
            path: dir.to_path_buf(),
            dtype,
            device: device.clone(),
        })
    }

    /// The GGUF header, when this source is a GGUF file.
    pub fn gguf_content(&self) -> Option<&gguf_file::Content> {
        match &self.backing {
            Backing::Gguf { content, .. } => Some(content),
            _ => None,
        }
    }

    /// Where the weights come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device tensors are loaded onto.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The requested materialization.
    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }

    /// RoPE pair layout of this checkpoint's Q/K rows.
    pub fn rope_style(&self) -> RopeStyle {
        match self.backing {
            Backing::Gguf { .. } => RopeStyle::Interleaved,
            _ => RopeStyle::Half,
        }
    }

    /// Whether a tensor of this HF name exists.
    pub fn contains(&self, name: &str) -> bool {
        match &self.backing {
            Backing::Safetensors(st) => st.get(name).is_ok(),
            Backing::Pth(map) => map.contains_key(name),
            Backing::Gguf { content, .. } => content.tensor_infos.contains_key(&gguf_name(name)),
        }
    }

    /// Storage type of a tensor, as text (for `inspect`).
    pub fn storage_type(&self, name: &str) -> Option<String> {
        match &self.backing {
            Backing::Safetensors(st) => st.get(name).ok().map(|v| format!("{:?}", v.dtype())),
            Backing::Pth(map) => map
                .get(name)
                .and_then(|p| p.tensor_infos().get(name).map(|i| format!("{:?}", i.dtype))),
            Backing::Gguf { content, .. } => content
                .tensor_infos
                .get(&gguf_name(name))
                .map(|i| format!("{:?}", i.ggml_dtype)),
        }
    }

    /// A dense f32 tensor of the expected shape.
    pub fn tensor(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = match &mut self.backing {
            Backing::Gguf { .. } => self.qtensor(name)?.dequantize(&self.device)?,
            _ => self.dense(name)?.to_dtype(DType::F32)?,
        };
        check_shape(name, shape, t.dims())?;
        Ok(t)
    }

    /// A linear layer's weight `[out, in]`: quantized when the file is and dtype is `Auto`, dense
    /// f32 otherwise. The model picks the kernel that runs it.
    pub fn linear(&mut self, name: &str, out_dim: usize, in_dim: usize) -> Result<LinearWeight> {
        match (&self.backing, self.dtype) {
            (Backing::Gguf { .. }, WeightDtype::Auto) => {
                let q = self.qtensor(name)?;
                check_shape(name, &[out_dim, in_dim], q.shape().dims())?;
                Ok(LinearWeight::Quantized(Arc::new(q)))
            }
            _ => Ok(LinearWeight::Dense(self.tensor(name, &[out_dim, in_dim])?)),
        }
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingTensor {
            name: name.to_string(),
            path: self.path.clone(),
        }
    }

    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        let gname = gguf_name(name);
        let path = self.path.clone();
        let Backing::Gguf { content, reader } = &mut self.backing else {
            return Err(Error::unsupported("quantized tensors outside GGUF"));
        };
        if !content.tensor_infos.contains_key(&gname) {
            return Err(Error::MissingTensor { name: gname, path });
        }
        content
            .tensor(reader, &gname, &self.device)
            .map_err(|e| Error::Format {
                path,
                reason: format!("tensor `{gname}`: {e}"),
            })
    }

    fn dense(&self, name: &str) -> Result<Tensor> {
        match &self.backing {
            Backing::Safetensors(st) => {
                if st.get(name).is_err() {
                    return Err(self.missing(name));
                }
                Ok(st.load(name, &self.device)?)
            }
            Backing::Pth(map) => {
                let shard = map.get(name).ok_or_else(|| self.missing(name))?;
                let t = shard.get(name)?.ok_or_else(|| self.missing(name))?;
                Ok(t.to_device(&self.device)?)
            }
            Backing::Gguf { .. } => Err(Error::unsupported("dense read of a GGUF tensor")),
        }
    }
}

fn check_shape(name: &str, expected: &[usize], got: &[usize]) -> Result<()> {
    if expected == got {
        return Ok(());
    }
    Err(Error::Shape {
        op: format!("tensor `{name}` (does config.json match the checkpoint?)"),
        expected: format!("{expected:?}"),
        got: format!("{got:?}"),
    })
}

/// GGUF metadata key of the anchor preset a model was trained with (`anllm export` writes it).
pub const ANCHORS_GGUF_KEY: &str = "anllm.anchors";
/// `config.json` key of the anchor preset a model was trained with (`anllm train` writes it).
pub const ANCHORS_CONFIG_KEY: &str = "anllm_anchors";

/// GGUF metadata key of the anchor flags a model runs with by default when they are not the
/// ones it was trained with (`anllm export --default-anchor-window`: a wider window at inference).
pub const DEFAULT_ANCHORS_GGUF_KEY: &str = "anllm.anchors.default";
/// `config.json` key of the same.
pub const DEFAULT_ANCHORS_CONFIG_KEY: &str = "anllm_anchors_default";

/// The `--anchors` preset `source` records it was trained with, if any (models that anllm
/// never trained record none).
pub fn recorded_anchors(source: &WeightSource) -> Option<String> {
    recorded(source, ANCHORS_GGUF_KEY, ANCHORS_CONFIG_KEY)
}

/// The anchor flags `source` records to run with by default, if it records any apart from
/// the ones it was trained with.
pub fn recorded_default_anchors(source: &WeightSource) -> Option<String> {
    recorded(source, DEFAULT_ANCHORS_GGUF_KEY, DEFAULT_ANCHORS_CONFIG_KEY)
}

fn recorded(source: &WeightSource, gguf_key: &str, config_key: &str) -> Option<String> {
    if let Some(content) = source.gguf_content() {
        let value = content.metadata.get(gguf_key)?;
        return value.to_string().ok().cloned();
    }
    let text = std::fs::read_to_string(source.path().join("config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get(config_key)?.as_str().map(str::to_owned)
}

/// Reads a config from GGUF metadata or `config.json` of an HF directory.
pub fn read_config(source: &WeightSource) -> Result<LlamaConfig> {
    if let Some(content) = source.gguf_content() {
        let mut cfg = LlamaConfig::from_gguf(&content.metadata)?;
        cfg.tie_word_embeddings = !source.contains("lm_head.weight");
        return Ok(cfg);
    }
    let path = source.path().join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut cfg = LlamaConfig::from_json(&text)?;
    if !source.contains("lm_head.weight") {
        cfg.tie_word_embeddings = true;
    }
    Ok(cfg)
}
