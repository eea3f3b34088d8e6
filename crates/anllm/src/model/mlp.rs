//! The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.

use candle_core::Tensor;

use crate::config::LlamaConfig;
use crate::model::linear::{Linear, Projections};
use crate::weights::WeightSource;
use crate::{Error, Result};

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

    /// Bytes of the weights in memory.
    pub fn bytes(&self) -> usize {
        self.gate_up_proj.bytes() + self.down_proj.bytes()
    }

    /// x: [t, hidden] -> [t, hidden]
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // INVARIANT: `load` builds `gate_up_proj` from exactly two projections (gate, up), and
        // `Projections::forward` returns one tensor per projection, so this never fails; the
        // error only keeps a broken refactor from panicking.
        let parts = self.gate_up_proj.forward(x)?;
        debug_assert_eq!(parts.len(), 2, "gate/up projections");
        let [gate, up]: [Tensor; 2] = parts.try_into().map_err(|p: Vec<Tensor>| Error::Shape {
            op: "MLP gate/up projections (internal)".into(),
            expected: "2 outputs".into(),
            got: p.len().to_string(),
        })?;
        let gate = candle_nn::ops::silu(&gate.contiguous()?)?;
        self.down_proj.forward(&(gate * up)?)
    }
}
