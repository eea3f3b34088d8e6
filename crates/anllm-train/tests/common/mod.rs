//! Helpers shared by the gradient tests (`train_grad`, `train_distill`, `train_token_weight`).
// Each test crate uses some of these helpers, none uses all.
#![allow(dead_code)]

use anllm_train::data::Example;
use candle_core::{Device, Tensor, Var};

/// Two packed rows of one length (11): row 0 holds documents 0 and 1 (8 targets, two of them
/// the period 10), row 1 one document whose prompt has no loss (5 targets, one period), then
/// two pads.
pub fn packed_rows() -> Vec<Example> {
    let ex = |tokens: &[u32], doc: &[u32], mask: &[bool]| Example {
        tokens: tokens.to_vec(),
        doc: doc.to_vec(),
        loss_mask: mask.to_vec(),
        pinned: Vec::new(),
    };
    let (t, f, pad) = (true, false, Example::PAD_DOC);
    vec![
        ex(
            &[1, 40, 41, 10, 42, 43, 1, 50, 51, 10, 52],
            &[0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
            &[f, t, t, t, t, t, f, t, t, t, t],
        ),
        ex(
            &[1, 60, 61, 62, 10, 63, 64, 65, 66, 0, 0],
            &[2, 2, 2, 2, 2, 2, 2, 2, 2, pad, pad],
            &[f, f, f, f, t, t, t, t, t, f, f],
        ),
    ]
}

/// Replaces entry `index` of the f64 `var` by `value`.
pub fn set_entry(var: &Var, index: usize, value: f64) {
    let shape = var.shape().clone();
    let mut data: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    data[index] = value;
    var.set(&Tensor::from_vec(data, shape, &Device::Cpu).unwrap())
        .unwrap();
}

/// Entry `index` of the f64 tensor `t`.
pub fn entry(t: &Tensor, index: usize) -> f64 {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()[index]
}

/// `(numeric, analytic)` derivative of `loss` by entry `index` of `var`: the central difference
/// with step `h` (the entry is restored afterwards) and `grad[index]`.
pub fn central_difference(
    var: &Var,
    grad: &Tensor,
    index: usize,
    h: f64,
    loss: impl Fn() -> f64,
) -> (f64, f64) {
    let x = entry(var.as_tensor(), index);
    set_entry(var, index, x + h);
    let up = loss();
    set_entry(var, index, x - h);
    let down = loss();
    set_entry(var, index, x);
    ((up - down) / (2.0 * h), entry(grad, index))
}
