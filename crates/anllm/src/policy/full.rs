//! Full: never drops anything (the dense baseline).

use super::{Eviction, KvPolicy, Observation};

/// Never drops anything: the dense baseline.
#[derive(Debug, Clone, Copy, Default)]
pub struct Full;

impl KvPolicy for Full {
    fn name(&self) -> &'static str {
        "full"
    }

    fn plan(&mut self, _obs: &Observation<'_>) -> Eviction {
        Eviction::default()
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(*self)
    }
}
