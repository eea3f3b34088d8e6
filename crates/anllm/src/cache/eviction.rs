//! The plan a policy hands the cache: which slots to drop after a step.

/// The slots to drop after a step: sorted and unique by construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Eviction {
    slots: Vec<usize>,
}

impl Eviction {
    /// An eviction of `slots` (any order, duplicates allowed).
    pub fn from_slots(slots: impl IntoIterator<Item = usize>) -> Self {
        let mut slots: Vec<usize> = slots.into_iter().collect();
        slots.sort_unstable();
        slots.dedup();
        Self { slots }
    }

    /// The slots, ascending.
    pub fn slots(&self) -> &[usize] {
        &self.slots
    }

    /// Whether nothing is dropped.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Number of slots dropped.
    pub fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_is_sorted_and_unique() {
        assert_eq!(Eviction::from_slots([3, 1, 3]).slots(), &[1, 3]);
    }
}
