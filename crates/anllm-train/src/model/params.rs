//! The parameters of a [`TrainModel`](super::TrainModel): their HF names and shapes in
//! checkpoint order, seeded HF-style initial values, the un-permutation of GGUF Q/K rows and
//! the RoPE tables.

use candle_core::{DType, Device, Tensor};

use anllm::config::LlamaConfig;
use anllm::config::RopeStyle;
use anllm::model::RopeTable;
use anllm::{Pos, Result};

/// Standard deviation of HF's `_init_weights` for Llama (`initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// What a parameter is, which decides its initial value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// An embedding or linear weight: normal(0, [`INIT_STD`]).
    Matrix,
    /// An RMSNorm scale: ones.
    Norm,
}

/// One parameter: HF name, shape, kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// HF tensor name (`model.layers.0.self_attn.q_proj.weight`, …).
    pub name: String,
    /// Shape, `[out, in]` for linear weights.
    pub shape: Vec<usize>,
    /// Initialization kind.
    pub kind: ParamKind,
}

/// Every trainable parameter of `cfg` in HF checkpoint order: the embedding, each layer
/// (input norm, q, k, v, o, post-attention norm, gate, up, down), the final norm, and
/// `lm_head.weight` unless the embeddings are tied.
pub fn param_specs(cfg: &LlamaConfig) -> Vec<ParamSpec> {
    let (v, d, f) = (cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size);
    let q = cfg.num_attention_heads * cfg.head_dim();
    let kv = cfg.kv_heads() * cfg.head_dim();
    let spec = |name: String, shape: Vec<usize>, kind| ParamSpec { name, shape, kind };
    let mut out = vec![spec(
        "model.embed_tokens.weight".into(),
        vec![v, d],
        ParamKind::Matrix,
    )];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        let m =
            |tail: &str, shape: Vec<usize>| spec(format!("{p}.{tail}"), shape, ParamKind::Matrix);
        out.push(spec(
            format!("{p}.input_layernorm.weight"),
            vec![d],
            ParamKind::Norm,
        ));
        out.push(m("self_attn.q_proj.weight", vec![q, d]));
        out.push(m("self_attn.k_proj.weight", vec![kv, d]));
        out.push(m("self_attn.v_proj.weight", vec![kv, d]));
        out.push(m("self_attn.o_proj.weight", vec![d, q]));
        out.push(spec(
            format!("{p}.post_attention_layernorm.weight"),
            vec![d],
            ParamKind::Norm,
        ));
        out.push(m("mlp.gate_proj.weight", vec![f, d]));
        out.push(m("mlp.up_proj.weight", vec![f, d]));
        out.push(m("mlp.down_proj.weight", vec![d, f]));
    }
    out.push(spec("model.norm.weight".into(), vec![d], ParamKind::Norm));
    if !cfg.tie_word_embeddings {
        out.push(spec("lm_head.weight".into(), vec![v, d], ParamKind::Matrix));
    }
    out
}

/// SplitMix64 with Box–Muller normals: small, seeded and the same on every platform and
/// dependency version (unlike `StdRng`, whose algorithm may change between `rand` releases).
pub struct NormalRng {
    state: u64,
    spare: Option<f64>,
}

impl NormalRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal sample.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        self.spare = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// The HF initial value of `spec`: normal(0, [`INIT_STD`]) or ones, on the CPU in f32.
pub fn init_tensor(spec: &ParamSpec, rng: &mut NormalRng) -> Result<Tensor> {
    let n: usize = spec.shape.iter().product();
    let data: Vec<f32> = match spec.kind {
        ParamKind::Norm => vec![1.0; n],
        ParamKind::Matrix => (0..n).map(|_| (rng.normal() * INIT_STD) as f32).collect(),
    };
    Ok(Tensor::from_vec(data, spec.shape.as_slice(), &Device::Cpu)?)
}

/// GGUF → HF row order of a Q or K weight `[heads * head_dim, hidden]`: the inverse of
/// [`anllm::weights::permute_for_interleaved_rope`] (llama.cpp's converter `permute`). Within each
/// head, GGUF row `2 * i + j` goes back to HF row `j * head_dim / 2 + i`.
pub fn unpermute_interleaved(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let hd = rows / heads.max(1);
    Ok(w.reshape((heads, hd / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// Whether `name` is a Q or K projection and how many heads its rows hold.
pub fn rope_heads(name: &str, cfg: &LlamaConfig) -> Option<usize> {
    if name.ends_with("self_attn.q_proj.weight") {
        Some(cfg.num_attention_heads)
    } else if name.ends_with("self_attn.k_proj.weight") {
        Some(cfg.kv_heads())
    } else {
        None
    }
}

/// Full-width RoPE tables `[max_pos, head_dim]` in `dtype`: cos as `[c, c]` and sin as
/// `[-s, s]`. The angles are those of the inference [`RopeTable`] (f32, as HF computes them),
/// so both models rotate by the same numbers.
pub fn rope_tables(cfg: &LlamaConfig, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
    let max_pos = cfg.max_position_embeddings;
    let table = RopeTable::new(
        cfg.head_dim(),
        cfg.rope_theta,
        max_pos,
        RopeStyle::Half,
        device,
    )?;
    let positions: Vec<Pos> = (0..max_pos as u32).map(Pos).collect();
    let (cos, sin) = table.gather(&positions)?; // [max_pos, head_dim / 2] each
    let cos = Tensor::cat(&[&cos, &cos], 1)?;
    let sin = Tensor::cat(&[&sin.neg()?, &sin], 1)?;
    Ok((cos.to_dtype(dtype)?, sin.to_dtype(dtype)?))
}
