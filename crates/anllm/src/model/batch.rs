//! Several sequences in one forward step (batched decode): the projections, MLPs and LM head
//! run once over the stacked rows of every sequence, so each weight is read once per step
//! instead of once per sequence; attention runs per sequence, over its own cache, with its own
//! positions and visibility.

use candle_core::Tensor;

use super::attention::StepContext;
use super::{ForwardInput, Llama, OutputRows};
use crate::cache::KvCache;
use crate::{Error, Result};

/// One sequence of a batched step: its input (whose `rows` must be `Last`) and its cache.
pub struct BatchItem<'a> {
    /// The sequence's new tokens, positions, visibility and cells.
    pub input: ForwardInput<'a>,
    /// Its cache.
    pub cache: &'a mut KvCache,
}

/// The per-sequence parts of a batched step.
struct Part {
    rows: usize,
    cos: Tensor,
    sin: Tensor,
    mask: Option<Tensor>,
}

impl Llama {
    /// Runs every item's step as one forward pass and returns each item's last-row logits
    /// (`[1, vocab]`), equal to running [`Llama::forward`] on each. A failure leaves every
    /// cache as it was.
    pub fn forward_batch(&self, items: &mut [BatchItem]) -> Result<Vec<Tensor>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<_> = items.iter().map(|it| it.cache.mark()).collect();
        let out = self.batch_step(items);
        if out.is_err() {
            for (it, mark) in items.iter_mut().zip(marks) {
                it.cache.rollback(mark);
            }
        }
        out
    }

    fn batch_parts(&self, items: &[BatchItem]) -> Result<Vec<Part>> {
        items
            .iter()
            .map(|it| {
                let t = self.check_input(&it.input, it.cache)?;
                if it.input.rows != OutputRows::Last {
                    return Err(Error::unsupported("a batched step returns last rows only"));
                }
                let (cos, sin) = self.rope.gather(it.input.positions)?;
                let mask = self.additive_mask(it.input.visibility, it.cache.len(), t)?;
                if it.cache.is_ragged() && mask.is_some() {
                    return Err(Error::unsupported(
                        "a batched step with a mask on a cache whose layers hold different \
                         entries (per-layer policy)",
                    ));
                }
                Ok(Part {
                    rows: t,
                    cos,
                    sin,
                    mask,
                })
            })
            .collect()
    }

    fn batch_step(&self, items: &mut [BatchItem]) -> Result<Vec<Tensor>> {
        let parts = self.batch_parts(items)?;
        let ids: Vec<u32> = items
            .iter()
            .flat_map(|it| it.input.tokens)
            .copied()
            .collect();
        let mut x = self.embed_tokens.lookup(&ids, &self.device)?; // [rows, hidden]
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.input_layernorm.forward(&x)?;
            let (q, k, v) = layer.self_attn.project(&h)?;
            let mut outs = Vec::with_capacity(items.len());
            let mut offset = 0;
            for (it, part) in items.iter_mut().zip(&parts) {
                let rows = |y: &Tensor| y.narrow(0, offset, part.rows);
                let step = StepContext {
                    rope: &self.rope,
                    cos: &part.cos,
                    sin: &part.sin,
                    mask: part.mask.as_ref(),
                    observe: None,
                    dense: self.dense_attention(),
                };
                let store = it.cache.layer_mut(i);
                let (out, _) = (layer.self_attn).attend_rows(
                    &rows(&q)?,
                    &rows(&k)?,
                    &rows(&v)?,
                    store,
                    &step,
                )?;
                outs.push(out);
                offset += part.rows;
            }
            self.check_fault(i)?;
            x = (x + layer.self_attn.output(&Tensor::cat(&outs, 0)?)?)?;
            let h = layer.post_attention_layernorm.forward(&x)?;
            x = (&x + layer.mlp.forward(&h)?)?;
        }
        let last: Vec<u32> = (parts.iter())
            .scan(0u32, |end, p| {
                *end += p.rows as u32;
                Some(*end - 1)
            })
            .collect();
        let last = Tensor::from_slice(&last, last.len(), &self.device)?;
        let x = x.index_select(&last, 0)?;
        let logits = self.lm_head.forward(&self.norm.forward(&x)?)?;
        for it in items.iter_mut() {
            self.push_cells(&it.input, it.cache);
        }
        (0..parts.len())
            .map(|j| Ok(logits.narrow(0, j, 1)?))
            .collect()
    }
}
