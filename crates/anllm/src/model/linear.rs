//! A linear layer `y = x·Wᵀ` over whichever weight storage fits: candle's `QMatMul` (dense f32
//! or candle's quantized kernels) or our own CPU kernels for Q4_1 / Q8_0.

use candle_core::quantized::QMatMul;
use candle_core::{Device, Module, Tensor};

use super::quant::QuantMatrix;
use crate::Result;
use crate::weights::{LinearWeight, WeightSource};

/// Weight `[out, in]` of a linear layer.
#[derive(Debug, Clone)]
pub enum Linear {
    /// Dense, or quantized through candle.
    Candle(QMatMul),
    /// Quantized through our kernels ([`QuantMatrix`]).
    Quant(QuantMatrix),
}

impl Linear {
    /// The kernel for `w`: our own CPU kernels for Q4_1 / Q8_0, candle's for other quantized
    /// types and for dense weights.
    pub fn from_weight(w: LinearWeight, device: &Device) -> Result<Self> {
        match w {
            LinearWeight::Dense(t) => Ok(Linear::Candle(QMatMul::Tensor(t))),
            LinearWeight::Quantized(q) => {
                if device.is_cpu()
                    && let Some(m) = QuantMatrix::from_qtensor(&q)?
                {
                    return Ok(Linear::Quant(m));
                }
                Ok(Linear::Candle(QMatMul::from_arc(q)?))
            }
        }
    }

    /// Loads the weight `name` (`[out_dim, in_dim]`) from `src` and picks its kernel.
    pub fn load(src: &mut WeightSource, name: &str, out_dim: usize, in_dim: usize) -> Result<Self> {
        let device = src.device().clone();
        Self::from_weight(src.linear(name, out_dim, in_dim)?, &device)
    }

    /// Bytes of the weight in memory (what a decode step reads of it).
    pub fn bytes(&self) -> usize {
        let dense = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        match self {
            Linear::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => dense(t),
            Linear::Candle(QMatMul::QTensor(q)) => q.storage_size_in_bytes(),
            Linear::Quant(q) => q.bytes(),
        }
    }

    /// x: [t, in] -> [t, out]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Linear::Candle(w) => Ok(w.forward(x)?),
            Linear::Quant(w) => w.forward(x),
        }
    }
}

/// Several projections of the same input, run as one matmul when their storage allows (fused
/// QKV, fused gate/up): one pass over the activations and one thread dispatch instead of three.
#[derive(Debug, Clone)]
pub struct Projections {
    fused: Option<Linear>,
    parts: Vec<Linear>,
    widths: Vec<usize>,
}

impl Projections {
    /// Projections with output widths `widths`, fused when possible.
    pub fn new(parts: Vec<Linear>, widths: Vec<usize>) -> Result<Self> {
        let quant: Option<Vec<&QuantMatrix>> = parts
            .iter()
            .map(|p| match p {
                Linear::Quant(q) => Some(q),
                Linear::Candle(_) => None,
            })
            .collect();
        let dense: Option<Vec<Tensor>> = parts
            .iter()
            .map(|p| match p {
                Linear::Candle(QMatMul::Tensor(t)) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let fused = match (quant, dense) {
            (Some(q), _) => QuantMatrix::concat(&q).map(Linear::Quant),
            (_, Some(d)) => Some(Linear::Candle(QMatMul::Tensor(Tensor::cat(&d, 0)?))),
            _ => None,
        };
        let parts = if fused.is_some() { Vec::new() } else { parts };
        Ok(Self {
            fused,
            parts,
            widths,
        })
    }

    /// Bytes of the weights in memory.
    pub fn bytes(&self) -> usize {
        self.fused
            .iter()
            .chain(&self.parts)
            .map(Linear::bytes)
            .sum()
    }

    /// x: [t, in] -> one [t, width_i] per projection.
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let Some(fused) = &self.fused else {
            return self.parts.iter().map(|p| p.forward(x)).collect();
        };
        let y = fused.forward(x)?;
        let mut offset = 0;
        let mut outs = Vec::with_capacity(self.widths.len());
        for &w in &self.widths {
            outs.push(y.narrow(1, offset, w)?);
            offset += w;
        }
        Ok(outs)
    }
}
