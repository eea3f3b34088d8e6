//! The input of one training step ([`TrainBatch`]) and its validation, so that a bad batch is
//! an [`Error::Shape`] instead of a panic or an out-of-range gather.

use candle_core::{D, DType, Tensor};

use anllm::config::LlamaConfig;
use anllm::{Error, Result};

/// One batch on the device, already shifted: row `r` predicts `targets[r][i]` from
/// `inputs[r][..=i]`.
#[derive(Debug, Clone)]
pub struct TrainBatch {
    /// Input ids, u32 [b, t].
    pub inputs: Tensor,
    /// Target ids, u32 [b, t].
    pub targets: Tensor,
    /// f32 [b, t]: 1.0 where the target counts in the loss, else 0.0.
    pub weights: Tensor,
    /// RoPE positions, u32 [b, t].
    pub positions: Tensor,
    /// Additive mask, f32 [b, t, t]: 0 visible, [`anllm::mask::BLOCKED`] blocked (from
    /// [`anllm::mask::training_mask`]).
    pub mask: Tensor,
}

impl TrainBatch {
    /// Checks shapes, dtypes, ids (< vocab) and positions (< context); returns `(b, t)`.
    pub fn check(&self, cfg: &LlamaConfig) -> Result<(usize, usize)> {
        let (b, t) = self.check_shapes()?;
        for (name, tensor) in [
            ("inputs", &self.inputs),
            ("targets", &self.targets),
            ("positions", &self.positions),
        ] {
            if tensor.dtype() != DType::U32 {
                return Err(Error::Shape {
                    op: format!("training batch {name} dtype"),
                    expected: "u32".into(),
                    got: format!("{:?}", tensor.dtype()),
                });
            }
        }
        check_below(&self.inputs, "inputs", cfg.vocab_size)?;
        check_below(&self.targets, "targets", cfg.vocab_size)?;
        check_below(&self.positions, "positions", cfg.max_position_embeddings)?;
        Ok((b, t))
    }

    /// Checks that every tensor has the shape the inputs `[b, t]` (b, t > 0) imply.
    fn check_shapes(&self) -> Result<(usize, usize)> {
        let (b, t) = self
            .inputs
            .dims2()
            .map_err(|_| shape_err("inputs", "[b, t]", &self.inputs))?;
        let bt = format!("[{b}, {t}]");
        for (name, tensor, dims) in [
            ("targets", &self.targets, &[b, t][..]),
            ("weights", &self.weights, &[b, t][..]),
            ("positions", &self.positions, &[b, t][..]),
            ("mask", &self.mask, &[b, t, t][..]),
        ] {
            if tensor.dims() != dims {
                return Err(shape_err(
                    name,
                    &format!("{dims:?} (inputs are {bt})"),
                    tensor,
                ));
            }
        }
        if b == 0 || t == 0 {
            return Err(shape_err(
                "inputs",
                "at least one row and one position",
                &self.inputs,
            ));
        }
        Ok((b, t))
    }

    /// The flat indices (`row * t + position`) of the targets of non-zero weight, in order:
    /// the columns of [`super::TrainModel::distill_loss`]'s teacher.
    pub fn targeted_rows(&self) -> Result<Vec<u32>> {
        Ok(nonzero_rows(&self.loss_weights()?))
    }

    /// The loss weights on the host: finite, non-negative, with a positive sum.
    pub fn loss_weights(&self) -> Result<Vec<f32>> {
        let weights: Vec<f32> = self
            .weights
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || total <= 0.0 {
            return Err(Error::Shape {
                op: "training batch weights".into(),
                expected: "finite, non-negative, with a positive sum".into(),
                got: format!("sum {total}"),
            });
        }
        Ok(weights)
    }
}

fn shape_err(name: &str, expected: &str, got: &Tensor) -> Error {
    Error::Shape {
        op: format!("training batch {name}"),
        expected: expected.to_string(),
        got: format!("{:?}", got.dims()),
    }
}

/// Errors unless every value of the u32 tensor `t` is below `limit`.
fn check_below(t: &Tensor, name: &str, limit: usize) -> Result<()> {
    let max = t.flatten_all()?.max(D::Minus1)?.to_scalar::<u32>()? as usize;
    if max >= limit {
        return Err(Error::Shape {
            op: format!("training batch {name}"),
            expected: format!("values < {limit}"),
            got: max.to_string(),
        });
    }
    Ok(())
}

/// The indices of the non-zero `weights`, in order.
pub(super) fn nonzero_rows(weights: &[f32]) -> Vec<u32> {
    (0u32..)
        .zip(weights)
        .filter(|(_, w)| **w != 0.0)
        .map(|(i, _)| i)
        .collect()
}
