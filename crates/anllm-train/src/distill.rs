//! The teacher of `anllm train --distill`: the frozen starting model, run by the inference
//! engine ([`anllm::Llama`], no autograd, its own quantized kernels) with full causal attention
//! over each document piece of a row, exactly as the student sees the piece (positions from
//! 0, nothing across documents). Its next-token distributions are the soft targets of
//! [`TrainModel::distill_loss`](crate::model::TrainModel::distill_loss).

use candle_core::{D, Device, Tensor};

use crate::data::{Batch, Example};
use anllm::model::{ForwardInput, OutputRows};
use anllm::token::Pos;
use anllm::{Error, Llama, Result};

/// A frozen teacher and the weight of its KL term.
#[derive(Debug, Clone)]
pub struct Teacher {
    model: Llama,
    alpha: f64,
}

impl Teacher {
    /// A teacher whose KL term has weight `alpha` (the cross-entropy on the data gets
    /// `1 − alpha`); `alpha` in `[0, 1]`.
    pub fn new(model: Llama, alpha: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::config(
                "distill-alpha",
                format!("{alpha} is not in [0, 1]"),
            ));
        }
        Ok(Self { model, alpha })
    }

    /// The weight of the KL term.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The teacher model.
    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// The teacher's next-token probabilities `[vocab, n]` (f32, on `device`) of the `n`
    /// targets of `batch` that count, in the order of
    /// [`TrainBatch::targeted_rows`](crate::model::TrainBatch::targeted_rows).
    pub fn soft_targets(&self, batch: &Batch, device: &Device) -> Result<Tensor> {
        let mut cols = Vec::new();
        for row in &batch.examples {
            self.row_targets(row, &mut cols)?;
        }
        if cols.is_empty() {
            return Err(Error::config("data", "a batch without prediction targets"));
        }
        let probs = Tensor::cat(&cols, 0)?; // [n, vocab]
        Ok(probs.t()?.contiguous()?.to_device(device)?)
    }

    /// Appends the probabilities of the targets of one row (inputs `tokens[..len-1]`, targets
    /// where `loss_mask[1..]` is set), one forward per document piece.
    fn row_targets(&self, row: &Example, out: &mut Vec<Tensor>) -> Result<()> {
        let t = row.len().saturating_sub(1);
        let mut start = 0;
        while start < t {
            let doc = row.doc[start];
            let end = (start..t).find(|&i| row.doc[i] != doc).unwrap_or(t);
            let wanted: Vec<u32> = (start..end)
                .filter(|&i| row.loss_mask[i + 1])
                .map(|i| (i - start) as u32)
                .collect();
            if doc != Example::PAD_DOC && !wanted.is_empty() {
                out.push(self.piece_probs(&row.tokens[start..end], &wanted)?);
            }
            start = end;
        }
        Ok(())
    }

    /// Softmax rows `wanted` of the teacher's logits over `tokens` (a fresh cache, positions 0..).
    fn piece_probs(&self, tokens: &[u32], wanted: &[u32]) -> Result<Tensor> {
        let positions: Vec<Pos> = (0..tokens.len() as u32).map(Pos).collect();
        let mut cache = self.model.new_cache(tokens.len())?;
        let input = ForwardInput::causal(tokens, &positions, OutputRows::All);
        let logits = self.model.forward(&input, &mut cache)?; // [len, vocab]
        let ids = Tensor::from_vec(wanted.to_vec(), wanted.len(), logits.device())?;
        let picked = logits.index_select(&ids, 0)?;
        Ok(candle_nn::ops::softmax(&picked, D::Minus1)?)
    }
}
