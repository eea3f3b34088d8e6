//! The differentiable building blocks of [`TrainModel`](super::TrainModel): linear layers,
//! RMSNorm, RoPE, masked grouped-query attention and cross-entropy, each composed from
//! elementary candle ops that have a backward pass.
//!
//! candle's fused kernels (`softmax_last_dim`, `ops::rms_norm`, `rotary_emb::rope`/`rope_i`)
//! have no backward and silently drop the gradient (architecture.md, "Stack pitfalls" point 1),
//! so none of them is used here; the fused kernels of [`fused`] carry their own backward.

use candle_core::{D, DType, Tensor, Var};

use super::fused::{self, Kernels};
use super::{fused_attn, fused_layer};
use anllm::Result;

/// `y = x·Wᵀ`. x: [n, in], w: [out, in] -> [n, out]. One 2-D matmul over every row of the
/// batch; candle multiplies by the transposed view without copying the weight.
pub fn linear(x: &Tensor, w: &Var) -> Result<Tensor> {
    Ok(x.matmul(&w.as_tensor().t()?)?)
}

/// RMSNorm `x / sqrt(mean(x²) + eps) · weight` over the last axis, computed in f32 for half
/// types (as HF does). x: `[n, hidden]`, weight: `[hidden]`. `kernels` picks
/// [`fused_layer::rms_norm`] or candle's composed `rms_norm_slow`.
pub fn rms_norm(x: &Tensor, weight: &Var, eps: f64, kernels: Kernels) -> Result<Tensor> {
    match kernels.resolve(x) {
        Kernels::Fused => fused_layer::rms_norm(x, weight.as_tensor(), eps),
        Kernels::Composed => Ok(candle_nn::ops::rms_norm_slow(
            x,
            weight.as_tensor(),
            eps as f32,
        )?),
    }
}

/// HF (half-rotation) RoPE of `x: [b, t, heads, head_dim]` with `cos: [b, t, 1, head_dim]`
/// (`[c, c]`) and `sin: [b, t, 1, head_dim]` (`[-s, s]`, the sign of `rotate_half` folded into
/// the table): `x·cos + swap_halves(x)·sin`. `kernels` picks [`fused_layer::rope`] or the
/// composed ops below.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, kernels: Kernels) -> Result<Tensor> {
    if kernels.resolve(x) == Kernels::Fused {
        return fused_layer::rope(x, cos, sin);
    }
    let half = x.dim(D::Minus1)? / 2;
    let swapped = Tensor::cat(
        &[
            x.narrow(D::Minus1, half, half)?,
            x.narrow(D::Minus1, 0, half)?,
        ],
        D::Minus1,
    )?;
    Ok((x.broadcast_mul(cos)? + swapped.broadcast_mul(sin)?)?)
}

/// Masked scaled dot-product attention with grouped-query heads.
///
/// q: [b, heads, t, head_dim], k and v: [b, kv_heads, t, head_dim], mask: additive
/// [b, t, t] (0 visible, [`anllm::mask::BLOCKED`] blocked), in q's dtype -> [b, heads, t,
/// head_dim]. Query head `h` reads KV head `h / (heads / kv_heads)`, as HF's `repeat_kv`;
/// instead of copying K/V per query head, the query heads of one group are stacked along the
/// row axis, so one batched matmul per KV head serves the group. A blocked key gets a
/// probability of exactly 0, hence exactly zero gradient. `kernels` picks
/// [`fused_attn::masked_softmax`] or the composed scaling, mask add and softmax.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    kernels: Kernels,
) -> Result<Tensor> {
    let (b, heads, t, hd) = q.dims4()?;
    let kv_heads = k.dim(1)?;
    let groups = heads / kv_heads.max(1);
    let scale = 1.0 / (hd as f64).sqrt();
    let probs = match kernels.resolve(q) {
        // Scale, mask and softmax in one pass over the grid the matmul wrote.
        Kernels::Fused => {
            let q = q.contiguous()?.reshape((b, kv_heads, groups * t, hd))?;
            let scores = q.matmul(&k.contiguous()?.t()?)?; // [b, kv_heads, groups * t, t]
            fused_attn::masked_softmax(&scores, mask, scale)?
        }
        Kernels::Composed => {
            let q = (q.contiguous()? * scale)?.reshape((b, kv_heads, groups * t, hd))?;
            let scores = q.matmul(&k.contiguous()?.t()?)?;
            let scores = scores
                .reshape((b, kv_heads, groups, t, t))?
                .broadcast_add(&mask.reshape((b, 1, 1, t, t))?)?;
            softmax(&scores, kernels)?.reshape((b, kv_heads, groups * t, t))?
        }
    };
    Ok(probs.matmul(&v.contiguous()?)?.reshape((b, heads, t, hd))?)
}

/// Softmax over the last axis: [`fused::softmax_last`] or candle's composed
/// `ops::softmax(x, D::Minus1)`.
pub fn softmax(x: &Tensor, kernels: Kernels) -> Result<Tensor> {
    match kernels.resolve(x) {
        Kernels::Fused => fused::softmax_last(x),
        Kernels::Composed => Ok(candle_nn::ops::softmax(x, D::Minus1)?),
    }
}

/// SwiGLU `down(silu(gate(x)) · up(x))`. x: [n, hidden] -> [n, hidden]. `kernels` picks
/// [`fused_layer::swiglu`] or candle's `silu` and product for the gate.
pub fn mlp(x: &Tensor, (gate, up, down): (&Var, &Var, &Var), kernels: Kernels) -> Result<Tensor> {
    let (g, u) = (linear(x, gate)?, linear(x, up)?);
    let h = match kernels.resolve(x) {
        Kernels::Fused => fused_layer::swiglu(&g, &u)?,
        Kernels::Composed => (g.silu()? * u)?,
    };
    linear(&h, down)
}

/// Cross-entropy of each row: `logsumexp(logits) - logits[target]`. logits: [n, vocab],
/// targets: u32 `[n]` -> `[n]` in the logits dtype.
///
/// The row maximum that keeps `exp` in range is detached: the value does not depend on it,
/// so neither does the gradient, and the backward skips a pass over `[n, vocab]`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = &logits.contiguous()?; // `gather` reads contiguous tensors only
    let lse = log_sum_exp(logits)?;
    let picked = logits.gather(&targets.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?;
    Ok((lse - picked)?.squeeze(1)?)
}

/// The distillation loss of [`super::distill::distill_cols`] from candle's elementary ops (the
/// reference): `logits: [n, vocab]`, `teacher: [n, vocab]` probabilities (no gradient),
/// `targets` u32 [n] → `[n]`.
pub fn distill(logits: &Tensor, teacher: &Tensor, targets: &Tensor, alpha: f64) -> Result<Tensor> {
    let logits = &logits.contiguous()?;
    let lse = log_sum_exp(logits)?; // [n, 1]
    let teacher = teacher.detach();
    let log_p = teacher.clamp(1e-30, 1.0)?.log()?;
    // Σ p (ln p − x + lse) per row.
    let kl = (teacher.broadcast_mul(&(log_p - logits)?.broadcast_add(&lse)?))?.sum(D::Minus1)?;
    let ce = cross_entropy(logits, targets)?;
    Ok(((kl * alpha)? + (ce * (1.0 - alpha))?)?)
}

/// `log Σ exp` of each row of `logits: [n, vocab]` → `[n, 1]`. The row maximum that keeps
/// `exp` in range is detached: the value does not depend on it, so neither does the gradient.
fn log_sum_exp(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    Ok((logits
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + max)?)
}
