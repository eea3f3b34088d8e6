//! File helpers of checkpoints: durable writes, atomic replacement, and safetensors and JSON
//! reads whose errors name the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Serialize;

use anllm::{Error, Result};

/// Parses the JSON file at `path`.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Every tensor of a safetensors file, on the CPU, sorted by name.
pub(super) fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let map =
        candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            reason: format!("not a valid safetensors file: {e}"),
        })?;
    let mut tensors: Vec<(String, Tensor)> = map.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// Writes `tensors` as a safetensors file and fsyncs it.
pub(super) fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let map: HashMap<&str, Tensor> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    if map.len() != tensors.len() {
        return Err(Error::Format {
            path: path.to_path_buf(),
            reason: "two tensors share a name".into(),
        });
    }
    candle_core::safetensors::save(&map, path).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        reason: format!("cannot write: {e}"),
    })?;
    readable_by_all(path)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// The safetensors writer creates its files owner-only (0600); checkpoints are read by other
/// tools and users like any model directory, so they get 0644.
fn readable_by_all(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` and fsyncs it.
pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// Replaces `path` with `bytes` atomically (temp file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    write_file(&tmp, bytes)?;
    rename(&tmp, path)?;
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Pretty JSON bytes of `value` (`what` names it in errors).
pub(super) fn to_pretty<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::config(what, e))
}

/// Renames `from` to `to`.
pub(super) fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(to, e))
}

/// Removes a directory tree.
pub(super) fn remove_dir(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Fsyncs a directory so that renames in it are durable (a no-op off Unix).
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    if cfg!(unix) {
        let file = File::open(dir).map_err(|e| Error::io(dir, e))?;
        file.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}
