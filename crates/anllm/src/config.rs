//! Model hyper-parameters: the HF `config.json` names, read from JSON or from GGUF metadata,
//! and validated once.

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use serde::Deserialize;

use crate::{Error, Result};

/// Hyper-parameters of a Llama model, named as in Hugging Face's `config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct LlamaConfig {
    /// Number of vocabulary rows of the embedding and LM head.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Context length the model was trained for.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Whether the LM head reuses the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// RoPE scaling; only `null` is supported.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    4096
}

impl LlamaConfig {
    /// Parses and validates a `config.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: LlamaConfig =
            serde_json::from_str(text).map_err(|e| Error::config("config.json", e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads the hyper-parameters from GGUF metadata of architecture `llama`.
    pub fn from_gguf(md: &HashMap<String, gguf_file::Value>) -> Result<Self> {
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "llama" {
            return Err(Error::unsupported(format!(
                "GGUF architecture `{arch}` (only `llama` is supported)"
            )));
        }
        let int = |key: &str| -> Result<usize> {
            let full = format!("llama.{key}");
            md.get(&full)
                .ok_or_else(|| Error::config(&full, "missing from GGUF metadata"))
                .and_then(|v| gguf_int(v).ok_or_else(|| Error::config(&full, "not an integer")))
        };
        let float = |key: &str, default: f64| -> f64 {
            md.get(&format!("llama.{key}"))
                .and_then(|v| v.to_f32().ok().map(f64::from))
                .unwrap_or(default)
        };
        let heads = int("attention.head_count")?;
        let vocab_size = match int("vocab_size") {
            Ok(n) => n,
            Err(_) => md
                .get("tokenizer.ggml.tokens")
                .and_then(|v| v.to_vec().ok())
                .map(|v| v.len())
                .ok_or_else(|| Error::config("llama.vocab_size", "missing from GGUF metadata"))?,
        };
        let cfg = LlamaConfig {
            vocab_size,
            hidden_size: int("embedding_length")?,
            intermediate_size: int("feed_forward_length")?,
            num_hidden_layers: int("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: int("attention.head_count_kv").ok(),
            head_dim: int("attention.key_length").ok(),
            rms_norm_eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            rope_theta: float("rope.freq_base", 10_000.0),
            max_position_embeddings: int("context_length").unwrap_or(4096),
            tie_word_embeddings: false,
            rope_scaling: None,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Key/value heads, resolving the default.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width, resolving the default.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Checks that the numbers describe a buildable model.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_dim()),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(Error::config(field, "must be positive"));
            }
        }
        // Stream and RoPE positions are u32.
        if u32::try_from(self.max_position_embeddings).is_err() {
            return Err(Error::config(
                "max_position_embeddings",
                format!("{} is more than 2^32 - 1", self.max_position_embeddings),
            ));
        }
        if self.checked_parameter_count().is_none() {
            return Err(Error::config(
                "vocab_size/hidden_size/intermediate_size/num_hidden_layers",
                "the sizes describe more parameters than a usize can count",
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(Error::config(
                "num_key_value_heads",
                format!(
                    "{} query heads are not a multiple of {} key/value heads",
                    self.num_attention_heads,
                    self.kv_heads()
                ),
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::config(
                "hidden_size",
                format!(
                    "{} is not divisible by {} heads",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(Error::config("head_dim", "RoPE needs an even head width"));
        }
        if !(self.rms_norm_eps > 0.0 && self.rope_theta > 0.0) {
            return Err(Error::config("rms_norm_eps/rope_theta", "must be positive"));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(Error::unsupported("rope_scaling in config.json"));
        }
        Ok(())
    }

    /// Number of parameters of the dense model this config describes.
    /// (Saturates at `usize::MAX`; [`LlamaConfig::validate`] rejects sizes that overflow.)
    pub fn parameter_count(&self) -> usize {
        self.checked_parameter_count().unwrap_or(usize::MAX)
    }

    /// [`LlamaConfig::parameter_count`], `None` when it overflows.
    fn checked_parameter_count(&self) -> Option<usize> {
        let (d, f, v) = (self.hidden_size, self.intermediate_size, self.vocab_size);
        let mul = |a: usize, b: usize| a.checked_mul(b);
        let q = mul(self.num_attention_heads, self.head_dim())?;
        let kv = mul(self.kv_heads(), self.head_dim())?;
        let layer = [
            mul(d, q)?,
            mul(mul(2, d)?, kv)?,
            mul(q, d)?,
            mul(mul(3, d)?, f)?,
            mul(2, d)?,
        ]
        .into_iter()
        .try_fold(0usize, usize::checked_add)?;
        let embed = mul(v, d)?;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        [embed, mul(self.num_hidden_layers, layer)?, d, head]
            .into_iter()
            .try_fold(0usize, usize::checked_add)
    }
}

/// Integer value of a GGUF metadata entry of any integer type.
pub(crate) fn gguf_int(v: &gguf_file::Value) -> Option<usize> {
    use gguf_file::Value as V;
    match v {
        V::U8(x) => Some(*x as usize),
        V::U16(x) => Some(*x as usize),
        V::U32(x) => Some(*x as usize),
        V::U64(x) => usize::try_from(*x).ok(),
        V::I8(x) => usize::try_from(*x).ok(),
        V::I16(x) => usize::try_from(*x).ok(),
        V::I32(x) => usize::try_from(*x).ok(),
        V::I64(x) => usize::try_from(*x).ok(),
        _ => None,
    }
}

/// How the checkpoint lays out the two halves rotated by RoPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RopeStyle {
    /// HF layout: rotate `(x[i], x[i + d/2])` ("NeoX" halves).
    #[default]
    Half,
    /// llama.cpp's converter permutes Q/K rows so pairs `(x[2i], x[2i+1])` rotate.
    Interleaved,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> &'static str {
        r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-5, "max_position_embeddings": 128}"#
    }

    #[test]
    fn config_tiny_parses_with_defaults() {
        let cfg = LlamaConfig::from_json(tiny()).unwrap();
        assert_eq!(cfg.head_dim(), 8);
        assert_eq!(cfg.kv_heads(), 2);
        assert_eq!(cfg.rope_theta, 10_000.0);
        assert!(!cfg.tie_word_embeddings);
    }

    #[test]
    fn config_heads_not_multiple_of_kv_heads_is_rejected() {
        let text = tiny().replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
        let err = LlamaConfig::from_json(&text).unwrap_err();
        assert!(err.to_string().contains("num_key_value_heads"), "{err}");
    }

    #[test]
    fn config_missing_field_is_an_error() {
        let err = LlamaConfig::from_json(r#"{"vocab_size": 3}"#).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
