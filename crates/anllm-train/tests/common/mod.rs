//! Helpers shared by the gradient tests (`train_grad`, `train_distill`).

use candle_core::{Device, Tensor, Var};

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
