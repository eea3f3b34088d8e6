//! Test support (feature `testutil`): tiny seeded random Llama checkpoints written in code, so
//! tests never download anything.
//!
//! * [`write_hf_dir`]: a Hugging Face directory (`config.json`, a Llama-2 style `tokenizer.json`
//!   and friends) with the weights as one or several safetensors files or `pytorch_model*.bin`
//!   (a `torch.save` zip written by hand in [`pth`]).
//! * [`write_gguf`]: a llama-architecture GGUF with a GPT-2 BPE vocabulary and Q/K rows permuted
//!   for llama.cpp's interleaved RoPE, as `convert_hf_to_gguf.py` does.
//!
//! The same spec (and seed) gives the same weights in every format.

mod assets;
mod fixtures;
mod pth;
mod vocab;

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use serde_json::{Value, json};

use crate::config::LlamaConfig;
use crate::weights::gguf_name;
use crate::{Error, Result};

pub use assets::{
    anllm_home, asset, default_model, gguf_tokenizer, golden, golden_dir, llama_cpp_cases,
};
pub use fixtures::{ANCHOR, PAD, TOL_F32, causal_logits, max_abs_diff, tiny_anchors, tiny_model};
pub use vocab::{LLAMA2_BASE_VOCAB, llama_tokenizer_json};

/// Sizes and seed of a tiny Llama.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinySpec {
    /// Vocabulary rows (tokenizer ids included).
    pub vocab: usize,
    /// Model width.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Context length (`max_position_embeddings`).
    pub max_pos: usize,
    /// No `lm_head.weight`: the head reuses the embedding.
    pub tie_embeddings: bool,
    /// Seed of the weights.
    pub seed: u64,
}

impl TinySpec {
    /// A grouped-query model: 2 layers, hidden 32, 4 heads over 2 KV heads, 384 ids.
    pub fn gqa() -> Self {
        Self {
            vocab: 384,
            hidden: 32,
            intermediate: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            max_pos: 128,
            tie_embeddings: false,
            seed: 42,
        }
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// The HF `config.json` of this model.
    pub fn config_json(&self) -> Value {
        let pad = (self.vocab > LLAMA2_BASE_VOCAB).then_some(LLAMA2_BASE_VOCAB);
        json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "max_position_embeddings": self.max_pos,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_scaling": null,
            "tie_word_embeddings": self.tie_embeddings,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "attention_bias": false,
            "pretraining_tp": 1,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": pad,
            "torch_dtype": "float32",
            "use_cache": true,
            "transformers_version": "4.31.0",
        })
    }

    /// The parsed config.
    pub fn config(&self) -> Result<LlamaConfig> {
        LlamaConfig::from_json(&self.config_json().to_string())
    }
}

impl Default for TinySpec {
    fn default() -> Self {
        Self::gqa()
    }
}

/// A tiny model with the full AnLLM Llama-2 vocabulary: 32000 pieces plus `[PAD]` = 32000
/// and, with `vocab_size` 32002, `<AC>` = 32001 (AnLLM-EP-7B / AnLLM-AC-7B).
pub fn anllm_llama2_spec(vocab_size: usize) -> TinySpec {
    TinySpec {
        vocab: vocab_size,
        max_pos: 64,
        seed: 7,
        ..TinySpec::gqa()
    }
}

/// How an HF directory stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfLayout {
    /// `model.safetensors`.
    Safetensors,
    /// `model-0000N-of-00002.safetensors` and `model.safetensors.index.json`.
    ShardedSafetensors,
    /// `pytorch_model.bin` (zip + pickle, as `torch.save`).
    PytorchBin,
    /// `pytorch_model-0000N-of-00002.bin` and `pytorch_model.bin.index.json`.
    ShardedPytorchBin,
}

impl HfLayout {
    /// Every layout.
    pub const ALL: [HfLayout; 4] = [
        HfLayout::Safetensors,
        HfLayout::ShardedSafetensors,
        HfLayout::PytorchBin,
        HfLayout::ShardedPytorchBin,
    ];
}

/// SplitMix64: a tiny seeded generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }

    fn tensor(&mut self, dims: &[usize], scale: f32, offset: f32) -> Result<Tensor> {
        let n = dims.iter().product();
        let data: Vec<f32> = (0..n).map(|_| offset + scale * self.unit()).collect();
        Ok(Tensor::from_vec(data, dims, &Device::Cpu)?)
    }
}

/// The weights of `spec` under their HF names, in checkpoint order; `lm_head.weight` comes last
/// (and only when not tied), so tied and untied specs share every other tensor.
pub fn hf_tensors(spec: &TinySpec) -> Result<Vec<(String, Tensor)>> {
    let (v, d, f) = (spec.vocab, spec.hidden, spec.intermediate);
    let (q, kv) = (
        spec.heads * spec.head_dim(),
        spec.kv_heads * spec.head_dim(),
    );
    let mut rng = Rng(spec.seed);
    let mut out = vec![(
        "model.embed_tokens.weight".to_string(),
        rng.tensor(&[v, d], 1.0, 0.0)?,
    )];
    let linear =
        |rng: &mut Rng, o: usize, i: usize| rng.tensor(&[o, i], (3.0 / i as f32).sqrt(), 0.0);
    for l in 0..spec.layers {
        let p = format!("model.layers.{l}");
        out.push((
            format!("{p}.input_layernorm.weight"),
            rng.tensor(&[d], 0.1, 1.0)?,
        ));
        out.push((
            format!("{p}.self_attn.q_proj.weight"),
            linear(&mut rng, q, d)?,
        ));
        out.push((
            format!("{p}.self_attn.k_proj.weight"),
            linear(&mut rng, kv, d)?,
        ));
        out.push((
            format!("{p}.self_attn.v_proj.weight"),
            linear(&mut rng, kv, d)?,
        ));
        out.push((
            format!("{p}.self_attn.o_proj.weight"),
            linear(&mut rng, d, q)?,
        ));
        out.push((
            format!("{p}.post_attention_layernorm.weight"),
            rng.tensor(&[d], 0.1, 1.0)?,
        ));
        out.push((format!("{p}.mlp.gate_proj.weight"), linear(&mut rng, f, d)?));
        out.push((format!("{p}.mlp.up_proj.weight"), linear(&mut rng, f, d)?));
        out.push((format!("{p}.mlp.down_proj.weight"), linear(&mut rng, d, f)?));
    }
    out.push(("model.norm.weight".to_string(), rng.tensor(&[d], 0.1, 1.0)?));
    if !spec.tie_embeddings {
        out.push(("lm_head.weight".to_string(), linear(&mut rng, v, d)?));
    }
    Ok(out)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes a Hugging Face directory of `spec` with seeded random weights.
pub fn write_hf_dir(dir: &Path, spec: &TinySpec, layout: HfLayout) -> Result<()> {
    write_hf_dir_tensors(dir, spec, layout, &hf_tensors(spec)?)
}

/// Writes a Hugging Face directory of `spec` holding exactly `tensors` (HF names).
pub fn write_hf_dir_tensors(
    dir: &Path,
    spec: &TinySpec,
    layout: HfLayout,
    tensors: &[(String, Tensor)],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_json(&dir.join("config.json"), &spec.config_json())?;
    write_json(
        &dir.join("tokenizer.json"),
        &vocab::llama_tokenizer_json(spec.vocab)?,
    )?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &vocab::llama_tokenizer_config(spec.vocab)?,
    )?;
    write_json(
        &dir.join("special_tokens_map.json"),
        &vocab::llama_special_tokens_map(spec.vocab)?,
    )?;
    let mid = tensors.len().div_ceil(2);
    let shards = [&tensors[..mid], &tensors[mid..]];
    match layout {
        HfLayout::Safetensors => save_safetensors(&dir.join("model.safetensors"), tensors),
        HfLayout::PytorchBin => pth::save(&dir.join("pytorch_model.bin"), tensors),
        HfLayout::ShardedSafetensors | HfLayout::ShardedPytorchBin => {
            let (stem, ext, index) = match layout {
                HfLayout::ShardedSafetensors => ("model", "safetensors", "model.safetensors"),
                _ => ("pytorch_model", "bin", "pytorch_model.bin"),
            };
            let mut weight_map = serde_json::Map::new();
            let mut total = 0;
            for (i, shard) in shards.iter().enumerate() {
                let file = format!("{stem}-{:05}-of-{:05}.{ext}", i + 1, shards.len());
                let path = dir.join(&file);
                if ext == "bin" {
                    pth::save(&path, shard)?;
                } else {
                    save_safetensors(&path, shard)?;
                }
                for (name, t) in shard.iter() {
                    weight_map.insert(name.clone(), json!(file));
                    total += t.elem_count() * 4;
                }
            }
            let json = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
            write_json(&dir.join(format!("{index}.index.json")), &json)
        }
    }
}

fn save_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let map: HashMap<&str, Tensor> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    Ok(candle_core::safetensors::save(&map, path)?)
}

pub use crate::weights::permute_for_interleaved_rope;

/// Writes a tiny llama GGUF of `spec` with F32 tensors (same weights as [`write_hf_dir`]).
pub fn write_gguf(path: &Path, spec: &TinySpec) -> Result<()> {
    write_gguf_typed(path, spec, GgmlDType::F32, true)
}

/// Writes a tiny llama GGUF of `spec` with matrices stored as `dtype` (F32, F16, Q8_0, …;
/// block-quantized types need widths that are multiples of the block size). Norms stay F32.
/// `permute_qk = false` leaves Q/K rows in HF order: a broken file for negative tests.
pub fn write_gguf_typed(
    path: &Path,
    spec: &TinySpec,
    dtype: GgmlDType,
    permute_qk: bool,
) -> Result<()> {
    let mut tensors = Vec::new();
    for (name, t) in hf_tensors(spec)? {
        let t = if permute_qk && name.ends_with("q_proj.weight") {
            permute_for_interleaved_rope(&t, spec.heads)?
        } else if permute_qk && name.ends_with("k_proj.weight") {
            permute_for_interleaved_rope(&t, spec.kv_heads)?
        } else {
            t
        };
        let ty = if t.rank() == 1 { GgmlDType::F32 } else { dtype };
        tensors.push((gguf_name(&name), QTensor::quantize(&t, ty)?));
    }
    let (tokens, types, merges) = vocab::gpt2_vocab(spec.vocab)?;
    let strings = |v: Vec<String>| {
        gguf_file::Value::Array(v.into_iter().map(gguf_file::Value::String).collect())
    };
    let u32v = |n: usize| gguf_file::Value::U32(n as u32);
    let f32v = gguf_file::Value::F32;
    let s = |t: &str| gguf_file::Value::String(t.to_string());
    let metadata: Vec<(&str, gguf_file::Value)> = vec![
        ("general.architecture", s("llama")),
        ("general.name", s("anllm-tiny")),
        ("general.alignment", u32v(32)),
        ("llama.vocab_size", u32v(spec.vocab)),
        ("llama.context_length", u32v(spec.max_pos)),
        ("llama.embedding_length", u32v(spec.hidden)),
        ("llama.block_count", u32v(spec.layers)),
        ("llama.feed_forward_length", u32v(spec.intermediate)),
        ("llama.attention.head_count", u32v(spec.heads)),
        ("llama.attention.head_count_kv", u32v(spec.kv_heads)),
        ("llama.rope.dimension_count", u32v(spec.head_dim())),
        ("llama.attention.layer_norm_rms_epsilon", f32v(1e-5)),
        ("llama.rope.freq_base", f32v(10000.0)),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.pre", s("gpt2")),
        ("tokenizer.ggml.tokens", strings(tokens)),
        (
            "tokenizer.ggml.token_type",
            gguf_file::Value::Array(types.into_iter().map(gguf_file::Value::I32).collect()),
        ),
        ("tokenizer.ggml.merges", strings(merges)),
        ("tokenizer.ggml.bos_token_id", u32v(0)),
        ("tokenizer.ggml.eos_token_id", u32v(0)),
        (
            "tokenizer.ggml.add_bos_token",
            gguf_file::Value::Bool(false),
        ),
    ];
    let md: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    gguf_file::write(&mut file, &md, &ts)?;
    Ok(())
}
