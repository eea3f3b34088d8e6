//! Multi-head / grouped-query self-attention over the KV cache with an explicit visibility.
//!
//! Grouped-query attention never copies K/V per query head: the query heads of one KV group
//! are stacked along the row axis, `q: [kv_heads, groups * t, head_dim]`, so one batched matmul
//! per KV head serves the whole group.

use candle_core::Tensor;

use crate::cache::LayerStore;
use crate::config::LlamaConfig;
use crate::model::attend;
use crate::model::linear::{Linear, Projections};
use crate::model::rope::RopeTable;
use crate::weights::WeightSource;
use crate::{Error, Result};

/// Attention weights of one layer.
#[derive(Debug, Clone)]
pub struct Attention {
    qkv_proj: Projections, // q [heads * head_dim, hidden], k and v [kv_heads * head_dim, hidden]
    o_proj: Linear,        // [hidden, heads * head_dim]
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

/// Per-step inputs shared by every layer.
pub struct StepContext<'a> {
    /// RoPE table of the model.
    pub rope: &'a RopeTable,
    /// cos rows for the new tokens: [t, head_dim / 2].
    pub cos: &'a Tensor,
    /// sin rows for the new tokens: [t, head_dim / 2].
    pub sin: &'a Tensor,
    /// Additive mask [t, cached + t], or None when every key is visible to every row.
    pub mask: Option<&'a Tensor>,
    /// `Some(r)`: return the attention mass per key ([`super::AttentionStats`]) of the step's
    /// last `r` query rows (all rows when `r` is at least the step's length).
    pub observe: Option<usize>,
    /// Run the dense batched-GEMM grid even on CPU (the kernels' oracle in tests).
    pub dense: bool,
}

impl Attention {
    /// Loads `{prefix}.q_proj/k_proj/v_proj/o_proj`.
    pub fn load(src: &mut WeightSource, prefix: &str, cfg: &LlamaConfig) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.kv_heads());
        Ok(Self {
            qkv_proj: Projections::new(
                vec![
                    Linear::load(src, &format!("{prefix}.q_proj.weight"), heads * hd, d)?,
                    Linear::load(src, &format!("{prefix}.k_proj.weight"), kv_heads * hd, d)?,
                    Linear::load(src, &format!("{prefix}.v_proj.weight"), kv_heads * hd, d)?,
                ],
                vec![heads * hd, kv_heads * hd, kv_heads * hd],
            )?,
            o_proj: Linear::load(src, &format!("{prefix}.o_proj.weight"), d, heads * hd)?,
            heads,
            kv_heads,
            head_dim: hd,
        })
    }

    /// x: [t, hidden] -> [t, hidden]; appends this step's K/V to `store` first. With
    /// `step.observe`, also the attention mass per KV head and entry, summed over the group's
    /// query heads and the observed rows.
    pub fn forward(
        &self,
        x: &Tensor,
        store: &mut LayerStore,
        step: &StepContext,
    ) -> Result<(Tensor, Option<Vec<Vec<f32>>>)> {
        let (q, k, v) = self.project(x)?;
        let (out, mass) = self.attend_rows(&q, &k, &v, store, step)?;
        Ok((self.output(&out)?, mass))
    }

    /// Bytes of the weights in memory.
    pub fn bytes(&self) -> usize {
        self.qkv_proj.bytes() + self.o_proj.bytes()
    }

    /// The q, k, v projections of every row: x [t, hidden] -> ([t, heads * hd], [t, kv_heads *
    /// hd], [t, kv_heads * hd]). Rows of several sequences may be stacked (batched decode).
    pub fn project(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        // INVARIANT: `load` builds `qkv_proj` from exactly three projections (q, k, v), and
        // `Projections::forward` returns one tensor per projection, so this never fails; the
        // error only keeps a broken refactor from panicking.
        let parts = self.qkv_proj.forward(x)?;
        debug_assert_eq!(parts.len(), 3, "q/k/v projections");
        let [q, k, v]: [Tensor; 3] = parts.try_into().map_err(|p: Vec<Tensor>| Error::Shape {
            op: "attention q/k/v projections (internal)".into(),
            expected: "3 outputs".into(),
            got: p.len().to_string(),
        })?;
        Ok((q, k, v))
    }

    /// The output projection: [t, heads * hd] -> [t, hidden].
    pub fn output(&self, out: &Tensor) -> Result<Tensor> {
        self.o_proj.forward(out)
    }

    /// Attention of one sequence's new rows (projected q, k, v) over its cache, appending its
    /// K/V to `store` first: [t, heads * hd] before the output projection.
    pub fn attend_rows(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        store: &mut LayerStore,
        step: &StepContext,
    ) -> Result<(Tensor, Option<Vec<Vec<f32>>>)> {
        let t = q.dim(0)?;
        let (hd, groups) = (self.head_dim, self.heads / self.kv_heads);
        let split = |y: &Tensor, h: usize| -> Result<Tensor> {
            // [t, h * hd] -> [1, h, t, hd]
            Ok(y.reshape((t, h, hd))?.transpose(0, 1)?.unsqueeze(0)?)
        };
        let (q, k, v) = (
            split(q, self.heads)?,
            split(k, self.kv_heads)?,
            split(v, self.kv_heads)?,
        );
        let q = step.rope.apply(&q, step.cos, step.sin)?;
        let k = step.rope.apply(&k, step.cos, step.sin)?;
        store.append(&k.squeeze(0)?, &v.squeeze(0)?)?;
        let q = q.reshape((self.kv_heads, groups * t, hd))?;
        let (out, mass) = if q.device().is_cpu() && !step.dense {
            attend::attend(&q, store, step.mask, t, step.observe)?
        } else {
            let (out, probs) = self.attend_gemm(&q, store, step.mask, t)?;
            let mass = match step.observe {
                // [kv_heads, groups * t, n] -> the last `rows` of each head -> [kv_heads, n]
                Some(rows) => {
                    let (rows, n) = (rows.clamp(1, t), probs.dim(2)?);
                    let tail =
                        probs
                            .reshape((self.kv_heads, groups, t, n))?
                            .narrow(2, t - rows, rows)?;
                    Some(tail.sum((1, 2))?.to_vec2()?)
                }
                None => None,
            };
            (out, mass)
        };
        let out = out
            .reshape((self.heads, t, hd))?
            .transpose(0, 1)?
            .reshape((t, self.heads * hd))?;
        Ok((out, mass))
    }

    /// Batched-GEMM attention (non-CPU devices; the CPU kernels' oracle in tests).
    /// q: [kv_heads, groups * t, hd] -> ([kv_heads, groups * t, hd], probs [kv_heads, groups * t, n])
    fn attend_gemm(
        &self,
        q: &Tensor,
        store: &LayerStore,
        mask: Option<&Tensor>,
        t: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (hd, groups) = (self.head_dim, self.heads / self.kv_heads);
        let (k_all, v_all) = store.view_f32()?; // [kv_heads, n, hd]
        let n = k_all.dim(1)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut scores = (q.matmul(&k_all.t()?)? * scale)?; // [kv_heads, groups * t, n]
        if let Some(mask) = mask {
            scores = scores
                .reshape((self.kv_heads, groups, t, n))?
                .broadcast_add(mask)?
                .reshape((self.kv_heads, groups * t, n))?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        Ok((probs.matmul(&v_all)?, probs))
    }
}
