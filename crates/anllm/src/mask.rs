//! Attention visibility as a boolean grid, and its additive form for the attention kernel.
//!
//! Rows are new (query) tokens, columns are cached entries followed by the new tokens. The
//! AnLLM visibility rule (spec §2.3) will build these grids; the model only consumes them.

use candle_core::{Device, Tensor};

use crate::Result;

/// A `[rows, cols]` grid of "query row may attend to key column".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    rows: usize,
    cols: usize,
    allowed: Vec<bool>,
}

impl Mask {
    /// Plain causal visibility of `new` tokens over `cached` earlier entries plus themselves.
    pub fn causal(cached: usize, new: usize) -> Self {
        let cols = cached + new;
        let allowed = (0..new)
            .flat_map(|r| (0..cols).map(move |c| c <= cached + r))
            .collect();
        Self {
            rows: new,
            cols,
            allowed,
        }
    }

    /// Number of query rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of key columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Whether `row` may attend to `col`.
    pub fn get(&self, row: usize, col: usize) -> bool {
        self.allowed[row * self.cols + col]
    }

    /// Additive form `[rows, cols]`: 0 where visible, -inf where not.
    pub fn to_additive(&self, device: &Device) -> Result<Tensor> {
        let values: Vec<f32> = self
            .allowed
            .iter()
            .map(|&a| if a { 0.0 } else { f32::NEG_INFINITY })
            .collect();
        Ok(Tensor::from_vec(values, (self.rows, self.cols), device)?)
    }

    /// Renders the grid with `.` for visible and `x` for blocked, one line per row.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.rows * (self.cols + 1));
        for r in 0..self.rows {
            for c in 0..self.cols {
                out.push(if self.get(r, c) { '.' } else { 'x' });
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_mask_over_cache_renders_as_staircase() {
        assert_eq!(Mask::causal(2, 3).render(), "...xx\n....x\n.....\n");
    }
}
