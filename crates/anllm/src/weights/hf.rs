//! Hugging Face directory weights: finding the safetensors files (one, sharded through
//! `model.safetensors.index.json`, or any `*.safetensors`) or the `pytorch_model*.bin` shards,
//! and opening them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};

pub(super) fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
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
pub(super) fn mmap_safetensors(
    files: &[PathBuf],
) -> Result<candle_core::safetensors::MmapedSafetensors> {
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

pub(super) fn open_pth_shards(
    dir: &Path,
) -> Result<HashMap<String, Arc<candle_core::pickle::PthTensors>>> {
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
