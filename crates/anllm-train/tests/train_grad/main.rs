//! The differentiable training model (`anllm_train::model`): every parameter gets a gradient,
//! the gradient matches central differences under the AnSAN mask, masked-out keys get exactly
//! zero gradient, the logits equal the inference model's (HF directory and GGUF), and bad
//! input is an error.

#[path = "../common/mod.rs"]
mod common;
mod equivalence;
mod errors;
mod kernels;
mod timing;

use std::collections::HashMap;

use anllm::cache::Cell;
use anllm::mask::{MaskRule, training_mask};
use anllm::testutil::{TinySpec, hf_tensors};
use anllm::{Pos, Role, SegmentId, TokenId};
use anllm_train::model::{Kernels, TrainBatch, TrainModel, ops};
use candle_core::{DType, Device, Tensor, Var};
use common::central_difference;

/// Both implementations of softmax and cross-entropy.
pub const KERNELS: [Kernels; 2] = [Kernels::Fused, Kernels::Composed];

/// Anchor ids of these tests.
pub const ANCHORS: [TokenId; 2] = [10, 11];

/// Cells of `tokens`: positions `0..`, an anchor (an id in [`ANCHORS`]) closes its segment.
pub fn cells_of(tokens: &[TokenId]) -> Vec<Cell> {
    let mut segment = 0;
    let mut out = Vec::with_capacity(tokens.len());
    for (i, &token) in tokens.iter().enumerate() {
        let role = match ANCHORS.contains(&token) {
            true => Role::Anchor,
            false => Role::Token,
        };
        out.push(Cell {
            segment: SegmentId(segment),
            role,
            ..Cell::token(token, Pos(i as u32))
        });
        segment += u32::from(role == Role::Anchor);
    }
    out
}

/// A batch of rows of equal length `t + 1` (inputs `[..t]`, targets `[1..]`), positions from
/// `first_pos[r]`, the AnSAN mask of each row's inputs, and the loss weights `weights[r]`
/// (all ones when `None`).
pub fn batch(rows: &[Vec<TokenId>], first_pos: &[u32], weights: Option<&[Vec<f32>]>) -> TrainBatch {
    let t = rows[0].len() - 1;
    let (mut inputs, mut targets, mut w, mut pos, mut mask) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (r, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), t + 1);
        inputs.extend_from_slice(&row[..t]);
        targets.extend_from_slice(&row[1..]);
        pos.extend((0..t as u32).map(|i| first_pos[r] + i));
        w.extend(weights.map_or(vec![1.0; t], |w| w[r].clone()));
        let m = training_mask(MaskRule::AnSan, &cells_of(&row[..t]));
        mask.extend(
            m.to_additive(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
    }
    let b = rows.len();
    let dev = Device::Cpu;
    TrainBatch {
        inputs: Tensor::from_vec(inputs, (b, t), &dev).unwrap(),
        targets: Tensor::from_vec(targets, (b, t), &dev).unwrap(),
        weights: Tensor::from_vec(w, (b, t), &dev).unwrap(),
        positions: Tensor::from_vec(pos, (b, t), &dev).unwrap(),
        mask: Tensor::from_vec(mask, (b, t, t), &dev).unwrap(),
    }
}

/// Two rows with anchors, different segment layouts and positions.
pub fn two_rows() -> TrainBatch {
    let rows = vec![
        vec![1, 40, 41, 10, 42, 43, 44, 11, 45, 46, 10, 47, 48, 49],
        vec![1, 50, 10, 51, 52, 53, 54, 55, 11, 56, 57, 58, 10, 59],
    ];
    batch(&rows, &[0, 5], None)
}

/// The tiny spec's tensors as a map.
pub fn tensor_map(spec: &TinySpec) -> HashMap<String, Tensor> {
    hf_tensors(spec).unwrap().into_iter().collect()
}

/// A tiny model of `spec` in `dtype`.
pub fn tiny(spec: &TinySpec, dtype: DType) -> TrainModel {
    TrainModel::from_tensors(
        &spec.config().unwrap(),
        tensor_map(spec),
        dtype,
        &Device::Cpu,
    )
    .unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn every_parameter_gets_a_nonzero_gradient_tied_and_untied() {
    for (tie_embeddings, kernels) in [false, true]
        .into_iter()
        .flat_map(|t| KERNELS.map(|k| (t, k)))
    {
        let spec = TinySpec {
            tie_embeddings,
            ..TinySpec::gqa()
        };
        let model = tiny(&spec, DType::F32).with_kernels(kernels);
        let expected = 2 + 9 * spec.layers + usize::from(!tie_embeddings);
        assert_eq!(model.vars().len(), expected);
        assert_eq!(
            model.vars().iter().any(|(n, _)| n == "lm_head.weight"),
            !tie_embeddings
        );
        let grads = model.loss(&two_rows()).unwrap().backward().unwrap();
        for (name, var) in model.vars() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| {
                panic!("{name}: no gradient (tied {tie_embeddings}, {kernels:?})")
            });
            assert!(
                max_abs(g) > 0.0,
                "{name}: all-zero gradient (tied {tie_embeddings}, {kernels:?})"
            );
        }
    }
}

/// Entries to probe in a parameter of `len` elements: a fixed spread, and for the embedding
/// only rows of tokens in the batch (other rows have no gradient).
fn probe_entries(name: &str, len: usize, hidden: usize) -> Vec<usize> {
    if name == "model.embed_tokens.weight" {
        return [(40, 3), (10, 0), (57, 17), (1, 31)]
            .iter()
            .map(|(r, c)| r * hidden + c)
            .collect();
    }
    [0, len / 3, len / 2 + 1, len - 1].to_vec()
}

#[test]
fn masked_gradient_matches_central_differences_in_f64() {
    for kernels in KERNELS {
        let worst = central_difference_worst_error(kernels);
        eprintln!("{kernels:?}: worst relative error {worst:e}");
    }
}

/// Compares analytic and central-difference gradients of a sample of entries of most
/// parameters; returns the worst relative error.
fn central_difference_worst_error(kernels: Kernels) -> f64 {
    let spec = TinySpec::gqa(); // 2 layers, 4 heads over 2 KV heads
    let model = tiny(&spec, DType::F64).with_kernels(kernels);
    // Row 1 scores only its last five targets (an SFT-like row): the head skips the others.
    let weights = vec![vec![1.0; 13], [vec![0.0; 8], vec![1.0; 5]].concat()];
    let rows = [
        vec![1, 40, 41, 10, 42, 43, 44, 11, 45, 46, 10, 47, 48, 49],
        vec![1, 50, 10, 51, 52, 53, 54, 55, 11, 56, 57, 58, 10, 59],
    ];
    let batch = batch(&rows, &[0, 5], Some(&weights));
    let loss = |m: &TrainModel| m.loss(&batch).unwrap().to_scalar::<f64>().unwrap();
    let grads = model.loss(&batch).unwrap().backward().unwrap();
    let probed = [
        "model.embed_tokens.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.1.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.layers.1.self_attn.k_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    ];
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    for name in probed {
        let var = &model.vars().iter().find(|(n, _)| n == name).unwrap().1;
        let g = grads.get(var.as_tensor()).unwrap();
        for i in probe_entries(name, var.elem_count(), spec.hidden) {
            let (numeric, analytic) = central_difference(var, g, i, h, || loss(&model));
            let rel = (numeric - analytic).abs() / numeric.abs().max(analytic.abs()).max(1e-7);
            assert!(
                rel < 1e-4,
                "{kernels:?} {name}[{i}]: analytic {analytic:e} vs numeric {numeric:e} (rel {rel:e})"
            );
            assert!(
                analytic.abs() > 1e-9,
                "{name}[{i}]: probe a non-trivial entry ({analytic:e})"
            );
            worst = worst.max(rel);
        }
    }
    worst
}

#[test]
fn keys_of_closed_segments_get_exactly_zero_gradient() {
    // One layer: the K/V of a position depend on its own embedding only, so the loss of a
    // query that cannot see a position does not depend on that position's embedding.
    let spec = TinySpec {
        layers: 1,
        ..TinySpec::gqa()
    };
    for kernels in KERNELS {
        zero_gradient_for_closed_segments(&spec, kernels);
    }
}

fn zero_gradient_for_closed_segments(spec: &TinySpec, kernels: Kernels) {
    let model = tiny(spec, DType::F32).with_kernels(kernels);
    // Segment 0: 100 101 A10 | segment 1: 102 103 A11 | open: 104 105 106 (+ target 107).
    let row = vec![100, 101, 10, 102, 103, 11, 104, 105, 106, 107];
    let t = row.len() - 1;
    let mut w = vec![0.0; t];
    w[t - 1] = 1.0; // only the last query row (in the open segment) counts
    let batch = batch(&[row], &[0], Some(&[w]));
    let grads = model.loss(&batch).unwrap().backward().unwrap();
    let embed = &model.vars()[0].1;
    let g = grads.get(embed.as_tensor()).unwrap();
    let row_max = |id: usize| max_abs(&g.get(id).unwrap());
    for hidden in [100, 101, 102, 103] {
        assert_eq!(
            row_max(hidden),
            0.0,
            "{kernels:?}: token {hidden} of a closed segment got a gradient"
        );
    }
    for seen in [10, 11, 104, 105, 106] {
        assert!(
            row_max(seen) > 0.0,
            "{kernels:?}: visible token {seen} got no gradient"
        );
    }
}

#[test]
fn attention_gives_blocked_keys_exactly_zero_gradient() {
    let dev = Device::Cpu;
    let (b, heads, kv_heads, t, hd) = (2, 4, 2, 9, 8);
    let var = |h: usize, seed: f64| {
        let n = b * h * t * hd;
        let data: Vec<f32> = (0..n)
            .map(|i| ((i as f64 * 0.37 + seed).sin()) as f32)
            .collect();
        Var::from_tensor(&Tensor::from_vec(data, (b, h, t, hd), &dev).unwrap()).unwrap()
    };
    let (q, k, v) = (var(heads, 0.1), var(kv_heads, 0.2), var(kv_heads, 0.3));
    let rows = [
        vec![1, 2, 3, 10, 4, 5, 6, 11, 7],
        vec![1, 10, 2, 3, 11, 4, 5, 6, 7],
    ];
    let masks: Vec<_> = rows
        .iter()
        .map(|r| training_mask(MaskRule::AnSan, &cells_of(r)))
        .collect();
    let additive: Vec<Tensor> = masks.iter().map(|m| m.to_additive(&dev).unwrap()).collect();
    let mask = Tensor::stack(&additive, 0).unwrap();
    let query = t - 1; // the last row of every head
    for kernels in KERNELS {
        let out = ops::attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), &mask, kernels);
        blocked_keys_get_zero(&out.unwrap(), (&k, &v), &masks, query, kernels);
    }
}

/// Backpropagates the sum of row `query` of `out` and checks the K/V gradients per key.
fn blocked_keys_get_zero(
    out: &Tensor,
    (k, v): (&Var, &Var),
    masks: &[anllm::mask::Mask],
    query: usize,
    kernels: Kernels,
) {
    let (b, _, t, _) = out.dims4().unwrap();
    let loss = out.narrow(2, query, 1).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    for (name, x) in [("k", k), ("v", v)] {
        let g = grads.get(x.as_tensor()).unwrap(); // [b, kv_heads, t, hd]
        let g: Vec<Vec<Vec<Vec<f32>>>> = (0..b)
            .map(|i| g.get(i).unwrap().to_vec3().unwrap())
            .collect();
        for (r, m) in masks.iter().enumerate() {
            for key in 0..t {
                let grad_norm: f32 = g[r]
                    .iter()
                    .flat_map(|h| h[key].iter())
                    .map(|x| x.abs())
                    .sum();
                match m.get(query, key) {
                    false => assert_eq!(
                        grad_norm, 0.0,
                        "{kernels:?} {name}: row {r} blocked key {key}"
                    ),
                    true => assert!(
                        grad_norm > 0.0,
                        "{kernels:?} {name}: row {r} visible key {key}"
                    ),
                }
            }
        }
    }
}
