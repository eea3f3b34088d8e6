//! Attention statistics of one step, for policies that score entries by the attention they
//! receive (H2O, TOVA, SnapKV).

/// The attention mass a step's queries put on each cached key, per layer: for layer `l` and
/// slot `s`, the sum over query heads and the step's last [`queries`](Self::queries) query rows
/// (all of them, or the trailing window a policy asked for) of the softmax probability of key
/// `s`. Slots are those of the cache after the step's append, before any eviction.
///
/// Each query row of each head distributes a mass of 1, so every layer sums to
/// `queries × heads`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttentionStats {
    layers: Vec<Vec<f32>>, // [layers][slots]
    queries: usize,
    heads: usize,
}

impl AttentionStats {
    pub(crate) fn new(queries: usize, heads: usize) -> Self {
        Self {
            layers: Vec::new(),
            queries,
            heads,
        }
    }

    pub(crate) fn push_layer(&mut self, mass: Vec<f32>) {
        self.layers.push(mass);
    }

    /// Number of layers recorded.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Mass per slot in layer `layer` (`None` past the last layer).
    pub fn layer(&self, layer: usize) -> Option<&[f32]> {
        self.layers.get(layer).map(Vec::as_slice)
    }

    /// Query rows counted (the step's last ones).
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// Query heads per layer.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Mass per slot summed over layers.
    pub fn total(&self) -> Vec<f32> {
        let slots = self.layers.first().map_or(0, Vec::len);
        let mut total = vec![0.0; slots];
        for layer in &self.layers {
            for (t, m) in total.iter_mut().zip(layer) {
                *t += m;
            }
        }
        total
    }
}
