//! The distillation loss (`anllm train --distill`): per target column, `α · KL(teacher ‖
//! student) + (1 − α) · CE(target)`, fused over the LM head's transposed logits `[vocab, n]`
//! with its own backward, like [`super::fused::cross_entropy_cols`].
//!
//! With `p` the teacher's next-token distribution of column `j`, `s = softmax(x_j)` the
//! student's and `lse` its log-normaliser:
//! * loss `α · (Σ_v p_v (lse − x_v) + Σ_v p_v ln p_v) + (1 − α) · (lse − x_target)`;
//! * gradient `g · (s_v · (α Σ_v p_v + 1 − α) − α p_v − (1 − α) [v = target])`, which is the
//!   usual `s − q` for the soft target `q = α p + (1 − α) onehot` when `p` sums to 1.
//!
//! The teacher's probabilities are a constant: they get no gradient.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, bail};
use rayon::prelude::*;

use super::fused::{Float, ROWS_PER_TASK, column_lse, contiguous};
use anllm::Result;

/// `α · KL(p ‖ softmax) + (1 − α) · CE` of each column of `logits_t: [vocab, n]` against the
/// teacher probabilities `teacher_t: [vocab, n]` (same dtype) and `targets` (n ids) → `[n]`.
/// CPU, f32 or f64.
pub fn distill_cols(
    logits_t: &Tensor,
    teacher_t: &Tensor,
    targets: &[u32],
    alpha: f64,
) -> Result<Tensor> {
    let op = DistillCols {
        targets: Arc::new(targets.to_vec()),
        alpha,
    };
    Ok(logits_t
        .contiguous()?
        .apply_op2(&teacher_t.contiguous()?, op)?)
}

#[derive(Clone)]
struct DistillCols {
    targets: Arc<Vec<u32>>,
    alpha: f64,
}

fn dims(xl: &Layout, pl: &Layout, targets: &[u32]) -> candle_core::Result<(usize, usize)> {
    let (vocab, n) = xl.shape().dims2()?;
    if pl.shape().dims() != [vocab, n] {
        bail!("distill: teacher {:?} for logits [{vocab}, {n}]", pl.dims());
    }
    if targets.len() != n || targets.iter().any(|&t| t as usize >= vocab) {
        bail!(
            "distill: {} targets (< {vocab}) for {n} columns",
            targets.len()
        );
    }
    Ok((vocab, n))
}

/// Column-wise fold of `[vocab, n]` blocks of rows into `k` accumulators per column.
fn fold_cols<T: Float, const K: usize>(
    x: &[T],
    p: &[T],
    n: usize,
    f: impl Fn(&mut [T; K], T, T, usize, usize) + Sync,
) -> Vec<[T; K]> {
    let partial: Vec<Vec<[T; K]>> = x
        .par_chunks(n * ROWS_PER_TASK)
        .zip(p.par_chunks(n * ROWS_PER_TASK))
        .enumerate()
        .map(|(block, (xb, pb))| {
            let mut acc = vec![[T::ZERO; K]; n];
            for (r, (xr, pr)) in xb.chunks(n).zip(pb.chunks(n)).enumerate() {
                let v = block * ROWS_PER_TASK + r;
                for (j, ((a, &xv), &pv)) in acc.iter_mut().zip(xr).zip(pr).enumerate() {
                    f(a, xv, pv, v, j);
                }
            }
            acc
        })
        .collect();
    let mut out = vec![[T::ZERO; K]; n];
    for part in partial {
        for (o, a) in out.iter_mut().zip(part) {
            for (o, a) in o.iter_mut().zip(a) {
                *o += a;
            }
        }
    }
    out
}

fn distill_fwd<T: Float>(
    (x, xl): (&[T], &Layout),
    (p, pl): (&[T], &Layout),
    targets: &[u32],
    alpha: f64,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (x, p) = (contiguous(x, xl)?, contiguous(p, pl)?);
    let (_, n) = dims(xl, pl, targets)?;
    let lse = column_lse(x, n);
    // [Σ p, Σ p·x, Σ p·ln p] per column (0·ln 0 = 0).
    let sums = fold_cols::<T, 3>(x, p, n, |a, xv, pv, _, _| {
        a[0] += pv;
        a[1] += pv * xv;
        if pv > T::ZERO {
            a[2] += pv * pv.ln();
        }
    });
    let a = T::from_f64(alpha);
    let b = T::from_f64(1.0 - alpha);
    let loss: Vec<T> = (0..n)
        .map(|j| {
            let [sp, spx, splp] = sums[j];
            let kl = sp * lse[j] - spx + splp;
            let ce = lse[j] - x[targets[j] as usize * n + j];
            a * kl + b * ce
        })
        .collect();
    Ok((T::to_cpu_storage_owned(loss), Shape::from(n)))
}

impl CustomOp2 for DistillCols {
    fn name(&self) -> &'static str {
        "anllm-distill-cols"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        p: &CpuStorage,
        pl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let t = &self.targets;
        match (x, p) {
            (CpuStorage::F32(x), CpuStorage::F32(p)) => {
                distill_fwd((x, xl), (p, pl), t, self.alpha)
            }
            (CpuStorage::F64(x), CpuStorage::F64(p)) => {
                distill_fwd((x, xl), (p, pl), t, self.alpha)
            }
            _ => bail!("anllm-distill-cols: f32 or f64 logits and teacher of one dtype"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        _loss: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = DistillColsGrad(self.clone());
        let dx = x.detach().apply_op3(&p.detach(), &g.contiguous()?, grad)?;
        Ok((Some(dx), None))
    }
}

/// The gradient of [`DistillCols`] from (logits, teacher, upstream gradient).
struct DistillColsGrad(DistillCols);

fn distill_bwd<T: Float>(
    (x, xl): (&[T], &Layout),
    (p, pl): (&[T], &Layout),
    (g, gl): (&[T], &Layout),
    targets: &[u32],
    alpha: f64,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (x, p, g) = (contiguous(x, xl)?, contiguous(p, pl)?, contiguous(g, gl)?);
    let (_, n) = dims(xl, pl, targets)?;
    let lse = column_lse(x, n);
    let sp = fold_cols::<T, 1>(x, p, n, |a, _, pv, _, _| a[0] += pv);
    let (a, b) = (T::from_f64(alpha), T::from_f64(1.0 - alpha));
    // Weight of the student's softmax in column j.
    let w: Vec<T> = sp.iter().map(|s| a * s[0] + b).collect();
    let mut out = vec![T::ZERO; x.len()];
    out.par_chunks_mut(n * ROWS_PER_TASK)
        .zip(
            x.par_chunks(n * ROWS_PER_TASK)
                .zip(p.par_chunks(n * ROWS_PER_TASK)),
        )
        .for_each(|(out, (xb, pb))| {
            let rows = out.chunks_mut(n).zip(xb.chunks(n).zip(pb.chunks(n)));
            for (o_row, (x_row, p_row)) in rows {
                for ((o, &xv), &l) in o_row.iter_mut().zip(x_row).zip(&lse) {
                    *o = xv - l;
                }
                T::exp_sub_sum(o_row, T::ZERO); // the student's softmax
                for (j, (o, &pv)) in o_row.iter_mut().zip(p_row).enumerate() {
                    *o = g[j] * (*o * w[j] - a * pv);
                }
            }
        });
    // The one-hot part of the cross-entropy: minus g·(1 − alpha) at each column's target.
    for (j, &t) in targets.iter().enumerate() {
        out[t as usize * n + j] -= g[j] * b;
    }
    Ok((T::to_cpu_storage_owned(out), xl.shape().clone()))
}

impl CustomOp3 for DistillColsGrad {
    fn name(&self) -> &'static str {
        "anllm-distill-cols-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        p: &CpuStorage,
        pl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (t, alpha) = (&self.0.targets, self.0.alpha);
        match (x, p, g) {
            (CpuStorage::F32(x), CpuStorage::F32(p), CpuStorage::F32(g)) => {
                distill_bwd((x, xl), (p, pl), (g, gl), t, alpha)
            }
            (CpuStorage::F64(x), CpuStorage::F64(p), CpuStorage::F64(g)) => {
                distill_bwd((x, xl), (p, pl), (g, gl), t, alpha)
            }
            _ => bail!("anllm-distill-cols-grad: f32 or f64 only"),
        }
    }
}
