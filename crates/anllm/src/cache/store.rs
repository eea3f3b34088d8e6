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
