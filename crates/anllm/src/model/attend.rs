//! Attention for a few query rows over a long cache on CPU (decode): one pass over each KV
//! head's keys and values, shared by the query heads of its group, parallel over KV heads.
//!
//! candle's batched GEMM is built for large tiles; with 1–16 query rows against thousands of
//! keys it spends its time in packing and a 6-wide micro-kernel. This path reads each key and
//! value once per step, which is what bounds decode at depth.

use candle_core::{CpuStorage, Device, Storage, Tensor};
use rayon::prelude::*;

use super::kv_elem::KvElem;
use crate::cache::LayerStore;
use crate::{Error, Result};

/// Most new rows per query head for the decode path (more take the tiled path).
pub const MAX_ROWS: usize = 16;

/// q: [kv_heads, groups * t, hd] (row = g * t + i), mask: additive [t, n] or None.
/// Returns [kv_heads, groups * t, hd], and with `observe: Some(r)` the attention mass per KV
/// head and key of the last `r` rows ([`super::mass`]). Up to [`MAX_ROWS`] new rows take the
/// decode path (key spans in parallel, merged); more take the tiled path ([`super::tiled`]).
pub fn attend(
    q: &Tensor,
    store: &LayerStore,
    mask: Option<&Tensor>,
    t: usize,
    observe: Option<usize>,
) -> Result<(Tensor, Option<Vec<Vec<f32>>>)> {
    let (kv_heads, rows, hd) = q.dims3()?;
    let qs: Vec<f32> = q.contiguous()?.flatten_all()?.to_vec1()?;
    let shape = Shape {
        kv_heads,
        rows,
        hd,
        n: store.len(),
        cap: store.capacity(),
        t,
    };
    // The mask is read in place (a prefill chunk's is t × n floats, and every layer reads it).
    let mask = mask.map(Tensor::contiguous).transpose()?;
    let mask_guard = mask.as_ref().map(Tensor::storage_and_layout);
    let mask: Option<&[f32]> = match &mask_guard {
        Some((guard, layout)) => match &**guard {
            Storage::Cpu(CpuStorage::F32(m)) => Some(&m[layout.start_offset()..][..t * shape.n]),
            _ => {
                return Err(Error::unsupported(
                    "an attention mask that is not f32 on the CPU",
                ));
            }
        },
        None => None,
    };
    let (k_all, v_all) = store.raw();
    let (k_guard, k_layout) = k_all.storage_and_layout();
    let (v_guard, v_layout) = v_all.storage_and_layout();
    let (k0, v0) = (k_layout.start_offset(), v_layout.start_offset());
    let (out, mass) = match (&*k_guard, &*v_guard) {
        (Storage::Cpu(CpuStorage::F32(ks)), Storage::Cpu(CpuStorage::F32(vs))) => (
            run(&qs, &ks[k0..], &vs[v0..], mask, &shape),
            observe.map(|r| super::mass::mass(&qs, &ks[k0..], mask, &shape, r)),
        ),
        (Storage::Cpu(CpuStorage::F16(ks)), Storage::Cpu(CpuStorage::F16(vs))) => (
            run(&qs, &ks[k0..], &vs[v0..], mask, &shape),
            observe.map(|r| super::mass::mass(&qs, &ks[k0..], mask, &shape, r)),
        ),
        _ => {
            return Err(Error::unsupported(
                "CPU attention on a cache that is not f32 or f16 on the CPU",
            ));
        }
    };
    drop((k_guard, v_guard, mask_guard));
    let out = Tensor::from_vec(out, (kv_heads, rows, hd), &Device::Cpu)?;
    Ok((out, mass))
}

/// The decode path for a few rows, the tiled path for more.
fn run<E: KvElem>(qs: &[f32], ks: &[E], vs: &[E], mask: Option<&[f32]>, s: &Shape) -> Vec<f32> {
    if s.t > MAX_ROWS {
        return super::tiled::attend(qs, ks, vs, mask, s);
    }
    let partials = partials(qs, ks, vs, mask, s);
    let spans = partials.len() / s.kv_heads;
    let mut out = vec![0f32; s.kv_heads * s.rows * s.hd];
    for (h, dst) in out.chunks_exact_mut(s.rows * s.hd).enumerate() {
        merge(&partials[h * spans..(h + 1) * spans], s.hd, dst);
    }
    out
}

/// Sizes of one call: the cache's heads are `cap` slots apart, `n` of them valid; `t` new
/// rows per query head (`rows = groups · t`).
pub(super) struct Shape {
    pub kv_heads: usize,
    pub rows: usize,
    pub hd: usize,
    pub n: usize,
    pub cap: usize,
    pub t: usize,
}

/// The softmax statistics of every (KV head, span of keys) task, head-major.
fn partials<E: KvElem>(
    qs: &[f32],
    ks: &[E],
    vs: &[E],
    mask: Option<&[f32]>,
    s: &Shape,
) -> Vec<Partial> {
    let scale = 1.0 / (s.hd as f32).sqrt();
    // Split every head's keys into spans so that all threads have work even with fewer KV
    // heads than threads (flash-decoding); spans are merged with their softmax statistics.
    let target_tasks = 4 * rayon::current_num_threads();
    let span =
        s.n.div_ceil(target_tasks.div_ceil(s.kv_heads))
            .max(MIN_SPAN);
    let spans = s.n.div_ceil(span);
    let (hd, rows, cap) = (s.hd, s.rows, s.cap);
    (0..s.kv_heads * spans)
        .into_par_iter()
        .map(|task| {
            let (h, sp) = (task / spans, task % spans);
            let keys = sp * span..s.n.min((sp + 1) * span);
            let head = Head {
                q: &qs[h * rows * hd..][..rows * hd],
                k: &ks[h * cap * hd..][keys.start * hd..keys.end * hd],
                v: &vs[h * cap * hd..][keys.start * hd..keys.end * hd],
                hd,
                n: s.n,
                first: keys.start,
            };
            head.run(mask, s.t, scale)
        })
        .collect()
}

/// Fewest keys per task.
const MIN_SPAN: usize = 64;

/// Softmax statistics of one span of keys: per row the max score, the sum of exp(score − max)
/// and the exp-weighted sum of values.
struct Partial {
    max: Vec<f32>,
    sum: Vec<f32>,
    acc: Vec<f32>, // [rows, hd]
}

/// Combines spans: out = Σ e^(m_s − M)·acc_s / Σ e^(m_s − M)·l_s per row.
fn merge(parts: &[Partial], hd: usize, dst: &mut [f32]) {
    for (r, out) in dst.chunks_exact_mut(hd).enumerate() {
        let max = parts
            .iter()
            .map(|p| p.max[r])
            .fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            continue; // nothing visible: zero output, as a fully masked softmax row gives
        }
        let mut total = 0.0;
        for p in parts {
            let w = (p.max[r] - max).exp();
            total += w * p.sum[r];
            f32::axpy(w, &p.acc[r * hd..(r + 1) * hd], out);
        }
        let inv = 1.0 / total;
        out.iter_mut().for_each(|x| *x *= inv);
    }
}

struct Head<'a, E> {
    q: &'a [f32], // [rows, hd]
    k: &'a [E],   // [span, hd]
    v: &'a [E],   // [span, hd]
    hd: usize,
    n: usize,
    first: usize, // cache slot of the span's first key
}

impl<E: KvElem> Head<'_, E> {
    fn run(&self, mask: Option<&[f32]>, t: usize, scale: f32) -> Partial {
        let rows = self.q.len() / self.hd;
        let span = self.k.len() / self.hd;
        let mut scores = vec![0f32; rows * span];
        for (r, q) in self.q.chunks_exact(self.hd).enumerate() {
            let at = (r % t) * self.n + self.first;
            let bias = mask.map(|m| &m[at..at + span]);
            scores_into::<E>(
                q,
                self.k,
                bias,
                scale,
                &mut scores[r * span..(r + 1) * span],
            );
        }
        let mut max = vec![f32::NEG_INFINITY; rows];
        let mut sum = vec![0f32; rows];
        for ((row, m), l) in scores.chunks_exact_mut(span).zip(&mut max).zip(&mut sum) {
            (*m, *l) = exp_shifted(row);
        }
        let mut acc = vec![0f32; rows * self.hd];
        for (r, out) in acc.chunks_exact_mut(self.hd).enumerate() {
            E::weighted_sum(&scores[r * span..(r + 1) * span], self.v, out);
        }
        Partial { max, sum, acc }
    }
}

/// Replaces `row` by exp(row − max) and returns (max, Σ); all zeros when fully masked. A
/// masked score (−∞) becomes exactly 0 ([`vexp`](crate::vexp)).
pub(super) fn exp_shifted(row: &mut [f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return (max, 0.0);
    }
    (max, crate::vexp::exp_sub_sum(row, max))
}

/// `row[j] = scale · (q · k_j) + bias[j]` for the keys `k` (`row.len() × hd`): eight keys per
/// pass (independent accumulators), the last few one by one. Shared by the decode, tiled and
/// attention-mass passes.
pub(super) fn scores_into<E: KvElem>(
    q: &[f32],
    k: &[E],
    bias: Option<&[f32]>,
    scale: f32,
    row: &mut [f32],
) {
    let hd = q.len();
    let full = row.len() - row.len() % 8;
    let mut eight = [0f32; 8];
    for j in (0..full).step_by(8) {
        E::dot8(q, &k[j * hd..(j + 8) * hd], &mut eight);
        row[j..j + 8].copy_from_slice(&eight);
    }
    for j in full..row.len() {
        row[j] = E::dot(q, &k[j * hd..(j + 1) * hd]);
    }
    match bias {
        Some(b) => (row.iter_mut().zip(b)).for_each(|(x, b)| *x = *x * scale + b),
        None => row.iter_mut().for_each(|x| *x *= scale),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::KvDtype;
    use crate::model::kv_elem::tests::values;

    /// Softmax probabilities in f64 of one query row over keys `k` with additive `bias`;
    /// all zeros when every key is masked.
    fn probabilities(q: &[f32], k: &[f32], bias: &[f32], hd: usize) -> Vec<f64> {
        let scale = 1.0 / (hd as f64).sqrt();
        let scores: Vec<f64> = (k.chunks_exact(hd).zip(bias))
            .map(|(key, b)| {
                let dot: f64 = q.iter().zip(key).map(|(x, y)| f64::from(*x * *y)).sum();
                dot * scale + f64::from(*b)
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            return vec![0.0; scores.len()];
        }
        let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = w.iter().sum();
        w.iter().map(|w| w / total).collect()
    }

    /// Softmax attention in f64 over the K/V the store holds (read back, so f16 rounding is
    /// in both sides), for one query row.
    fn reference(q: &[f32], k: &[f32], v: &[f32], bias: &[f32], hd: usize) -> Vec<f64> {
        let p = probabilities(q, k, bias, hd);
        (0..hd)
            .map(|d| {
                (p.iter().zip(v.chunks_exact(hd)))
                    .map(|(w, val)| w * f64::from(val[d]))
                    .sum()
            })
            .collect()
    }

    /// `attend` against [`reference`] for every row of every head, on f32 and f16 caches.
    /// With `observe`, also the mass of the last `observe` rows against the f64 softmax.
    fn check(
        (kv_heads, hd, n, t, groups): (usize, usize, usize, usize, usize),
        mask: &[f32],
        observe: Option<usize>,
    ) {
        let dev = Device::Cpu;
        for dtype in [KvDtype::F32, KvDtype::F16] {
            let mut store = LayerStore::new(kv_heads, hd, 8, dtype, &dev).unwrap();
            let k = Tensor::from_vec(values(kv_heads * n * hd, 1), (kv_heads, n, hd), &dev);
            let v = Tensor::from_vec(values(kv_heads * n * hd, 2), (kv_heads, n, hd), &dev);
            store.append(&k.unwrap(), &v.unwrap()).unwrap();
            let rows = groups * t;
            let q = values(kv_heads * rows * hd, 3);
            let qt = Tensor::from_vec(q.clone(), (kv_heads, rows, hd), &dev).unwrap();
            let mt = Tensor::from_vec(mask.to_vec(), (t, n), &dev).unwrap();
            let (got, mass) = attend(&qt, &store, Some(&mt), t, observe).unwrap();
            let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
            let mut want_mass = vec![vec![0f64; n]; kv_heads];
            let (ks, vs) = store.view_f32().unwrap();
            let ks: Vec<f32> = ks.flatten_all().unwrap().to_vec1().unwrap();
            let vs: Vec<f32> = vs.flatten_all().unwrap().to_vec1().unwrap();
            for h in 0..kv_heads {
                for r in 0..rows {
                    let at = (h * rows + r) * hd;
                    let bias = &mask[(r % t) * n..(r % t + 1) * n];
                    let k = &ks[h * n * hd..(h + 1) * n * hd];
                    let want = match bias.iter().all(|b| *b == f32::NEG_INFINITY) {
                        true => vec![0.0; hd], // a row that sees nothing gives zeros
                        false => {
                            let v = &vs[h * n * hd..(h + 1) * n * hd];
                            reference(&q[at..at + hd], k, v, bias, hd)
                        }
                    };
                    if observe.is_some_and(|o| r % t >= t - o.min(t)) {
                        let p = probabilities(&q[at..at + hd], k, bias, hd);
                        want_mass[h].iter_mut().zip(p).for_each(|(m, p)| *m += p);
                    }
                    for (d, w) in want.iter().enumerate() {
                        let g = f64::from(got[at + d]);
                        // f32 accumulation of ≤ 300 terms in [-1, 1] against an f64 sum.
                        assert!((g - w).abs() < 1e-5, "{dtype:?} h{h} r{r} d{d}: {g} vs {w}");
                    }
                }
            }
            assert_eq!(mass.is_some(), observe.is_some());
            let mass = mass.unwrap_or_default();
            assert_eq!(mass.len(), if observe.is_some() { kv_heads } else { 0 });
            for (h, (got, want)) in mass.iter().zip(&want_mass).enumerate() {
                for (j, (g, w)) in got.iter().zip(want).enumerate() {
                    // A sum of at most 36 probabilities, each within f32 rounding of the f64 one.
                    assert!(
                        (f64::from(*g) - w).abs() < 1e-5,
                        "{dtype:?} mass h{h} {j}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn attend_matches_a_scalar_softmax_on_f32_and_f16_caches() {
        let (n, t) = (150, 3);
        // Row i sees keys 0..n - t + i + 1 (causal), with a bias on every 7th key.
        let mask: Vec<f32> = (0..t * n)
            .map(|x| match (x / n, x % n) {
                (i, j) if j > n - t + i => f32::NEG_INFINITY,
                (_, j) if j % 7 == 0 => -1.5,
                _ => 0.0,
            })
            .collect();
        check((2, 16, n, t, 2), &mask, None);
        check((2, 16, n, t, 2), &mask, Some(2));
    }

    /// The tiled prefill path (more than `MAX_ROWS` rows) under a hand-built anchor mask: 200
    /// cached keys of which every 25th is an anchor, then 40 new rows in segments of 10 whose
    /// last token is an anchor; row i sees the cached anchors, the new anchors of earlier
    /// segments and its own segment up to itself. Whole 64-key tiles are invisible to most
    /// rows (skipped), one row sees nothing (zeros), and a bias hits some visible keys.
    #[test]
    fn tiled_attention_matches_a_scalar_softmax_under_an_anchor_mask() {
        let (cached, t, seg) = (200, 40, 10);
        let n = cached + t;
        let visible = |i: usize, j: usize| match j < cached {
            true => j % 25 == 24,
            false => {
                let (own, key) = ((i / seg), (j - cached) / seg);
                (key < own && (j - cached) % seg == seg - 1) || (key == own && j - cached <= i)
            }
        };
        let mask: Vec<f32> = (0..t * n)
            .map(|x| match (x / n, x % n) {
                (17, _) => f32::NEG_INFINITY,
                (i, j) if !visible(i, j) => f32::NEG_INFINITY,
                (_, j) if j % 3 == 0 => -0.75,
                _ => 0.0,
            })
            .collect();
        assert!(t > MAX_ROWS);
        check((2, 64, n, t, 3), &mask, None);
        check((2, 64, n, t, 3), &mask, Some(6));
    }
}
