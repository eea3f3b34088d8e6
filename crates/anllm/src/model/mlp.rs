//! The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.

use candle_core::Tensor;

use crate::Result;
use crate::model::linear::Linear;
use crate::config::LlamaConfig;
use crate::weights::WeightSource;

/// Feed-forward weights of one layer.
#[derive(Debug, Clone)]
pub struct Mlp {
    gate_proj: Linear, // [intermediate, hidden]
    up_proj: Linear,   // [intermediate, hidden]
    down_proj: Linear, // [hidden, intermediate]
}

impl Mlp {
    /// Loads `{prefix}.gate_proj/up_proj/down_proj`.
    pub fn load(src: &mut WeightSource, prefix: &str, cfg: &LlamaConfig) -> Result<Self> {
        let (d, f) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: src.linear(&format!("{prefix}.gate_proj.weight"), f, d)?,
            up_proj: src.linear(&format!("{prefix}.up_proj.weight"), f, d)?,
            down_proj: src.linear(&format!("{prefix}.down_proj.weight"), d, f)?,
        })
    }

    /// x: [t, hidden] -> [t, hidden]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate_proj.forward(x)?)?;
        let up = self.up_proj.forward(x)?;
        Ok(self.down_proj.forward(&(gate * up)?)?)
    }
}
