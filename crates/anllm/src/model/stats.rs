//! Attention statistics of one step, for policies that score entries by the attention they
//! receive (H2O, TOVA, SnapKV).

/// The attention mass a step's queries put on each cached key, per layer: for layer `l` and
/// slot `s` (a cell; 0 for a cell the layer no longer holds), the sum over query heads and the step's last [`queries`](Self::queries) query rows
/// (all of them, or the trailing window a policy asked for) of the softmax probability of key
/// `s`. Slots are those of the cache after the step's append, before any eviction.
///
/// Each query row of each head distributes a mass of 1, so every layer sums to
/// `queries × heads`. The model also records the mass per KV head (summed over the query
/// heads of its group), over the entries that head holds ([`head`](Self::head)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttentionStats {
    layers: Vec<Vec<f32>>,        // [layers][slots]
    per_head: Vec<Vec<Vec<f32>>>, // [layers][kv_heads][entries of the head]
    queries: usize,
    heads: usize,
}

impl AttentionStats {
    pub(crate) fn new(queries: usize, heads: usize) -> Self {
        Self {
            layers: Vec::new(),
            per_head: Vec::new(),
            queries,
            heads,
        }
    }

    /// Records a layer's mass per slot (summed over heads).
    pub fn push_layer(&mut self, mass: Vec<f32>) {
        self.layers.push(mass);
    }

    /// Records a layer's mass per KV head, each over the entries that head holds (`cells`:
    /// the layer's cached cells per head, `None` when every head holds every cell in slot
    /// order; entries past a head's list are the step's new cells, after the `n − new` cached
    /// ones), and its sum per cell (`n` cells).
    pub fn push_layer_heads(
        &mut self,
        per_head: Vec<Vec<f32>>,
        cells: Option<&[&[u32]]>,
        n: usize,
    ) {
        let mut total = vec![0.0f32; n];
        for (h, mass) in per_head.iter().enumerate() {
            let held = cells.map(|c| c[h]);
            let cached = held.map_or(0, <[u32]>::len);
            let first_new = n - (mass.len() - cached.min(mass.len()));
            for (i, m) in mass.iter().enumerate() {
                let cell = match held {
                    Some(held) if i < cached => held[i] as usize,
                    Some(_) => first_new + (i - cached),
                    None => i,
                };
                if let Some(t) = total.get_mut(cell) {
                    *t += m;
                }
            }
        }
        self.layers.push(total);
        self.per_head.push(per_head);
    }

    /// Mass per entry of KV head `head` in layer `layer`, over the entries that head holds
    /// (`None` when only the per-slot sums were recorded).
    pub fn head(&self, layer: usize, head: usize) -> Option<&[f32]> {
        self.per_head.get(layer)?.get(head).map(Vec::as_slice)
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

    /// KV heads with a per-head mass (0 when only per-slot sums were recorded).
    pub fn kv_heads(&self) -> usize {
        self.per_head.first().map_or(0, Vec::len)
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
