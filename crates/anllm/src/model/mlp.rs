//! The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.

use candle_core::Tensor;

use crate::Result;
use crate::config::LlamaConfig;
use crate::model::linear::{Linear, Projections};
use crate::weights::WeightSource;

/// Feed-forward weights of one layer.
#[derive(Debug, Clone)]
pub struct Mlp {
    gate_up_proj: Projections, // gate and up, [intermediate, hidden] each
    down_proj: Linear,         // [hidden, intermediate]
}

impl Mlp {
    /// Loads `{prefix}.gate_proj/up_proj/down_proj`.
    pub fn load(src: &mut WeightSource, prefix: &str, cfg: &LlamaConfig) -> Result<Self> {
        let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_up_proj: Projections::new(
                vec![
                    Linear::load(src, &format!("{prefix}.gate_proj.weight"), f, d)?,
                    Linear::load(src, &format!("{prefix}.up_proj.weight"), f, d)?,
                ],
                vec![f, f],
            )?,
            down_proj: Linear::load(src, &format!("{prefix}.down_proj.weight"), d, f)?,
        })
    }

    /// x: [t, hidden] -> [t, hidden]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [gate, up]: [Tensor; 2] = self
            .gate_up_proj
            .forward(x)?
            .try_into()
            .map_err(|_| crate::Error::unsupported("gate/up split"))?;
        let gate = candle_nn::ops::silu(&gate.contiguous()?)?;
        self.down_proj.forward(&(gate * up)?)
    }
}
