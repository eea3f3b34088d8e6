//! The differentiable Llama of training: the same network as [`anllm::model::Llama`], its
//! parameters held as candle [`Var`]s under their HF names, run over a batch of rows with an
//! explicit additive mask per row (the AnSAN mask of spec §2, from [`anllm::mask`]).
//!
//! Invariants:
//! * Only ops with a backward pass run on the forward ([`ops`]); every parameter receives a
//!   gradient (tested in `tests/train_grad/`).
//! * The model always runs the HF layout (half rotation). GGUF Q/K rows, permuted for
//!   llama.cpp's interleaved RoPE, are un-permuted on loading, so [`TrainModel::tensors`] is
//!   always an HF checkpoint.
//! * Tied embeddings are one [`Var`], used by the embedding and the LM head.
//!
//! Speed (CPU, f32): every linear layer is one 2-D matmul over all `b * t` rows; attention is
//! one batched matmul per KV head for scores and one for values (no K/V copy per query head);
//! [`TrainModel::loss`] runs the final norm and the LM head only on rows whose target counts;
//! on the CPU the cross-entropy ([`fused`]), the masked attention softmax ([`fused_attn`]),
//! RMSNorm, RoPE and SwiGLU ([`fused_layer`]) are fused kernels with their own backward. The
//! matmuls take most of the remaining time; PyTorch is compared in `docs/benchmarks.md`.
//! `model_timing_tiny_256` in `tests/train_grad/timing.rs` times the forward and backward.

pub mod distill;
pub mod fused;
pub mod fused_attn;
pub mod fused_layer;
mod input;
pub mod ops;
pub mod params;

pub use fused::Kernels;
pub use input::TrainBatch;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};

use anllm::config::LlamaConfig;
use anllm::config::RopeStyle;
use anllm::weights::WeightSource;
use anllm::{Error, Result};

use params::{NormalRng, ParamSpec, init_tensor, param_specs, rope_heads, rope_tables};

/// The rows of a batch whose target counts in the loss.
struct Targeted {
    hidden: Tensor,  // [n, hidden]
    targets: Tensor, // u32 [n]
    weights: Tensor, // [n]
    total: f64,      // sum of all the batch's weights
}

/// Weights of one decoder layer.
#[derive(Debug, Clone)]
struct LayerVars {
    input_layernorm: Var,          // [hidden]
    q_proj: Var,                   // [heads * head_dim, hidden]
    k_proj: Var,                   // [kv_heads * head_dim, hidden]
    v_proj: Var,                   // [kv_heads * head_dim, hidden]
    o_proj: Var,                   // [hidden, heads * head_dim]
    post_attention_layernorm: Var, // [hidden]
    gate_proj: Var,                // [intermediate, hidden]
    up_proj: Var,                  // [intermediate, hidden]
    down_proj: Var,                // [hidden, intermediate]
}

/// The trainable Llama. A clone shares the parameters (a [`Var`] is reference-counted); use
/// [`TrainModel::from_tensors`] with [`TrainModel::tensors`] for an independent copy.
#[derive(Debug, Clone)]
pub struct TrainModel {
    cfg: LlamaConfig,
    vars: Vec<(String, Var)>,
    embed_tokens: Var, // [vocab, hidden]
    layers: Vec<LayerVars>,
    norm: Var,    // [hidden]
    lm_head: Var, // [vocab, hidden]; the embedding's Var when tied
    cos: Tensor,  // [max_pos, head_dim]: [c, c]
    sin: Tensor,  // [max_pos, head_dim]: [-s, s]
    dtype: DType,
    device: Device,
    kernels: Kernels,
}

impl TrainModel {
    /// A freshly initialized model, as HF's `_init_weights`: normal(0, 0.02) for the
    /// embedding and linear weights, ones for the norms; the same `seed` gives the same
    /// weights. (HF also zeroes the embedding row of `pad_token_id`; the config has no pad id.)
    pub fn init(cfg: &LlamaConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut rng = NormalRng::new(seed);
        let tensors = param_specs(cfg)
            .into_iter()
            .map(|spec| Ok((init_tensor(&spec, &mut rng)?, spec)))
            .collect::<Result<Vec<_>>>()?;
        Self::build(cfg, tensors, dtype, device)
    }

    /// A model from tensors under their HF names (extra names are ignored; `lm_head.weight` is
    /// not read when the embeddings are tied). The values are copied.
    pub fn from_tensors(
        cfg: &LlamaConfig,
        mut tensors: HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let ordered = param_specs(cfg)
            .into_iter()
            .map(|spec| {
                let t = tensors
                    .remove(&spec.name)
                    .ok_or_else(|| Error::MissingTensor {
                        name: spec.name.clone(),
                        path: PathBuf::from("(tensors given to TrainModel::from_tensors)"),
                    })?;
                Ok((t, spec))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::build(cfg, ordered, dtype, device)
    }

    /// A model from any checkpoint we load (HF directory, GGUF, quantized GGUF dequantized to
    /// f32), in f32 on `device`. GGUF Q/K rows are un-permuted to the HF layout.
    pub fn from_source(src: &mut WeightSource, cfg: &LlamaConfig, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let interleaved = src.rope_style() == RopeStyle::Interleaved;
        let ordered = param_specs(cfg)
            .into_iter()
            .map(|spec| {
                let t = src.tensor(&spec.name, &spec.shape)?;
                let t = match rope_heads(&spec.name, cfg) {
                    Some(heads) if interleaved => params::unpermute_interleaved(&t, heads)?,
                    _ => t,
                };
                Ok((t, spec))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::build(cfg, ordered, DType::F32, device)
    }

    /// Checks shapes, converts, and wraps every tensor in a [`Var`] (a fresh copy).
    fn build(
        cfg: &LlamaConfig,
        tensors: Vec<(Tensor, ParamSpec)>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if !matches!(dtype, DType::F32 | DType::F64 | DType::BF16) {
            return Err(Error::unsupported(format!(
                "training in {dtype:?} (f32, f64 or bf16; the additive mask needs their range)"
            )));
        }
        let mut vars = Vec::with_capacity(tensors.len());
        for (t, spec) in tensors {
            if t.dims() != spec.shape.as_slice() {
                return Err(Error::Shape {
                    op: format!("tensor `{}`", spec.name),
                    expected: format!("{:?}", spec.shape),
                    got: format!("{:?}", t.dims()),
                });
            }
            // `detach` first: a tensor that is already a Var would otherwise be shared.
            let t = t.detach().to_device(device)?.to_dtype(dtype)?;
            vars.push((spec.name, Var::from_tensor(&t.detach())?));
        }
        let (cos, sin) = rope_tables(cfg, dtype, device)?;
        let mut by_name: HashMap<&str, &Var> = vars.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let mut take = |name: &str| -> Result<Var> {
            by_name
                .remove(name)
                .cloned()
                .ok_or_else(|| Error::MissingTensor {
                    name: name.to_string(),
                    path: PathBuf::from("(parameter list)"),
                })
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| layer_vars(&mut take, &format!("model.layers.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let embed_tokens = take("model.embed_tokens.weight")?;
        let lm_head = match cfg.tie_word_embeddings {
            true => embed_tokens.clone(),
            false => take("lm_head.weight")?,
        };
        let norm = take("model.norm.weight")?;
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            cos,
            sin,
            vars,
            dtype,
            device: device.clone(),
            kernels: Kernels::default(),
        })
    }

    /// The same model running `kernels` (default [`Kernels::Fused`]).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// The kernels the model asks for (the composed ops run where the fused ones do not apply).
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The parameters' dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The trainable parameters under their HF names, in checkpoint order; no
    /// `lm_head.weight` when the embeddings are tied.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The parameters as tensors under their HF names (HF layout, for saving a checkpoint).
    /// They share storage with the [`Var`]s: an optimizer step changes them too.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect()
    }

    /// Logits [b, t, vocab] of every row and position.
    pub fn forward(&self, batch: &TrainBatch) -> Result<Tensor> {
        let (b, t) = batch.check(&self.cfg)?;
        let logits = self.head(&self.hidden(batch, b, t)?)?;
        Ok(logits.reshape((b, t, self.cfg.vocab_size))?)
    }

    /// Mean cross-entropy (a scalar): the sum over targets of `weight · CE` divided by the sum
    /// of the weights. The final norm and the LM head run only on rows of non-zero weight.
    pub fn loss(&self, batch: &TrainBatch) -> Result<Tensor> {
        let sel = self.targeted(batch)?;
        let ce = self.head_loss(&sel.hidden, &sel.targets)?;
        Ok(((ce * sel.weights)?.sum_all()? / sel.total)?)
    }

    /// Mean distillation loss (a scalar) over the targets of `batch`: per target,
    /// `alpha · KL(teacher ‖ student) + (1 − alpha) · CE` ([`distill::distill_cols`]), weighted
    /// as in [`TrainModel::loss`]. `teacher_t: [vocab, n]` holds the teacher's next-token
    /// probabilities of the `n` targets of non-zero weight, in row-major order
    /// ([`TrainBatch::targeted_rows`]).
    pub fn distill_loss(
        &self,
        batch: &TrainBatch,
        teacher_t: &Tensor,
        alpha: f64,
    ) -> Result<Tensor> {
        let sel = self.targeted(batch)?;
        let x = ops::rms_norm(&sel.hidden, &self.norm, self.cfg.rms_norm_eps, self.kernels)?;
        let teacher_t = teacher_t.to_dtype(self.dtype)?.to_device(&self.device)?;
        let per = match self.kernels.resolve(&x) {
            Kernels::Fused => {
                let logits_t = self.lm_head.as_tensor().matmul(&x.t()?)?;
                let targets = sel.targets.to_vec1::<u32>()?;
                distill::distill_cols(&logits_t, &teacher_t, &targets, alpha)?
            }
            Kernels::Composed => {
                let logits = ops::linear(&x, &self.lm_head)?;
                ops::distill(&logits, &teacher_t.t()?, &sel.targets, alpha)?
            }
        };
        Ok(((per * sel.weights)?.sum_all()? / sel.total)?)
    }

    /// The residual stream, targets and weights of the rows whose target counts.
    fn targeted(&self, batch: &TrainBatch) -> Result<Targeted> {
        let (b, t) = batch.check(&self.cfg)?;
        let weights = batch.loss_weights()?;
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let hidden = self.hidden(batch, b, t)?; // [b * t, hidden]
        let targets = batch.targets.flatten_all()?;
        let weights_t = batch.weights.flatten_all()?.to_dtype(self.dtype)?;
        let rows = input::nonzero_rows(&weights); // = batch.targeted_rows(), already checked
        if rows.len() == weights.len() {
            return Ok(Targeted {
                hidden,
                targets,
                weights: weights_t,
                total,
            });
        }
        let n = rows.len();
        let ids = Tensor::from_vec(rows, n, &self.device)?;
        Ok(Targeted {
            hidden: hidden.index_select(&ids, 0)?,
            targets: targets.index_select(&ids, 0)?,
            weights: weights_t.index_select(&ids, 0)?,
            total,
        })
    }

    /// Embedding and decoder layers: the residual stream [b * t, hidden] before the final norm.
    fn hidden(&self, batch: &TrainBatch, b: usize, t: usize) -> Result<Tensor> {
        let ids = batch.inputs.flatten_all()?;
        let mut x = self.embed_tokens.as_tensor().index_select(&ids, 0)?;
        let pos = batch.positions.flatten_all()?;
        let hd = self.cfg.head_dim();
        let cos = self.cos.index_select(&pos, 0)?.reshape((b, t, 1, hd))?;
        let sin = self.sin.index_select(&pos, 0)?.reshape((b, t, 1, hd))?;
        let mask = batch.mask.to_dtype(self.dtype)?;
        let (eps, k) = (self.cfg.rms_norm_eps, self.kernels);
        for layer in &self.layers {
            let h = ops::rms_norm(&x, &layer.input_layernorm, eps, k)?;
            let h = self.self_attn(&h, layer, (&cos, &sin), &mask, (b, t))?;
            x = (x + h)?;
            let h = ops::rms_norm(&x, &layer.post_attention_layernorm, eps, k)?;
            x = (&x + ops::mlp(&h, (&layer.gate_proj, &layer.up_proj, &layer.down_proj), k)?)?;
        }
        Ok(x)
    }

    /// Self-attention of one layer. x: [b * t, hidden] -> [b * t, hidden]; cos/sin:
    /// [b, t, 1, head_dim]; mask: [b, t, t].
    fn self_attn(
        &self,
        x: &Tensor,
        layer: &LayerVars,
        (cos, sin): (&Tensor, &Tensor),
        mask: &Tensor,
        (b, t): (usize, usize),
    ) -> Result<Tensor> {
        let hd = self.cfg.head_dim();
        let (heads, kv_heads) = (self.cfg.num_attention_heads, self.cfg.kv_heads());
        // [b * t, h * hd] -> [b, t, h, hd]: a view; RoPE runs on it, then heads go first.
        let split = |y: Tensor, h: usize| y.reshape((b, t, h, hd));
        let q = ops::rope(
            &split(ops::linear(x, &layer.q_proj)?, heads)?,
            cos,
            sin,
            self.kernels,
        )?;
        let k = ops::rope(
            &split(ops::linear(x, &layer.k_proj)?, kv_heads)?,
            cos,
            sin,
            self.kernels,
        )?;
        let v = split(ops::linear(x, &layer.v_proj)?, kv_heads)?;
        let out = ops::attention(
            &q.transpose(1, 2)?,
            &k.transpose(1, 2)?,
            &v.transpose(1, 2)?,
            mask,
            self.kernels,
        )?; // [b, heads, t, hd]
        let out = out.transpose(1, 2)?.reshape((b * t, heads * hd))?;
        ops::linear(&out, &layer.o_proj)
    }

    /// Cross-entropy [n] of the final norm and LM head on `x: [n, hidden]` against `targets`
    /// (u32 [n]). The fused path computes the logits transposed, `[vocab, n] = W·xᵀ`, so the
    /// head's weight gradient `dlogitsᵀ·x` lands in its `[vocab, hidden]` layout directly
    /// (measured: accumulating the transposed gradient of `x·Wᵀ` took 30 ms instead of 10).
    fn head_loss(&self, x: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let x = ops::rms_norm(x, &self.norm, self.cfg.rms_norm_eps, self.kernels)?;
        match self.kernels.resolve(&x) {
            Kernels::Fused => {
                let logits_t = self.lm_head.as_tensor().matmul(&x.t()?)?;
                fused::cross_entropy_cols(&logits_t, &targets.to_vec1::<u32>()?)
            }
            Kernels::Composed => ops::cross_entropy(&ops::linear(&x, &self.lm_head)?, targets),
        }
    }

    /// Final norm and LM head. x: [n, hidden] -> logits [n, vocab].
    fn head(&self, x: &Tensor) -> Result<Tensor> {
        let x = ops::rms_norm(x, &self.norm, self.cfg.rms_norm_eps, self.kernels)?;
        ops::linear(&x, &self.lm_head)
    }
}

/// The Vars of layer `prefix`, taken from the parameter list.
fn layer_vars(take: &mut impl FnMut(&str) -> Result<Var>, prefix: &str) -> Result<LayerVars> {
    let mut get = |tail: &str| take(&format!("{prefix}.{tail}"));
    Ok(LayerVars {
        input_layernorm: get("input_layernorm.weight")?,
        q_proj: get("self_attn.q_proj.weight")?,
        k_proj: get("self_attn.k_proj.weight")?,
        v_proj: get("self_attn.v_proj.weight")?,
        o_proj: get("self_attn.o_proj.weight")?,
        post_attention_layernorm: get("post_attention_layernorm.weight")?,
        gate_proj: get("mlp.gate_proj.weight")?,
        up_proj: get("mlp.up_proj.weight")?,
        down_proj: get("mlp.down_proj.weight")?,
    })
}
