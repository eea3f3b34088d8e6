//! Turning flags into validated runtime values: the model path, dtype, threads.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use candle_core::Device;

use anllm::{LoadedModel, WeightDtype, load_model};

use crate::args::{CommonArgs, DtypeArg};

/// File name of the default model inside `$ANLLM_HOME/models`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// `$ANLLM_HOME`, default `~/.cache/anllm`.
pub fn anllm_home() -> PathBuf {
    if let Some(home) = std::env::var_os("ANLLM_HOME") {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache").join("anllm")
}

/// The model path: `--model`, or the fetched default model.
pub fn resolve_model(common: &CommonArgs) -> Result<PathBuf> {
    if let Some(path) = &common.model {
        if !path.exists() {
            bail!("model path {} does not exist", path.display());
        }
        return Ok(path.clone());
    }
    let path = anllm_home().join("models").join(DEFAULT_MODEL_FILE);
    if !path.exists() {
        bail!(
            "no --model given and the default model {} is missing: run scripts/fetch-assets.sh",
            path.display()
        );
    }
    Ok(path)
}

/// Sets the CPU thread count for candle (gemm and rayon) before any tensor work.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    let Some(n) = threads else { return Ok(()) };
    if n == 0 {
        bail!("--threads must be at least 1");
    }
    // candle's CPU kernels read RAYON_NUM_THREADS, and rayon's global pool reads it too.
    // SAFETY: called at the top of main, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    Ok(())
}

/// Loads the model named by the shared flags.
pub fn load(common: &CommonArgs) -> Result<LoadedModel> {
    let path = resolve_model(common)?;
    let dtype = match common.dtype {
        DtypeArg::Auto => WeightDtype::Auto,
        DtypeArg::F32 => WeightDtype::F32,
    };
    load_model(&path, dtype, &Device::Cpu)
        .with_context(|| format!("loading model {}", path.display()))
}
