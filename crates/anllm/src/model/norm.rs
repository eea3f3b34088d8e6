//! RMSNorm with a learned scale.

use candle_core::Tensor;

use crate::Result;
use crate::weights::WeightSource;

/// `x / sqrt(mean(x^2) + eps) * weight`.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor, // [hidden]
    eps: f32,
}

impl RmsNorm {
    /// Loads `name` of width `dim`.
    pub fn load(src: &mut WeightSource, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: src.tensor(name, &[dim])?,
            eps: eps as f32,
        })
    }

    /// Bytes of the scale.
    pub fn bytes(&self) -> usize {
        self.weight.elem_count() * self.weight.dtype().size_in_bytes()
    }

    /// x: [t, hidden] -> [t, hidden]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            &self.weight,
            self.eps,
        )?)
    }
}
