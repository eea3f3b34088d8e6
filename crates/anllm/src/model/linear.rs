//! A linear layer `y = x·Wᵀ` over whichever weight storage fits: candle's `QMatMul` (dense f32
//! or candle's quantized kernels) or our own CPU kernels for Q4_1 / Q8_0.

use candle_core::quantized::QMatMul;
use candle_core::{Module, Tensor};

use super::quant::QuantMatrix;
use crate::Result;

/// Weight `[out, in]` of a linear layer.
#[derive(Debug, Clone)]
pub enum Linear {
    /// Dense, or quantized through candle.
    Candle(QMatMul),
    /// Quantized through our kernels ([`QuantMatrix`]).
    Quant(QuantMatrix),
}

impl Linear {
    /// x: [t, in] -> [t, out]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Candle(w) => Ok(w.forward(x)?),
            Linear::Quant(w) => w.forward(x),
        }
    }
}
