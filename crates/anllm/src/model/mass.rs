//! The attention mass each cached key receives from a step's last query rows (what H2O, TOVA
//! and SnapKV score by), on CPU without the dense probability grid: per observed row one pass
//! over the keys, a softmax, and a sum into the key's mass.

use rayon::prelude::*;

use super::attend::{Shape, exp_shifted, scores_into};
use super::kv_elem::KvElem;

/// Per KV head, Σ over the query heads of its group and the last `observe` rows (at least
/// one, at most `t`) of the softmax probability of every key: `[kv_heads][n]`. Rows as in
/// [`super::attend::attend`]; a row that sees no key adds nothing.
pub(super) fn mass<E: KvElem>(
    qs: &[f32],
    ks: &[E],
    mask: Option<&[f32]>,
    s: &Shape,
    observe: usize,
) -> Vec<Vec<f32>> {
    let (hd, n, t) = (s.hd, s.n, s.t);
    let observed = observe.clamp(1, t);
    let groups = s.rows / t;
    let scale = 1.0 / (hd as f32).sqrt();
    (0..s.kv_heads)
        .into_par_iter()
        .map(|h| {
            let k = &ks[h * s.cap * hd..][..n * hd];
            let mut mass = vec![0f32; n];
            let mut row = vec![0f32; n];
            for g in 0..groups {
                for i in t - observed..t {
                    let q = &qs[(h * s.rows + g * t + i) * hd..][..hd];
                    let bias = mask.map(|m| &m[i * n..(i + 1) * n]);
                    scores_into::<E>(q, k, bias, scale, &mut row);
                    let (_, sum) = exp_shifted(&mut row);
                    if sum > 0.0 {
                        let inv = 1.0 / sum;
                        mass.iter_mut().zip(&row).for_each(|(m, p)| *m += p * inv);
                    }
                }
            }
            mass
        })
        .collect()
}
