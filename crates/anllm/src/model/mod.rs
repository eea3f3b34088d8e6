//! Our own Llama: RMSNorm, SwiGLU MLP, RoPE from the config, MHA/GQA, tied or separate LM head.
//!
//! The model is immutable; all per-session state lives in the [`KvCache`]. A forward step takes
//! explicit token positions and an explicit visibility, so the AnLLM mask plugs in without
//! touching the layers.

mod attend;
mod attention;
mod batch;
mod checks;
mod embedding;
mod kv_elem;
mod linear;
mod mass;
mod mlp;
mod norm;
mod quant;
mod rope;
mod stats;
mod step_mask;
mod tiled;

use std::sync::Arc;

use candle_core::{Device, Tensor};

use linear::Linear;

use crate::cache::{Cell, KvCache, KvDtype};
use crate::config::LlamaConfig;
use crate::config::RopeStyle;
use crate::mask::Mask;
use crate::weights::WeightSource;
use crate::{Pos, Result, TokenId};

pub(crate) use attend::MAX_ROWS;
pub use batch::BatchItem;

use attention::{Attention, StepContext};
use embedding::Embedding;
use mlp::Mlp;
use norm::RmsNorm;
pub use rope::RopeTable;
pub use stats::AttentionStats;

/// Which rows of logits a forward step returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputRows {
    /// Only the last new token (generation).
    Last,
    /// Every new token (scoring, evaluation).
    All,
    /// The new tokens from this index on (scoring a continuation).
    From(usize),
}

/// Who may attend to whom in one step.
#[derive(Debug, Clone, Copy)]
pub enum Visibility<'a> {
    /// Every cached entry plus the new tokens causally.
    Causal,
    /// An explicit grid `[new, cached + new]`.
    Mask(&'a Mask),
}

/// One cached forward step.
#[derive(Debug, Clone, Copy)]
pub struct ForwardInput<'a> {
    /// New tokens, in stream order.
    pub tokens: &'a [TokenId],
    /// Their RoPE positions (one per token).
    pub positions: &'a [Pos],
    /// Attention visibility.
    pub visibility: Visibility<'a>,
    /// Which logits to return.
    pub rows: OutputRows,
    /// Metadata recorded in the cache for the new tokens (segment, role, pin); `None` records
    /// ordinary tokens of the open segment at `positions`.
    pub cells: Option<&'a [Cell]>,
}

impl<'a> ForwardInput<'a> {
    /// Causal step over `tokens` at `positions`, returning `rows`.
    pub fn causal(tokens: &'a [TokenId], positions: &'a [Pos], rows: OutputRows) -> Self {
        Self {
            tokens,
            positions,
            visibility: Visibility::Causal,
            rows,
            cells: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Layer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

/// A loaded Llama model: immutable, `Send + Sync`, and cheap to clone (the weights are shared).
#[derive(Clone)]
pub struct Llama {
    cfg: LlamaConfig,
    embed_tokens: Embedding, // [vocab, hidden]
    layers: Arc<[Layer]>,
    norm: RmsNorm,
    lm_head: Arc<Linear>, // [vocab, hidden]
    rope: RopeTable,
    device: Device,
    kv_dtype: KvDtype,
    #[cfg(any(test, feature = "testutil"))]
    fault: Arc<std::sync::atomic::AtomicUsize>,
    #[cfg(any(test, feature = "testutil"))]
    dense_attention: bool,
}

// A server hands one model to many tasks: keep it shareable (checked at compile time).
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Llama>();
};

impl std::fmt::Debug for Llama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama")
            .field("layers", &self.cfg.num_hidden_layers)
            .field("hidden_size", &self.cfg.hidden_size)
            .field("heads", &self.cfg.num_attention_heads)
            .field("kv_heads", &self.cfg.kv_heads())
            .field("vocab_size", &self.cfg.vocab_size)
            .field("device", &self.device.location())
            .finish_non_exhaustive()
    }
}

impl Llama {
    /// Loads every weight of `cfg` from `src`.
    pub fn load(src: &mut WeightSource, cfg: &LlamaConfig, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let (d, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let (embed_tokens, lm_head) = Embedding::load_with_head(src, cfg)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            layers.push(Layer {
                input_layernorm: RmsNorm::load(
                    src,
                    &format!("{p}.input_layernorm.weight"),
                    d,
                    eps,
                )?,
                self_attn: Attention::load(src, &format!("{p}.self_attn"), cfg)?,
                post_attention_layernorm: RmsNorm::load(
                    src,
                    &format!("{p}.post_attention_layernorm.weight"),
                    d,
                    eps,
                )?,
                mlp: Mlp::load(src, &format!("{p}.mlp"), cfg)?,
            });
        }
        let style = src.rope_style();
        Ok(Self {
            norm: RmsNorm::load(src, "model.norm.weight", d, eps)?,
            rope: RopeTable::new(
                cfg.head_dim(),
                cfg.rope_theta,
                cfg.max_position_embeddings,
                style,
                device,
            )?,
            cfg: cfg.clone(),
            embed_tokens,
            layers: layers.into(),
            lm_head,
            device: device.clone(),
            kv_dtype: KvDtype::F32,
            #[cfg(any(test, feature = "testutil"))]
            fault: Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX)),
            #[cfg(any(test, feature = "testutil"))]
            dense_attention: false,
        })
    }

    /// The same model, whose new caches store keys and values as `dtype` (f32 by default).
    pub fn with_kv_dtype(mut self, dtype: KvDtype) -> Self {
        self.kv_dtype = dtype;
        self
    }

    /// Bytes of weights one decode step reads: every layer's projections and norms, the final
    /// norm, the LM head, and one row of the embedding table (the denominator of the
    /// memory-bandwidth share `anllm bench --bandwidth` reports; the KV read comes on top).
    pub fn decode_weight_bytes(&self) -> usize {
        let layers: usize = (self.layers.iter())
            .map(|l| {
                l.self_attn.bytes()
                    + l.mlp.bytes()
                    + l.input_layernorm.bytes()
                    + l.post_attention_layernorm.bytes()
            })
            .sum();
        layers + self.norm.bytes() + self.lm_head.bytes() + self.embed_tokens.row_bytes()
    }

    /// The element type of the caches [`Llama::new_cache`] makes.
    pub fn kv_dtype(&self) -> KvDtype {
        self.kv_dtype
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// RoPE layout of the loaded checkpoint.
    pub fn rope_style(&self) -> RopeStyle {
        self.rope.style()
    }

    /// A fresh cache sized for this model, of [`Llama::kv_dtype`] entries.
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        KvCache::with_dtype(&self.cfg, capacity, self.kv_dtype, &self.device)
    }

    /// Runs `input` after the entries already in `cache`, appends the new K/V and cells, and
    /// returns logits `[rows, vocab]` (f32). A step that fails leaves `cache` as it was.
    pub fn forward(&self, input: &ForwardInput, cache: &mut KvCache) -> Result<Tensor> {
        self.step(input, cache, None)
    }

    /// [`forward`](Self::forward), also returning the attention mass of the step's last `rows`
    /// queries (all of them for `None`) over every cached key, per layer (on CPU one extra pass
    /// over the keys per observed row; elsewhere the dense probability grid).
    pub fn forward_observed(
        &self,
        input: &ForwardInput,
        cache: &mut KvCache,
        rows: Option<usize>,
    ) -> Result<(Tensor, AttentionStats)> {
        let t = input.tokens.len();
        let rows = rows.unwrap_or(t).clamp(1, t.max(1));
        let mut stats = AttentionStats::new(rows, self.cfg.num_attention_heads);
        let logits = self.step(input, cache, Some(&mut stats))?;
        Ok((logits, stats))
    }

    fn step(
        &self,
        input: &ForwardInput,
        cache: &mut KvCache,
        stats: Option<&mut AttentionStats>,
    ) -> Result<Tensor> {
        let mark = cache.mark();
        let out = self.forward_step(input, cache, stats);
        if out.is_err() {
            cache.rollback(mark);
        }
        out
    }

    /// Makes the next forward steps fail after layer `layer` has appended its K/V (`None`:
    /// never), to test that a failed step leaves the cache as it was. Shared by clones.
    #[cfg(any(test, feature = "testutil"))]
    pub fn inject_fault_after_layer(&self, layer: Option<usize>) {
        let at = layer.unwrap_or(usize::MAX);
        self.fault.store(at, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(any(test, feature = "testutil"))]
    fn check_fault(&self, layer: usize) -> Result<()> {
        if self.fault.load(std::sync::atomic::Ordering::SeqCst) == layer {
            return Err(crate::Error::unsupported(format!(
                "injected fault after layer {layer}"
            )));
        }
        Ok(())
    }

    #[cfg(not(any(test, feature = "testutil")))]
    fn check_fault(&self, _layer: usize) -> Result<()> {
        Ok(())
    }

    /// The same model, whose attention always runs the dense batched-GEMM grid (the CPU
    /// kernels' oracle in tests).
    #[cfg(any(test, feature = "testutil"))]
    pub fn with_dense_attention(mut self) -> Self {
        self.dense_attention = true;
        self
    }

    #[cfg(any(test, feature = "testutil"))]
    fn dense_attention(&self) -> bool {
        self.dense_attention
    }

    #[cfg(not(any(test, feature = "testutil")))]
    fn dense_attention(&self) -> bool {
        false
    }

    fn forward_step(
        &self,
        input: &ForwardInput,
        cache: &mut KvCache,
        mut stats: Option<&mut AttentionStats>,
    ) -> Result<Tensor> {
        let t = self.check_input(input, cache)?;
        let mut x = self.embed_tokens.lookup(input.tokens, &self.device)?; // [t, hidden]
        let (cos, sin) = self.rope.gather(input.positions)?;
        let mask = self.additive_mask(input.visibility, cache.len(), t)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let own = self.layer_mask(mask.as_ref(), input.visibility, cache, i, t)?;
            let step = StepContext {
                rope: &self.rope,
                cos: &cos,
                sin: &sin,
                mask: own.as_ref().or(mask.as_ref()),
                observe: stats.as_ref().map(|s| s.queries()),
                dense: self.dense_attention(),
            };
            let h = layer.input_layernorm.forward(&x)?;
            let (h, mass) = layer.self_attn.forward(&h, cache.layer_mut(i), &step)?;
            self.check_fault(i)?;
            if let (Some(stats), Some(mass)) = (stats.as_deref_mut(), mass) {
                let lanes = cache.lanes();
                let cells: Option<Vec<&[u32]>> =
                    lanes.map(|h| (0..h.kv_heads()).map(|k| h.of(i, k)).collect());
                stats.push_layer_heads(mass, cells.as_deref(), cache.len() + t);
            }
            x = (x + h)?;
            let h = layer.post_attention_layernorm.forward(&x)?;
            x = (&x + layer.mlp.forward(&h)?)?;
        }
        let x = match input.rows {
            OutputRows::Last => x.narrow(0, t - 1, 1)?,
            OutputRows::All => x,
            OutputRows::From(i) => x.narrow(0, i, t - i)?,
        };
        let logits = self.lm_head.forward(&self.norm.forward(&x)?)?;
        self.push_cells(input, cache);
        Ok(logits)
    }

    /// Records the step's cells once every layer has its K/V.
    fn push_cells(&self, input: &ForwardInput, cache: &mut KvCache) {
        match input.cells {
            Some(cells) => cache.push_cells(cells),
            None => {
                let segment = cache.cells().open_segment();
                let cells: Vec<Cell> = (input.tokens.iter().zip(input.positions))
                    .map(|(&token, &pos)| Cell {
                        segment,
                        ..Cell::token(token, pos)
                    })
                    .collect();
                cache.push_cells(&cells);
            }
        }
    }
}
