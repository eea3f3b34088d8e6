//! Our own Llama: RMSNorm, SwiGLU MLP, RoPE from the config, MHA/GQA, tied or separate LM head.
//!
//! The model is immutable; all per-session state lives in the [`KvCache`]. A forward step takes
//! explicit token positions and an explicit visibility, so the AnLLM mask plugs in without
//! touching the layers.

mod attend;
mod attention;
pub mod linear;
mod mlp;
mod norm;
pub mod quant;
pub mod rope;

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::quantized::QMatMul;
use candle_core::{Device, Tensor};

use linear::Linear;

use crate::cache::{Cell, KvCache};
use crate::config::LlamaConfig;
use crate::mask::Mask;
use crate::weights::{RopeStyle, WeightSource};
use crate::{Error, Pos, Result, TokenId};

use attention::{Attention, StepContext};
use mlp::Mlp;
use norm::RmsNorm;
use rope::RopeTable;

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

/// A loaded Llama model.
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: LlamaConfig,
    embed_tokens: Tensor, // [vocab, hidden]
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Linear, // [vocab, hidden]
    rope: RopeTable,
    device: Device,
}

impl Llama {
    /// Loads every weight of `cfg` from `src`.
    pub fn load(src: &mut WeightSource, cfg: &LlamaConfig, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let (v, d, eps) = (cfg.vocab_size, cfg.hidden_size, cfg.rms_norm_eps);
        let embed_tokens = src.tensor("model.embed_tokens.weight", &[v, d])?;
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
        let lm_head = if cfg.tie_word_embeddings {
            // The tied head runs on f32 activations (Q8_0 kernel or the f32 table), so the
            // logits match a dequantized model; quantizing activations here cost 0.06 nats.
            match src.linear("model.embed_tokens.weight", v, d)? {
                Linear::Quant(q) => Linear::Quant(q),
                Linear::Candle(_) => Linear::Candle(QMatMul::Tensor(embed_tokens.clone())),
            }
        } else {
            src.linear("lm_head.weight", v, d)?
        };
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
            layers,
            lm_head,
            device: device.clone(),
        })
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

    /// A fresh cache sized for this model.
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        KvCache::new(&self.cfg, capacity, &self.device)
    }

    /// Runs `input` after the entries already in `cache`, appends the new K/V and cells, and
    /// returns logits `[rows, vocab]` (f32).
    pub fn forward(&self, input: &ForwardInput, cache: &mut KvCache) -> Result<Tensor> {
        // Run the step on a rayon worker: the kernels' parallel loops then start by work
        // stealing instead of waking the pool from outside (a futex round trip per matmul).
        // In short (decode) steps the other workers stay awake meanwhile, taking the step's
        // parallel work as it comes, instead of falling asleep between two small matmuls and
        // being woken for each (measured: +15–35% decode tok/s on 2 threads). Long (prefill)
        // steps are GEMM-bound and ran 10% slower with it, so they go without.
        let done = AtomicBool::new(false);
        // Spinning only pays with a core per worker; an oversubscribed pool goes without.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let helpers = match rayon::current_num_threads() {
            n if n <= cores && input.tokens.len() <= attend::MAX_ROWS => n,
            _ => 1,
        };
        rayon::scope(|s| {
            let (owner, done) = (rayon::current_thread_index(), &done);
            for _ in 1..helpers {
                s.spawn(move |_| keep_warm(done, owner));
            }
            let out = self.forward_step(input, cache);
            done.store(true, Ordering::Release);
            out
        })
    }

    fn forward_step(&self, input: &ForwardInput, cache: &mut KvCache) -> Result<Tensor> {
        let t = self.check_input(input, cache)?;
        let ids = Tensor::from_slice(input.tokens, t, &self.device)?;
        let mut x = self.embed_tokens.index_select(&ids, 0)?; // [t, hidden]
        let (cos, sin) = self.rope.gather(input.positions)?;
        let mask = match input.visibility {
            Visibility::Causal if t == 1 => None,
            Visibility::Causal => Some(Mask::causal(cache.len(), t).to_additive(&self.device)?),
            Visibility::Mask(m) => Some(m.to_additive(&self.device)?),
        };
        let step = StepContext {
            rope: &self.rope,
            cos: &cos,
            sin: &sin,
            mask: mask.as_ref(),
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.input_layernorm.forward(&x)?;
            let h = layer.self_attn.forward(&h, cache.layer_mut(i), &step)?;
            x = (x + h)?;
            let h = layer.post_attention_layernorm.forward(&x)?;
            x = (&x + layer.mlp.forward(&h)?)?;
        }
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
        let x = match input.rows {
            OutputRows::Last => x.narrow(0, t - 1, 1)?,
            OutputRows::All => x,
            OutputRows::From(i) => x.narrow(0, i, t - i)?,
        };
        self.lm_head.forward(&self.norm.forward(&x)?)
    }

    fn check_input(&self, input: &ForwardInput, cache: &KvCache) -> Result<usize> {
        let t = input.tokens.len();
        let shape_err = |op: &str, expected: String, got: String| Error::Shape {
            op: op.to_string(),
            expected,
            got,
        };
        if let Some(cells) = input.cells
            && cells.len() != t
        {
            return Err(shape_err(
                "forward cells",
                format!("{t} cells"),
                cells.len().to_string(),
            ));
        }
        if t == 0 || input.positions.len() != t {
            return Err(shape_err(
                "forward positions",
                format!("{t} positions for {t} (>0) tokens"),
                input.positions.len().to_string(),
            ));
        }
        if let Some(&bad) = input
            .tokens
            .iter()
            .find(|&&id| id as usize >= self.cfg.vocab_size)
        {
            return Err(shape_err(
                "forward token id",
                format!("< {}", self.cfg.vocab_size),
                bad.to_string(),
            ));
        }
        if let OutputRows::From(i) = input.rows
            && i >= t
        {
            return Err(shape_err("output rows", format!("< {t}"), i.to_string()));
        }
        if let Visibility::Mask(m) = input.visibility
            && (m.rows() != t || m.cols() != cache.len() + t)
        {
            return Err(shape_err(
                "visibility mask",
                format!("[{t}, {}]", cache.len() + t),
                format!("[{}, {}]", m.rows(), m.cols()),
            ));
        }
        let capacity = self.cfg.max_position_embeddings;
        if let Some(last) = input.positions.iter().map(|p| p.0 as usize).max()
            && last >= capacity
        {
            return Err(Error::ContextFull {
                used: cache.next_pos().0 as usize,
                requested: t,
                capacity,
            });
        }
        Ok(t)
    }
}

/// Longest a worker keeps itself awake for one step. The bound also makes the scheme safe: a
/// worker that picked this job up while inside a task the step waits for gives up and lets
/// that task finish.
const MAX_KEEP_WARM: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs the pool's pending work until `done` (or [`MAX_KEEP_WARM`]), spinning in between.
/// Returns at once on the thread that runs the step (`owner`), which may pick this job up
/// while it waits for its own.
fn keep_warm(done: &AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner {
        return;
    }
    let start = std::time::Instant::now();
    let mut rounds = 0u32;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
        rounds = rounds.wrapping_add(1);
        if rounds.is_multiple_of(256) && start.elapsed() > MAX_KEEP_WARM {
            return;
        }
    }
}
