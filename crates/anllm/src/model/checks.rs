//! Validation of a forward step's input against the model and the cache: shapes, token
//! ids, output rows, the visibility grid and the context length, as errors (never panics).

use super::{ForwardInput, Llama, OutputRows, Visibility};
use crate::cache::KvCache;
use crate::{Error, Result};

impl Llama {
    pub(super) fn check_input(&self, input: &ForwardInput, cache: &KvCache) -> Result<usize> {
        let t = input.tokens.len();
        let shape_err = |op: &str, expected: String, got: String| Error::Shape {
            op: op.to_string(),
            expected,
            got,
        };
        if let Some(cells) = input.cells
            && cells.len() != t
        {
            return Err(shape_err(
                "forward cells",
                format!("{t} cells"),
                cells.len().to_string(),
            ));
        }
        if t == 0 || input.positions.len() != t {
            return Err(shape_err(
                "forward positions",
                format!("{t} positions for {t} (>0) tokens"),
                input.positions.len().to_string(),
            ));
        }
        if let Some(&bad) = input
            .tokens
            .iter()
            .find(|&&id| id as usize >= self.cfg.vocab_size)
        {
            return Err(shape_err(
                "forward token id",
                format!("< {}", self.cfg.vocab_size),
                bad.to_string(),
            ));
        }
        if let OutputRows::From(i) = input.rows
            && i >= t
        {
            return Err(shape_err("output rows", format!("< {t}"), i.to_string()));
        }
        if let Visibility::Mask(m) = input.visibility
            && (m.rows() != t || m.cols() != cache.len() + t)
        {
            return Err(shape_err(
                "visibility mask",
                format!("[{t}, {}]", cache.len() + t),
                format!("[{}, {}]", m.rows(), m.cols()),
            ));
        }
        let capacity = self.cfg.max_position_embeddings;
        if let Some(last) = input.positions.iter().map(|p| p.0 as usize).max()
            && last >= capacity
        {
            return Err(Error::ContextFull {
                used: cache.next_pos().0 as usize,
                requested: t,
                capacity,
            });
        }
        Ok(t)
    }
}
