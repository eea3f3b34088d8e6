//! The token embedding table. With a tied, quantized LM head (the GGUF models) the rows are
//! dequantized from the head's blocks at lookup, as llama.cpp's `get_rows` does: the same
//! values as a dequantized f32 table, without holding one (113 MB for SmolLM2-135M).

use std::sync::Arc;

use candle_core::quantized::QMatMul;
use candle_core::{Device, Tensor};

use super::linear::Linear;
use crate::config::LlamaConfig;
use crate::weights::{LinearWeight, WeightSource};
use crate::{Error, Result};

/// Where the embedding rows come from.
#[derive(Debug, Clone)]
pub(crate) enum Embedding {
    /// An f32 (or the model's dtype) table `[vocab, hidden]`.
    Dense(Tensor),
    /// The tied LM head's quantized blocks (our Q4_1 / Q8_0 kernels).
    Tied(Arc<Linear>),
}

impl Embedding {
    /// The embedding table and the LM head. A tied head on our quantized kernels serves both
    /// (rows dequantized at lookup); otherwise the table is read as a dense tensor, and a tied
    /// dense head shares its storage.
    pub fn load_with_head(
        src: &mut WeightSource,
        cfg: &LlamaConfig,
    ) -> Result<(Embedding, Arc<Linear>)> {
        let (v, d) = (cfg.vocab_size, cfg.hidden_size);
        let name = "model.embed_tokens.weight";
        if !cfg.tie_word_embeddings {
            let table = src.tensor(name, &[v, d])?;
            let head = Linear::load(src, "lm_head.weight", v, d)?;
            return Ok((Embedding::Dense(table), Arc::new(head)));
        }
        // The tied head runs on f32 activations (Q8_0 kernel or the f32 table), so the logits
        // match a dequantized model; quantizing activations here cost 0.06 nats.
        let device = src.device().clone();
        let weight = match src.linear(name, v, d)? {
            LinearWeight::Dense(table) => {
                let head = Linear::Candle(QMatMul::Tensor(table.clone()));
                return Ok((Embedding::Dense(table), Arc::new(head)));
            }
            quantized => quantized,
        };
        match Linear::from_weight(weight, &device)? {
            Linear::Quant(q) => {
                let head = Arc::new(Linear::Quant(q));
                Ok((Embedding::Tied(Arc::clone(&head)), head))
            }
            // A quantized type without our kernel: the dequantized table serves both.
            Linear::Candle(_) => {
                let table = src.tensor(name, &[v, d])?;
                let head = Linear::Candle(QMatMul::Tensor(table.clone()));
                Ok((Embedding::Dense(table), Arc::new(head)))
            }
        }
    }

    /// The rows of `ids`: `[ids.len(), hidden]`.
    pub fn lookup(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        match self {
            Embedding::Tied(head) => match head.as_ref() {
                Linear::Quant(q) => q.dequantize_rows(ids),
                // `Llama::load` builds `Tied` only over our kernels' blocks.
                Linear::Candle(_) => Err(Error::unsupported(
                    "a tied embedding over a candle matmul (internal)",
                )),
            },
            Embedding::Dense(table) => {
                let ids = Tensor::from_slice(ids, ids.len(), device)?;
                Ok(table.index_select(&ids, 0)?)
            }
        }
    }

    /// Bytes one row reads.
    pub fn row_bytes(&self) -> usize {
        match self {
            Embedding::Tied(head) => match head.as_ref() {
                Linear::Quant(q) => q.bytes() / q.out_dim().max(1),
                Linear::Candle(_) => 0,
            },
            Embedding::Dense(t) => t.dim(1).unwrap_or(0) * t.dtype().size_in_bytes(),
        }
    }
}
