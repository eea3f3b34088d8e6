//! Weight averaging of checkpoints of one run (`anllm average`): the element-wise mean of
//! their weights, written as a model directory that every loader reads (Hugging Face layout,
//! no optimizer state).
//!
//! Averaging the weights a run passes through late in training, at a constant or slowly
//! decaying learning rate, is stochastic weight averaging (Izmailov et al. 2018; PyTorch's
//! `torch.optim.swa_utils`) or latest-weight averaging (Kaddour 2022): the average sits nearer
//! the middle of the region the steps wander in, so it depends less on the last few batches,
//! which is what a change of seed moves. The checkpoints must share one architecture (same
//! `config.json`, tensor names and shapes); the mean is taken in f64 and saved in f32.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use serde_json::{Value, json};

use crate::checkpoint::{
    MODEL_FILE, read_model_tensors, read_tokenizer_files, write_atomic, write_model_dir,
};
use anllm::{Error, Result};

/// The provenance file of an averaged model: which checkpoints, which steps.
pub const PROVENANCE_FILE: &str = "anllm_average.json";

/// What [`average_checkpoints`] wrote.
#[derive(Debug, Clone)]
pub struct Averaged {
    /// The new model directory.
    pub dir: PathBuf,
    /// How many tensors were averaged.
    pub tensors: usize,
    /// How many parameters each checkpoint has.
    pub parameters: usize,
}

/// Averages the weights of the checkpoints in `sources` (at least two) into the new model
/// directory `out` (which must not exist yet), with the first one's `config.json` and
/// tokenizer files (one-file `model.safetensors` directories, as `train` writes). Differing
/// configs, tensor names or shapes are errors naming the checkpoint.
pub fn average_checkpoints(sources: &[PathBuf], out: &Path) -> Result<Averaged> {
    let [first, rest @ ..] = sources else {
        return Err(Error::config("average", "no checkpoint to average"));
    };
    if rest.is_empty() {
        return Err(Error::config(
            "average",
            "one checkpoint is already its own average: give two or more",
        ));
    }
    if out.exists() {
        return Err(Error::config(
            "average",
            format!("{} already exists: name a new directory", out.display()),
        ));
    }
    let (config_bytes, config) = read_config(first)?;
    let mut sum = to_f64(read_model_tensors(&first.join(MODEL_FILE))?)?;
    for dir in rest {
        if read_config(dir)?.1 != config {
            return Err(differs(
                dir,
                "config.json differs from the first checkpoint's",
            ));
        }
        let next = read_model_tensors(&dir.join(MODEL_FILE))?;
        sum = add(sum, next, dir)?;
    }
    let n = sources.len() as f64;
    let mean = sum
        .into_iter()
        .map(|(name, t)| Ok((name, (t / n)?.to_dtype(DType::F32)?)))
        .collect::<Result<Vec<_>>>()?;
    let parameters = mean.iter().map(|(_, t)| t.elem_count()).sum();
    let tokenizer = read_tokenizer_files(first)?;
    write_model_dir(out, &mean, &config_bytes, &tokenizer, |tmp| {
        let provenance = json!({
            "averaged_from": sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "steps": sources.iter().map(|p| step_of(p)).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec_pretty(&provenance)
            .map_err(|e| Error::config(PROVENANCE_FILE, e))?;
        write_atomic(&tmp.join(PROVENANCE_FILE), &bytes)
    })?;
    Ok(Averaged {
        dir: out.to_path_buf(),
        tensors: mean.len(),
        parameters,
    })
}

/// The step in a checkpoint's `trainer_state.json`, if it has one.
fn step_of(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("trainer_state.json")).ok()?;
    serde_json::from_str::<Value>(&text)
        .ok()?
        .get("step")?
        .as_u64()
}

/// A checkpoint's `config.json`: its bytes (copied into the average) and its parsed value
/// (compared across the checkpoints).
fn read_config(dir: &Path) -> Result<(Vec<u8>, Value)> {
    let path = dir.join("config.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let value = serde_json::from_slice(&bytes).map_err(|e| Error::Format {
        path,
        reason: e.to_string(),
    })?;
    Ok((bytes, value))
}

/// The error for a checkpoint that cannot be averaged with the first one.
fn differs(dir: &Path, reason: impl std::fmt::Display) -> Error {
    Error::config("average", format!("{}: {reason}", dir.display()))
}

fn to_f64(tensors: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>> {
    tensors
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_dtype(DType::F64)?)))
        .collect()
}

/// `sum + next`, tensor by tensor; both sorted by name.
fn add(
    sum: Vec<(String, Tensor)>,
    next: Vec<(String, Tensor)>,
    dir: &Path,
) -> Result<Vec<(String, Tensor)>> {
    if sum.len() != next.len() || sum.iter().zip(&next).any(|(a, b)| a.0 != b.0) {
        return Err(differs(
            dir,
            "its tensor names differ from the first checkpoint's",
        ));
    }
    sum.into_iter()
        .zip(next)
        .map(|((name, a), (_, b))| {
            if a.dims() != b.dims() {
                let reason = format!(
                    "`{name}` is {:?}, the first checkpoint's {:?}",
                    b.dims(),
                    a.dims()
                );
                return Err(differs(dir, reason));
            }
            Ok((name, (a + b.to_dtype(DType::F64)?)?))
        })
        .collect()
}
