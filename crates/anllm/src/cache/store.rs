//! Per-layer K/V tensors with amortized growth: appending writes into preallocated capacity
//! (`slice_set`), so a decode step copies only the new entry, not the whole cache. Entries are
//! stored as f32 or f16 ([`KvDtype`]); appends convert.

use candle_core::{DType, Device, Tensor};

use super::KvDtype;
use crate::Result;

/// Keys and values of one layer.
#[derive(Debug)]
pub struct LayerStore {
    k: Tensor, // [kv_heads, capacity, head_dim]
    v: Tensor, // [kv_heads, capacity, head_dim]
    len: usize,
}

impl LayerStore {
    /// An empty store of `dtype` entries with room for `capacity` of them.
    pub fn new(
        kv_heads: usize,
        head_dim: usize,
        capacity: usize,
        dtype: KvDtype,
        device: &Device,
    ) -> Result<Self> {
        let k = Tensor::zeros((kv_heads, capacity.max(1), head_dim), dtype.dtype(), device)?;
        Ok(Self {
            v: k.zeros_like()?,
            k,
            len: 0,
        })
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Entries that fit without reallocating.
    pub fn capacity(&self) -> usize {
        self.k.dim(1).unwrap_or(0)
    }

    /// The stored element type.
    pub fn dtype(&self) -> DType {
        self.k.dtype()
    }

    /// Appends k, v: [kv_heads, t, head_dim] of any float dtype (converted to the store's);
    /// grows capacity by doubling when needed.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let t = k.dim(1)?;
        if self.len + t > self.capacity() {
            self.grow((self.len + t).max(2 * self.capacity()))?;
        }
        let dtype = self.dtype();
        self.k
            .slice_set(&k.to_dtype(dtype)?.contiguous()?, 1, self.len)?;
        self.v
            .slice_set(&v.to_dtype(dtype)?.contiguous()?, 1, self.len)?;
        self.len += t;
        Ok(())
    }

    /// A copy with its own memory (a clone would share the tensors' storage).
    pub fn deep_copy(&self) -> Result<Self> {
        Ok(Self {
            k: self.k.copy()?,
            v: self.v.copy()?,
            len: self.len,
        })
    }

    /// Views of the held keys and values: [kv_heads, len, head_dim] each, in the store's dtype.
    pub fn view(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            self.k.narrow(1, 0, self.len)?,
            self.v.narrow(1, 0, self.len)?,
        ))
    }

    /// The held keys and values as f32 (a view for an f32 store, a converted copy for f16).
    pub fn view_f32(&self) -> Result<(Tensor, Tensor)> {
        let (k, v) = self.view()?;
        Ok((k.to_dtype(DType::F32)?, v.to_dtype(DType::F32)?))
    }

    /// The whole preallocated tensors `[kv_heads, capacity, head_dim]` (entries `0..len` valid),
    /// for kernels that read the cache in place.
    pub fn raw(&self) -> (&Tensor, &Tensor) {
        (&self.k, &self.v)
    }

    /// Keeps the first `len` entries.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Keeps, of the entries from slot `first` on, only those at `first + keep[i]` (`keep`
    /// sorted ascending), moving them down to start at `first`. Entries before `first` are not
    /// touched, so the cost is proportional to the tail.
    pub fn retain_tail(&mut self, first: usize, keep: &[u32]) -> Result<()> {
        let tail = self.len.saturating_sub(first);
        if keep.len() == tail {
            return Ok(());
        }
        // Move each run of consecutive kept entries down with one copy per run.
        let mut dest = first;
        let mut i = 0;
        while i < keep.len() {
            let start = keep[i] as usize;
            let mut run = 1;
            while keep
                .get(i + run)
                .is_some_and(|&k| k as usize == start + run)
            {
                run += 1;
            }
            let src = first + start;
            if src != dest {
                // A fresh copy: a view of the same storage would alias the destination.
                let k = self.k.narrow(1, src, run)?.force_contiguous()?;
                let v = self.v.narrow(1, src, run)?.force_contiguous()?;
                self.k.slice_set(&k, 1, dest)?;
                self.v.slice_set(&v, 1, dest)?;
            }
            dest += run;
            i += run;
        }
        self.len = dest;
        Ok(())
    }

    /// Keeps, in head `h`, only the entries `keep[h]` (ascending, the same count for every
    /// head), moved down to start at slot 0: the heads then hold different entries. Only the
    /// tail from the first entry any head moves is copied.
    pub fn retain_heads(&mut self, keep: &[Vec<u32>]) -> Result<()> {
        let (heads, _, _) = self.k.dims3()?;
        let m = keep.first().map_or(0, Vec::len);
        if keep.len() != heads || keep.iter().any(|k| k.len() != m) {
            return Err(crate::Error::Shape {
                op: "per-head retain".into(),
                expected: format!("{heads} heads keeping {m} entries each"),
                got: format!("{:?}", keep.iter().map(Vec::len).collect::<Vec<_>>()),
            });
        }
        let first = (keep.iter())
            .map(|k| (0..m).find(|&j| k[j] as usize != j).unwrap_or(m))
            .min()
            .unwrap_or(m);
        if first < m {
            let device = self.k.device().clone();
            let gather = |x: &Tensor| -> Result<Tensor> {
                let rows = (0..heads)
                    .map(|h| {
                        let idx = Tensor::from_slice(&keep[h][first..], m - first, &device)?;
                        Ok(x.get(h)?.index_select(&idx, 0)?)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Tensor::stack(&rows, 0)?)
            };
            let (k, v) = (gather(&self.k)?, gather(&self.v)?);
            self.k.slice_set(&k, 1, first)?;
            self.v.slice_set(&v, 1, first)?;
        }
        self.len = m;
        Ok(())
    }

    /// Reallocates to `len + headroom` entries when the store reserves more than that.
    pub fn shrink_to_fit(&mut self, headroom: usize) -> Result<()> {
        match self.capacity() > self.len + headroom {
            true => self.grow(self.len + headroom),
            false => Ok(()),
        }
    }

    fn grow(&mut self, capacity: usize) -> Result<()> {
        let (heads, _, dim) = self.k.dims3()?;
        let dtype = KvDtype::of(self.dtype());
        let mut bigger = Self::new(heads, dim, capacity, dtype, self.k.device())?;
        let (k, v) = self.view()?;
        if self.len > 0 {
            bigger.append(&k, &v)?;
        }
        *self = bigger;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store of 2 heads × 6 entries × 2 dims whose values name their head and entry.
    fn store(dtype: KvDtype) -> LayerStore {
        let mut s = LayerStore::new(2, 2, 4, dtype, &Device::Cpu).unwrap();
        let k: Vec<f32> = (0..2)
            .flat_map(|h| (0..6).flat_map(move |i| [h as f32, i as f32]))
            .collect();
        let k = Tensor::from_vec(k, (2, 6, 2), &Device::Cpu).unwrap();
        s.append(&k, &(&k * 2.0).unwrap()).unwrap();
        s
    }

    #[test]
    fn retain_heads_keeps_each_heads_own_entries_in_order() {
        for dtype in [KvDtype::F32, KvDtype::F16] {
            let mut s = store(dtype);
            // Head 0 keeps entries 0, 2, 5; head 1 keeps 0, 1, 4 (hand-chosen).
            s.retain_heads(&[vec![0, 2, 5], vec![0, 1, 4]]).unwrap();
            assert_eq!(s.len(), 3);
            let (k, v) = s.view_f32().unwrap();
            let want_k = [
                [[0., 0.], [0., 2.], [0., 5.]],
                [[1., 0.], [1., 1.], [1., 4.]],
            ];
            assert_eq!(
                k.to_vec3::<f32>().unwrap(),
                want_k.map(|h| h.to_vec()).to_vec()
            );
            let want_v = want_k.map(|h| h.map(|e| e.map(|x| 2.0 * x).to_vec()).to_vec());
            assert_eq!(v.to_vec3::<f32>().unwrap(), want_v.to_vec());
            // Appending after a per-head retain lands after the kept entries.
            let new = Tensor::from_vec(vec![9f32, 9., 8., 8.], (2, 1, 2), &Device::Cpu).unwrap();
            s.append(&new, &new).unwrap();
            let (k, _) = s.view_f32().unwrap();
            assert_eq!(k.to_vec3::<f32>().unwrap()[1][3], [8., 8.]);
        }
    }

    #[test]
    fn retain_heads_rejects_unequal_counts() {
        let mut s = store(KvDtype::F32);
        assert!(s.retain_heads(&[vec![0, 1], vec![0]]).is_err());
        assert!(s.retain_heads(&[vec![0]]).is_err());
        assert_eq!(s.len(), 6);
    }
}
