//! The fused CPU kernels compute what candle's composed ops compute: values and gradients of
//! the softmax, the cross-entropy and the whole model's loss.

use anllm::testutil::TinySpec;
use anllm_train::model::{Kernels, fused, fused_attn, ops};
use candle_core::{DType, Device, Tensor, Var};

use super::{tiny, two_rows};

/// Deterministic pseudo-random values in [-scale, scale].
fn values(n: usize, seed: f64, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|i| scale * ((i as f64 * 0.618 + seed) * 12.9898).sin())
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap();
    d.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Value and gradient of `sum(f(x) · r)` for a fixed random `r`.
fn value_and_grad(x: &Var, f: impl Fn(&Tensor) -> Tensor) -> (Tensor, Tensor) {
    let y = f(x.as_tensor());
    let r = Tensor::from_vec(values(y.elem_count(), 0.5, 1.0), y.shape(), &Device::Cpu).unwrap();
    let r = r.to_dtype(y.dtype()).unwrap();
    let grads = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    (y.detach(), grads.get(x.as_tensor()).unwrap().clone())
}

#[test]
fn fused_softmax_matches_composed_values_and_gradients() {
    let dims = (2, 3, 5, 7);
    let mut data = values(2 * 3 * 5 * 7, 0.1, 4.0);
    data.iter_mut().step_by(3).for_each(|x| *x -= 1e30); // blocked entries
    for (dtype, tol) in [(DType::F64, 1e-14), (DType::F32, 1e-6)] {
        let x = Tensor::from_vec(data.clone(), dims, &Device::Cpu).unwrap();
        let x = Var::from_tensor(&x.to_dtype(dtype).unwrap()).unwrap();
        let (yf, gf) = value_and_grad(&x, |x| fused::softmax_last(x).unwrap());
        let (yc, gc) = value_and_grad(&x, |x| ops::softmax(x, Kernels::Composed).unwrap());
        assert!(max_diff(&yf, &yc) < tol, "{dtype:?} values");
        assert!(max_diff(&gf, &gc) < tol, "{dtype:?} gradients");
    }
}

#[test]
fn fused_cross_entropy_matches_composed_values_and_gradients() {
    let (vocab, n) = (50, 13);
    let targets: Vec<u32> = (0..n as u32).map(|j| (j * 17 + 3) % vocab as u32).collect();
    let data = values(vocab * n, 0.3, 6.0);
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
        let x = Tensor::from_vec(data.clone(), (vocab, n), &Device::Cpu).unwrap();
        let x = Var::from_tensor(&x.to_dtype(dtype).unwrap()).unwrap();
        let ids = Tensor::new(targets.as_slice(), &Device::Cpu).unwrap();
        let (cf, gf) = value_and_grad(&x, |x| fused::cross_entropy_cols(x, &targets).unwrap());
        let (cc, gc) = value_and_grad(&x, |x| ops::cross_entropy(&x.t().unwrap(), &ids).unwrap());
        assert!(max_diff(&cf, &cc) < tol, "{dtype:?} values");
        assert!(max_diff(&gf, &gc) < tol, "{dtype:?} gradients");
    }
}

#[test]
fn fused_cross_entropy_rejects_bad_targets() {
    let x = Tensor::zeros((4, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(
        fused::cross_entropy_cols(&x, &[0, 4]).is_err(),
        "id past the vocabulary"
    );
    assert!(
        fused::cross_entropy_cols(&x, &[0]).is_err(),
        "one target for two columns"
    );
    let x = x.to_dtype(DType::BF16).unwrap();
    assert!(fused::cross_entropy_cols(&x, &[0, 1]).is_err(), "bf16");
}

#[test]
fn fused_and_composed_models_agree_on_loss_and_every_gradient() {
    let spec = TinySpec {
        tie_embeddings: true,
        ..TinySpec::gqa()
    };
    for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 1e-4)] {
        let fused = tiny(&spec, dtype);
        let composed = fused.clone().with_kernels(Kernels::Composed);
        let batch = two_rows();
        let (lf, lc) = (fused.loss(&batch).unwrap(), composed.loss(&batch).unwrap());
        assert!(max_diff(&lf, &lc) < tol, "{dtype:?} loss");
        let (gf, gc) = (lf.backward().unwrap(), lc.backward().unwrap());
        for (name, var) in fused.vars() {
            let (a, b) = (
                gf.get(var.as_tensor()).unwrap(),
                gc.get(var.as_tensor()).unwrap(),
            );
            let scale = max_diff(a, &a.zeros_like().unwrap()).max(1e-12);
            assert!(max_diff(a, b) / scale < tol, "{dtype:?} {name}");
        }
    }
}

/// Value of `f(a, b)` and the gradients of `sum(f · r)` with respect to `a` and `b`.
fn value_and_grads(
    a: &Var,
    b: &Var,
    f: impl Fn(&Tensor, &Tensor) -> Tensor,
) -> (Tensor, Tensor, Tensor) {
    let y = f(a.as_tensor(), b.as_tensor());
    let r = Tensor::from_vec(values(y.elem_count(), 0.5, 1.0), y.shape(), &Device::Cpu).unwrap();
    let grads = (&y * r.to_dtype(y.dtype()).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let get = |v: &Var| grads.get(v.as_tensor()).unwrap().clone();
    (y.detach(), get(a), get(b))
}

fn var(data: Vec<f64>, shape: &[usize], dtype: DType) -> Var {
    let t = Tensor::from_vec(data, shape, &Device::Cpu).unwrap();
    Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
}

/// Each `got[i]` within `tol` of `want[i]`, relative to the largest magnitude of `want[i]`
/// (at least 1): the weight gradients are sums over rows, of magnitude ~100 here.
fn assert_close(got: &[Tensor], want: &[Tensor], tol: f64, what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let scale = max_diff(w, &w.zeros_like().unwrap()).max(1.0);
        let rel = max_diff(g, w) / scale;
        assert!(rel < tol, "{what}: output {i} differs by {rel} (relative)");
    }
}

#[test]
fn fused_rms_norm_matches_composed_values_and_both_gradients() {
    let (n, h) = (70, 24); // more rows than one parallel block
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-5)] {
        let x = var(values(n * h, 0.2, 3.0), &[n, h], dtype);
        let w = var(values(h, 0.7, 1.5), &[h], dtype);
        let run = |k: Kernels| {
            let (y, gx, gw) =
                value_and_grads(&x, &w, |x, _| ops::rms_norm(x, &w, 1e-5, k).unwrap());
            [y, gx, gw]
        };
        assert_close(
            &run(Kernels::Fused),
            &run(Kernels::Composed),
            tol,
            "rms-norm",
        );
    }
}

#[test]
fn fused_rope_matches_composed_values_and_gradients() {
    let (b, t, heads, hd) = (2, 5, 3, 8);
    let angles: Vec<f64> = values(b * t * hd / 2, 0.9, 3.0);
    // cos [c, c] and sin [-s, s] per position, as `params::rope_tables` lays them out.
    let (mut cos, mut sin) = (vec![], vec![]);
    for p in angles.chunks(hd / 2) {
        cos.extend(p.iter().chain(p).map(|a| a.cos()));
        sin.extend(p.iter().map(|a| -a.sin()).chain(p.iter().map(|a| a.sin())));
    }
    for (dtype, tol) in [(DType::F64, 1e-13), (DType::F32, 1e-5)] {
        let table = |v: &Vec<f64>| {
            let t = Tensor::from_vec(v.clone(), (b, t, 1, hd), &Device::Cpu).unwrap();
            t.to_dtype(dtype).unwrap()
        };
        let (c, s) = (table(&cos), table(&sin));
        let x = var(
            values(b * t * heads * hd, 0.4, 2.0),
            &[b, t, heads, hd],
            dtype,
        );
        let run = |k: Kernels| {
            let (y, g) = value_and_grad(&x, |x| ops::rope(x, &c, &s, k).unwrap());
            [y, g]
        };
        assert_close(&run(Kernels::Fused), &run(Kernels::Composed), tol, "rope");
    }
}

#[test]
fn fused_swiglu_matches_composed_values_and_both_gradients() {
    let (n, f) = (9, 501); // past one 4096-value chunk, and not a multiple of 8
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 2e-5)] {
        let gate = var(values(n * f, 0.3, 6.0), &[n, f], dtype);
        let up = var(values(n * f, 0.8, 2.0), &[n, f], dtype);
        let (y, gg, gu) = value_and_grads(&gate, &up, |g, u| {
            anllm_train::model::fused_layer::swiglu(g, u).unwrap()
        });
        let (yc, ggc, guc) = value_and_grads(&gate, &up, |g, u| (g.silu().unwrap() * u).unwrap());
        assert_close(&[y, gg, gu], &[yc, ggc, guc], tol, "swiglu");
    }
}

#[test]
fn fused_masked_softmax_matches_composed_scale_mask_and_softmax() {
    let (b, kv, groups, t) = (2, 2, 3, 5);
    // Causal plus a few more blocked keys, different per batch item; the diagonal stays open.
    let mask: Vec<f64> = (0..b * t * t)
        .map(|i| {
            let (item, q, key) = (i / (t * t), (i / t) % t, i % t);
            let blocked = key > q || (key + item + 1 < q && (key + q) % 2 == 0);
            if blocked {
                f64::from(anllm::mask::BLOCKED)
            } else {
                0.0
            }
        })
        .collect();
    let scale = 0.35;
    for (dtype, tol) in [(DType::F64, 1e-13), (DType::F32, 1e-6)] {
        let m = Tensor::from_vec(mask.clone(), (b, t, t), &Device::Cpu).unwrap();
        let m = m.to_dtype(dtype).unwrap();
        let s = var(
            values(b * kv * groups * t * t, 0.6, 5.0),
            &[b, kv, groups * t, t],
            dtype,
        );
        let fused = value_and_grad(&s, |s| fused_attn::masked_softmax(s, &m, scale).unwrap());
        let composed = value_and_grad(&s, |s| {
            let x = (s * scale)
                .unwrap()
                .reshape((b, kv, groups, t, t))
                .unwrap()
                .broadcast_add(&m.reshape((b, 1, 1, t, t)).unwrap())
                .unwrap();
            let y = ops::softmax(&x, Kernels::Composed).unwrap();
            y.reshape((b, kv, groups * t, t)).unwrap()
        });
        assert_close(
            &[fused.0, fused.1],
            &[composed.0, composed.1],
            tol,
            "masked softmax",
        );
    }
}
