//! The token embedding table. With a tied, quantized LM head (the GGUF models) the rows are
//! dequantized from the head's blocks at lookup, as llama.cpp's `get_rows` does: the same
//! values as a dequantized f32 table, without holding one (113 MB for SmolLM2-135M).

use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::linear::Linear;
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
