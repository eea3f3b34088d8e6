//! Attention for many query rows on CPU (prefill chunks) without the dense score grid:
//! flash attention in tiles. Each task takes a block of query rows of one KV head and walks
//! the keys a tile at a time, keeping per row a running max, sum and value accumulator
//! (online softmax). A (row, tile) pair whose mask is all −∞ is skipped, so the work follows
//! what the rows can see: half the grid under a causal mask, and under the anchor mask only
//! the tiles holding a row's segment or an anchor.
//!
//! The dense path (scores `[kv_heads, groups·t, n]`, softmax, a second matmul) allocates
//! 3 × 75 MB per layer for a 512-token chunk at depth 4096, and faults every page of it in.

use rayon::prelude::*;

use super::attend::{Shape, scores_into};
use super::kv_elem::KvElem;

/// Query rows per task.
const ROWS: usize = 16;
/// Keys per tile.
const KEYS: usize = 64;

/// q: `[kv_heads, rows, hd]` (row = g·t + i sees mask row i), keys/values `cap` slots apart
/// per head, mask additive `[t, n]`. Returns `[kv_heads, rows, hd]`.
pub(super) fn attend<E: KvElem>(
    qs: &[f32],
    ks: &[E],
    vs: &[E],
    mask: Option<&[f32]>,
    s: &Shape,
) -> Vec<f32> {
    let hd = s.hd;
    let mut out = vec![0f32; s.kv_heads * s.rows * hd];
    out.par_chunks_mut(s.rows * hd)
        .enumerate()
        .for_each(|(h, head_out)| {
            let block = Block {
                k: &ks[h * s.cap * hd..][..s.n * hd],
                v: &vs[h * s.cap * hd..][..s.n * hd],
                mask,
                s,
            };
            let q = &qs[h * s.rows * hd..][..s.rows * hd];
            head_out
                .par_chunks_mut(ROWS * hd)
                .enumerate()
                .for_each(|(b, dst)| block.run(&q[b * ROWS * hd..][..dst.len()], b * ROWS, dst));
        });
    out
}

/// One KV head's keys and values (`n × hd` each) and the step's mask.
struct Block<'a, E> {
    k: &'a [E],
    v: &'a [E],
    mask: Option<&'a [f32]>,
    s: &'a Shape,
}

impl<E: KvElem> Block<'_, E> {
    /// Rows `first..first + q.len() / hd` of the head into `dst` (zeroed; a row that sees no
    /// key stays zero, as a fully masked softmax row gives).
    fn run(&self, q: &[f32], first: usize, dst: &mut [f32]) {
        let (hd, n, t) = (self.s.hd, self.s.n, self.s.t);
        let scale = 1.0 / (hd as f32).sqrt();
        let rows = q.len() / hd;
        let mut max = [f32::NEG_INFINITY; ROWS];
        let mut sum = [0f32; ROWS];
        let mut scores = [0f32; KEYS];
        for start in (0..n).step_by(KEYS) {
            let len = KEYS.min(n - start);
            let k = &self.k[start * hd..(start + len) * hd];
            let v = &self.v[start * hd..(start + len) * hd];
            for r in 0..rows {
                let bias = self
                    .mask
                    .map(|m| &m[((first + r) % t) * n + start..][..len]);
                if bias.is_some_and(|b| b.iter().all(|&x| x == f32::NEG_INFINITY)) {
                    continue;
                }
                let row = &mut scores[..len];
                scores_into::<E>(&q[r * hd..(r + 1) * hd], k, bias, scale, row);
                let acc = &mut dst[r * hd..(r + 1) * hd];
                online_softmax::<E>(row, v, (&mut max[r], &mut sum[r]), acc);
            }
        }
        for (r, acc) in dst.chunks_exact_mut(hd).enumerate() {
            if sum[r] > 0.0 {
                let inv = 1.0 / sum[r];
                acc.iter_mut().for_each(|x| *x *= inv);
            }
        }
    }
}

/// Folds one tile's scores (`row`, consumed) into a row's running (max, sum) and `acc`:
/// the old terms are rescaled by e^(max_old − max_new).
fn online_softmax<E: KvElem>(
    row: &mut [f32],
    v: &[E],
    (max, sum): (&mut f32, &mut f32),
    acc: &mut [f32],
) {
    let tile_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if tile_max == f32::NEG_INFINITY {
        return;
    }
    let new_max = max.max(tile_max);
    if *max != new_max {
        // e^(−∞) = 0 on the first visible tile, when `acc` and `sum` are still zero.
        let c = (*max - new_max).exp();
        *sum *= c;
        acc.iter_mut().for_each(|x| *x *= c);
        *max = new_max;
    }
    *sum += crate::vexp::exp_sub_sum(row, new_max);
    E::weighted_sum(row, v, acc);
}
