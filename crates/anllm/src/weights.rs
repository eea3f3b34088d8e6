//! Weight sources: Hugging Face directories (safetensors, sharded or not, and `pytorch_model*.bin`)
//! and GGUF files, behind one name-based lookup that speaks HF tensor names.
//!
//! Quantized GGUF weights stay quantized ([`LinearWeight::Quantized`]) unless [`WeightDtype::F32`] asks
//! to dequantize everything. Every lookup checks the shape against the config, so a config that
//! disagrees with its checkpoint is an [`Error::Shape`], not a panic deep inside a matmul.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{DType, Device, Tensor};

use crate::config::{LlamaConfig, RopeStyle};
use crate::{Error, Result};

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
        let fmt_err = |reason: String| Error::Format {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut reader = BufReader::new(file);
        let content = read_gguf_content(path, &mut reader)?;
        for (name, info) in &content.tensor_infos {
            let end = gguf_tensor_end(content.tensor_data_offset, info)
                .map_err(|why| fmt_err(format!("tensor `{name}`: {why}")))?;
            if end > file_len {
                return Err(fmt_err(format!(
                    "truncated: tensor `{name}` ends at byte {end} but the file has {file_len} bytes"
                )));
            }
        }
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

/// Parses the header of the GGUF file `path` from `reader`.
///
/// candle's parser panics on some crafted headers (a `general.alignment` of 0 divides by zero),
/// so a panic inside it is caught and reported as [`Error::Format`] like any other bad header.
pub fn read_gguf_content<R: std::io::Read + std::io::Seek>(
    path: &Path,
    reader: &mut R,
) -> Result<gguf_file::Content> {
    let fmt_err = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    // The reader is dropped by the caller on error, so no state broken by a panic is reused.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        gguf_file::Content::read(reader)
    }));
    match parsed {
        Ok(Ok(content)) => Ok(content),
        Ok(Err(e)) => Err(fmt_err(format!("bad GGUF header: {e}"))),
        Err(_) => Err(fmt_err(
            "bad GGUF header: the parser rejected it (e.g. `general.alignment` is 0)".into(),
        )),
    }
}

/// The byte just past a GGUF tensor's data, with every step checked: a crafted header must not
/// overflow past the truncation check.
fn gguf_tensor_end(data_offset: u64, info: &gguf_file::TensorInfo) -> Result<u64, String> {
    let dims = info.shape.dims();
    let elems = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("element count of shape {dims:?} overflows"))?;
    let (block, type_size) = (info.ggml_dtype.block_size(), info.ggml_dtype.type_size());
    if !elems.is_multiple_of(block) {
        return Err(format!(
            "{elems} elements are not a whole number of {:?} blocks of {block}",
            info.ggml_dtype
        ));
    }
    let bytes = (elems / block)
        .checked_mul(type_size)
        .and_then(|b| u64::try_from(b).ok())
        .ok_or_else(|| format!("byte size of shape {dims:?} overflows"))?;
    data_offset
        .checked_add(info.offset)
        .and_then(|start| start.checked_add(bytes))
        .ok_or_else(|| {
            format!(
                "offset {} + {bytes} bytes overflows past the end of any file",
                info.offset
            )
        })
}

/// A GGUF tensor type name is supported by our loader (llama.cpp numbering).
pub fn is_supported_ggml_type(t: GgmlDType) -> bool {
    matches!(
        t,
        GgmlDType::F32
            | GgmlDType::F16
            | GgmlDType::BF16
            | GgmlDType::Q4_0
            | GgmlDType::Q4_1
            | GgmlDType::Q5_0
            | GgmlDType::Q5_1
            | GgmlDType::Q8_0
            | GgmlDType::Q2K
            | GgmlDType::Q3K
            | GgmlDType::Q4K
            | GgmlDType::Q5K
            | GgmlDType::Q6K
    )
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

/// Maps an HF tensor name to llama.cpp's GGUF name.
pub fn gguf_name(hf: &str) -> String {
    match hf {
        "model.embed_tokens.weight" => return "token_embd.weight".into(),
        "model.norm.weight" => return "output_norm.weight".into(),
        "lm_head.weight" => return "output.weight".into(),
        _ => {}
    }
    let Some(rest) = hf.strip_prefix("model.layers.") else {
        return hf.to_string();
    };
    let Some((layer, tail)) = rest.split_once('.') else {
        return hf.to_string();
    };
    let short = match tail {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        other => return format!("blk.{layer}.{other}"),
    };
    format!("blk.{layer}.{short}")
}

fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: index.clone(),
            reason: e.to_string(),
        })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::Format {
                path: index.clone(),
                reason: "no `weight_map` object".into(),
            })?;
        let mut files: Vec<PathBuf> = map
            .values()
            .filter_map(|v| v.as_str())
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    list_dir(dir, |name| name.ends_with(".safetensors"))
}

fn list_dir(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_str().is_some_and(&keep) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

#[allow(unsafe_code)]
fn mmap_safetensors(files: &[PathBuf]) -> Result<candle_core::safetensors::MmapedSafetensors> {
    for f in files {
        if !f.exists() {
            return Err(Error::io(
                f,
                std::io::Error::new(std::io::ErrorKind::NotFound, "shard listed but missing"),
            ));
        }
    }
    // SAFETY: the files are memory-mapped read-only; like every mmap-based loader (candle,
    // llama.cpp) we rely on nobody truncating them while the model is loaded. Headers and data
    // lengths are validated by the safetensors crate before any tensor is read.
    unsafe { candle_core::safetensors::MmapedSafetensors::multi(files) }.map_err(|e| {
        Error::Format {
            path: files.first().cloned().unwrap_or_default(),
            reason: format!("bad safetensors file: {e}"),
        }
    })
}

fn open_pth_shards(dir: &Path) -> Result<HashMap<String, Arc<candle_core::pickle::PthTensors>>> {
    let files = list_dir(dir, |n| {
        n.starts_with("pytorch_model") && n.ends_with(".bin")
    })?;
    if files.is_empty() {
        return Err(Error::Format {
            path: dir.to_path_buf(),
            reason: "no model.safetensors, *.safetensors or pytorch_model*.bin weights".into(),
        });
    }
    let mut map = HashMap::new();
    for file in files {
        let shard =
            candle_core::pickle::PthTensors::new(&file, None).map_err(|e| Error::Format {
                path: file.clone(),
                reason: format!("bad PyTorch checkpoint: {e}"),
            })?;
        let shard = Arc::new(shard);
        for name in shard.tensor_infos().keys() {
            map.insert(name.clone(), Arc::clone(&shard));
        }
    }
    Ok(map)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_name_maps_layer_tensors() {
        assert_eq!(
            gguf_name("model.layers.3.self_attn.k_proj.weight"),
            "blk.3.attn_k.weight"
        );
        assert_eq!(
            gguf_name("model.layers.12.mlp.down_proj.weight"),
            "blk.12.ffn_down.weight"
        );
        assert_eq!(gguf_name("model.embed_tokens.weight"), "token_embd.weight");
        assert_eq!(gguf_name("lm_head.weight"), "output.weight");
    }
}
