//! Training checkpoints in Hugging Face layout, written atomically.
//!
//! `OUT/checkpoint-000050/` holds what `anllm generate`, `score` and `eval` (and
//! `transformers`) load: `model.safetensors` (f32, HF names), its one-file
//! `model.safetensors.index.json` (so that loaders which take every `*.safetensors` of a
//! directory skip the optimizer), `config.json` and the tokenizer files; and what `--resume`
//! needs: `optimizer.safetensors` ([`super::optim::AdamW::state_tensors`]) and
//! `trainer_state.json` ([`TrainerState`]).
//!
//! A save writes everything into `OUT/.tmp-checkpoint-000050/`, fsyncs it, renames it to its
//! final name, then replaces `OUT/latest.json` (temp file + rename) to name it. A crash at any
//! point leaves `latest.json` naming the previous complete checkpoint; leftover temp
//! directories are ignored by loads and removed by the next save.

mod fs;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use self::fs::write_atomic;
use self::fs::{
    read_json, read_safetensors, remove_dir, rename, sync_dir, to_pretty, write_file,
    write_safetensors,
};
use super::data::DataPosition;
use anllm::config::LlamaConfig;
use anllm::{Error, Result};

/// The file naming the newest checkpoint of an output directory.
pub const LATEST: &str = "latest.json";
/// Weights file of a checkpoint.
pub const MODEL_FILE: &str = "model.safetensors";
/// Optimizer state file of a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Trainer state file of a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// Tokenizer files copied into checkpoints when the source has them.
pub const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
];
const TMP_PREFIX: &str = ".tmp-checkpoint-";
const OLD_PREFIX: &str = ".old-checkpoint-";
const RESERVED: [&str; 6] = [
    MODEL_FILE,
    "model.safetensors.index.json",
    "config.json",
    OPTIMIZER_FILE,
    STATE_FILE,
    LATEST,
];

/// Where a run stands, saved as `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: u64,
    /// Where the data continues.
    pub data: DataPosition,
    /// The run's seed.
    pub seed: u64,
    /// Tokens (not pads) trained on so far.
    pub tokens_seen: u64,
    /// Training wall time so far, seconds.
    pub elapsed_s: f64,
    /// Lines of the JSONL training log that belong to this state: a resumed run truncates
    /// the log to them, so the log and the loss curve continue without gaps or repeats.
    pub log_records: u64,
    /// The run's arguments, for resume to check they match.
    #[serde(default)]
    pub run: Value,
    /// Anything else the caller needs to continue exactly.
    #[serde(default)]
    pub extra: Value,
}

/// What a checkpoint holds, borrowed from the trainer.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint<'a> {
    /// Model weights under their HF names (saved as f32).
    pub params: &'a [(String, Tensor)],
    /// The model's hyper-parameters.
    pub config: &'a LlamaConfig,
    /// Other `config.json` keys to keep (e.g. the source model's `config.json`: token ids,
    /// activation); the keys of `config` override them.
    pub config_extra: Option<&'a Value>,
    /// Tokenizer files by name (`tokenizer.json`, `tokenizer_config.json`, …).
    pub tokenizer_files: &'a [(String, Vec<u8>)],
    /// Optimizer state ([`super::optim::AdamW::state_tensors`]).
    pub optimizer: &'a [(String, Tensor)],
    /// The trainer state.
    pub state: &'a TrainerState,
}

/// A checkpoint read back (tensors on the CPU, sorted by name).
#[derive(Debug, Clone)]
pub struct LoadedCheckpoint {
    /// Its directory.
    pub dir: PathBuf,
    /// Model weights under their HF names.
    pub params: Vec<(String, Tensor)>,
    /// The model's hyper-parameters.
    pub config: LlamaConfig,
    /// Optimizer state, for [`super::optim::AdamW::load_state`].
    pub optimizer: Vec<(String, Tensor)>,
    /// The trainer state.
    pub state: TrainerState,
}

/// Directory name of the checkpoint after `step` steps: `checkpoint-000050`.
pub fn checkpoint_name(step: u64) -> String {
    format!("checkpoint-{step:06}")
}

/// The step of a checkpoint directory name, if it is one.
fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("checkpoint-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The complete checkpoints of `out_dir` (final names only), by step.
pub fn list_checkpoints(out_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(out_dir).map_err(|e| Error::io(out_dir, e))? {
        let entry = entry.map_err(|e| Error::io(out_dir, e))?;
        let step = entry.file_name().to_str().and_then(parse_name);
        if let Some(step) = step
            && entry.path().is_dir()
        {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The tokenizer files of [`TOKENIZER_FILES`] that `dir` has, read for
/// [`Checkpoint::tokenizer_files`].
pub fn read_tokenizer_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in TOKENIZER_FILES {
        let path = dir.join(name);
        if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            out.push((name.to_string(), bytes));
        }
    }
    Ok(out)
}

/// Saves `ckpt` as `out_dir/checkpoint-<step>` atomically, points `latest.json` at it, and
/// with `keep_last = Some(k)` deletes all but the newest `k` (at least 1) checkpoints.
/// Returns the checkpoint's directory.
pub fn save_checkpoint(
    out_dir: &Path,
    step: u64,
    ckpt: &Checkpoint<'_>,
    keep_last: Option<usize>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    remove_leftovers(out_dir)?;
    let name = checkpoint_name(step);
    let tmp = out_dir.join(format!("{TMP_PREFIX}{step:06}"));
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write_contents(&tmp, ckpt)?;
    sync_dir(&tmp)?;
    let dir = out_dir.join(&name);
    if dir.exists() {
        let old = out_dir.join(format!("{OLD_PREFIX}{step:06}"));
        rename(&dir, &old)?;
        rename(&tmp, &dir)?;
        remove_dir(&old)?;
    } else {
        rename(&tmp, &dir)?;
    }
    sync_dir(out_dir)?;
    let latest = json!({ "checkpoint": name, "step": step });
    write_atomic(&out_dir.join(LATEST), &to_pretty(&latest, LATEST)?)?;
    if let Some(keep) = keep_last {
        prune(out_dir, step, keep.max(1))?;
    }
    Ok(dir)
}

/// Writes what a model directory holds into `dir`, each file fsynced: the weights (f32, CPU)
/// with their one-file index, `config.json` and the tokenizer files.
fn write_model_files(
    dir: &Path,
    params: &[(String, Tensor)],
    config_bytes: &[u8],
    tokenizer_files: &[(String, Vec<u8>)],
) -> Result<()> {
    write_safetensors(&dir.join(MODEL_FILE), params)?;
    write_file(
        &dir.join("model.safetensors.index.json"),
        &index_json(params)?,
    )?;
    write_file(&dir.join("config.json"), config_bytes)?;
    for (name, bytes) in tokenizer_files {
        check_file_name(name)?;
        write_file(&dir.join(name), bytes)?;
    }
    Ok(())
}

/// Writes every file of a checkpoint into `dir`, each fsynced.
fn write_contents(dir: &Path, ckpt: &Checkpoint<'_>) -> Result<()> {
    let params = ckpt
        .params
        .iter()
        .map(|(n, t)| Ok((n.clone(), t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)))
        .collect::<Result<Vec<_>>>()?;
    let config = config_json(ckpt.config, ckpt.config_extra)?;
    write_model_files(dir, &params, &config, ckpt.tokenizer_files)?;
    write_safetensors(&dir.join(OPTIMIZER_FILE), ckpt.optimizer)?;
    write_file(&dir.join(STATE_FILE), &to_pretty(ckpt.state, STATE_FILE)?)
}

/// `config.json`: `extra`'s keys, overridden by the config's, plus the HF architecture keys.
fn config_json(cfg: &LlamaConfig, extra: Option<&Value>) -> Result<Vec<u8>> {
    let mut out = match extra {
        Some(Value::Object(map)) => map.clone(),
        _ => serde_json::Map::new(),
    };
    let ours = serde_json::to_value(cfg).map_err(|e| Error::config("config.json", e))?;
    if let Value::Object(map) = ours {
        out.extend(map.into_iter().filter(|(_, v)| !v.is_null()));
    }
    out.insert("num_key_value_heads".into(), json!(cfg.kv_heads()));
    out.insert("architectures".into(), json!(["LlamaForCausalLM"]));
    out.insert("model_type".into(), json!("llama"));
    out.insert("torch_dtype".into(), json!("float32"));
    out.entry("hidden_act").or_insert(json!("silu"));
    to_pretty(&Value::Object(out), "config.json")
}

/// The one-file safetensors index naming `model.safetensors` for every tensor.
fn index_json(params: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let total: usize = params.iter().map(|(_, t)| t.elem_count() * 4).sum();
    let map: serde_json::Map<String, Value> = params
        .iter()
        .map(|(n, _)| (n.clone(), json!(MODEL_FILE)))
        .collect();
    let index = json!({ "metadata": { "total_size": total }, "weight_map": map });
    to_pretty(&index, "model.safetensors.index.json")
}

/// Every tensor of a `model.safetensors` file, on the CPU, sorted by name.
pub fn read_model_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    read_safetensors(path)
}

/// Writes the model directory `out` (weights in f32 with their index, `config_bytes` as
/// `config.json`, the tokenizer files, then whatever `extra` writes; no optimizer state) into a
/// temp directory beside it, then renames it into place: a stopped write leaves no `out`.
pub fn write_model_dir(
    out: &Path,
    params: &[(String, Tensor)],
    config_bytes: &[u8],
    tokenizer_files: &[(String, Vec<u8>)],
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::config("output", format!("{} has no file name", out.display())))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = parent.join(format!(".tmp-{name}"));
    if tmp.exists() {
        remove_dir(&tmp)?;
    }
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write_model_files(&tmp, params, config_bytes, tokenizer_files)?;
    extra(&tmp)?;
    sync_dir(&tmp)?;
    rename(&tmp, out)?;
    sync_dir(parent)
}

/// Loads the checkpoint `latest.json` names, or (without `latest.json`) the newest complete
/// one; `None` when `out_dir` has no checkpoint.
pub fn load_latest(out_dir: &Path) -> Result<Option<LoadedCheckpoint>> {
    if !out_dir.is_dir() {
        return Ok(None);
    }
    let latest = out_dir.join(LATEST);
    if latest.is_file() {
        let name = read_latest(&latest)?;
        return load_checkpoint(&out_dir.join(name)).map(Some);
    }
    match list_checkpoints(out_dir)?.pop() {
        Some((_, dir)) => load_checkpoint(&dir).map(Some),
        None => Ok(None),
    }
}

/// The checkpoint name in `latest.json`.
fn read_latest(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let format = |reason: String| Error::Format {
        path: path.to_path_buf(),
        reason,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    let name = value
        .get("checkpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| format("no `checkpoint` string".into()))?;
    if parse_name(name).is_none() {
        return Err(format(format!(
            "`{name}` is not a checkpoint directory name"
        )));
    }
    Ok(name.to_string())
}

/// Loads the checkpoint in `dir`. A missing, truncated or corrupt file is an error naming it.
pub fn load_checkpoint(dir: &Path) -> Result<LoadedCheckpoint> {
    let state_path = dir.join(STATE_FILE);
    let state: TrainerState = read_json(&state_path)?;
    let dir_step = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_name);
    if let Some(step) = dir_step.filter(|&s| s != state.step) {
        return Err(Error::Format {
            path: state_path,
            reason: format!("step {} but the directory is step {step}", state.step),
        });
    }
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let config = LlamaConfig::from_json(&text).map_err(|e| Error::Format {
        path: config_path,
        reason: e.to_string(),
    })?;
    Ok(LoadedCheckpoint {
        dir: dir.to_path_buf(),
        params: read_safetensors(&dir.join(MODEL_FILE))?,
        config,
        optimizer: read_safetensors(&dir.join(OPTIMIZER_FILE))?,
        state,
    })
}

fn check_file_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !RESERVED.contains(&name);
    if plain {
        Ok(())
    } else {
        Err(Error::config(
            "tokenizer files",
            format!("`{name}` is not a plain, unreserved file name"),
        ))
    }
}

/// Removes temp directories of interrupted saves.
fn remove_leftovers(out_dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out_dir).map_err(|e| Error::io(out_dir, e))? {
        let entry = entry.map_err(|e| Error::io(out_dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name.starts_with(TMP_PREFIX) || name.starts_with(OLD_PREFIX)) && entry.path().is_dir() {
            remove_dir(&entry.path())?;
        }
    }
    Ok(())
}

/// Deletes the checkpoints before `step` except the newest `keep − 1` of them. Checkpoints
/// after `step` (left by a run that was resumed from an earlier one) are left alone: the
/// resumed run overwrites them when it gets there.
fn prune(out_dir: &Path, step: u64, keep: usize) -> Result<()> {
    let older: Vec<_> = list_checkpoints(out_dir)?
        .into_iter()
        .filter(|(s, _)| *s < step)
        .collect();
    let excess = older.len().saturating_sub(keep - 1);
    for (_, dir) in &older[..excess] {
        remove_dir(dir)?;
    }
    Ok(())
}
