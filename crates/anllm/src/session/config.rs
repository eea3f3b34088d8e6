//! What shapes a session besides the model, and what it reports.

use std::ops::Range;

use crate::Pos;
use crate::anchor::AnchorSet;
use crate::cache::KvCache;
use crate::mask::MaskRule;
use crate::policy::PolicyConfig;
use crate::threads::KeepWarm;

/// Which position RoPE gives a new token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionMode {
    /// Its index in the stream, evicted tokens counted (spec §3.4 recommendation): cached
    /// inference equals the masked full forward.
    #[default]
    Absolute,
    /// The current cache length plus its index in the step: the authors' stack (spec §3.4,
    /// §9.1), for reproducing their cached-generation numbers.
    Compressed,
}

/// Everything that shapes a session besides the model.
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    /// Who is an anchor or a pad.
    pub anchors: AnchorSet,
    /// The visibility rule.
    pub rule: MaskRule,
    /// What the cache keeps (the built-in policy, or a label for a caller's own).
    pub policy: PolicyConfig,
    /// RoPE positions.
    pub positions: PositionMode,
    /// Stream positions whose entries are never dropped and stay visible to later tokens.
    pub pins: Vec<Range<u32>>,
    /// Tokens per forward step during prefill (at least 1).
    pub chunk_size: usize,
    /// Whether pool workers spin through short steps: on for one stream that owns the
    /// machine (the CLI), off when several sessions share the pool (the default).
    pub keep_warm: KeepWarm,
}

impl SessionConfig {
    /// Plain causal attention with a full cache.
    pub fn causal(chunk_size: usize) -> Self {
        Self {
            chunk_size,
            ..Self::default()
        }
    }

    /// AnSAN attention over `anchors`, with the anchor-pruned cache.
    pub fn anchored(anchors: AnchorSet, chunk_size: usize) -> Self {
        Self {
            anchors,
            rule: MaskRule::AnSan,
            policy: PolicyConfig::Anchor,
            chunk_size,
            ..Self::default()
        }
    }

    /// The same configuration with `policy`.
    pub fn with_policy(self, policy: PolicyConfig) -> Self {
        Self { policy, ..self }
    }

    /// The same configuration with the visibility `rule` (e.g. AnSAN with a local window).
    pub fn with_rule(self, rule: MaskRule) -> Self {
        Self { rule, ..self }
    }

    /// The same configuration with keep-warm `mode`.
    pub fn with_keep_warm(self, keep_warm: KeepWarm) -> Self {
        Self { keep_warm, ..self }
    }

    /// The policy object of `policy`; the built-in anchor policy keeps what the rule's local
    /// window ([`MaskRule::window`]) still shows, so pruning never drops a visible entry.
    pub fn build_policy(&self) -> Box<dyn crate::policy::KvPolicy> {
        match self.policy {
            PolicyConfig::Anchor => {
                Box::new(crate::policy::AnchorPolicy::with_window(self.rule.window()))
            }
            other => other.build(),
        }
    }

    pub(crate) fn is_pinned(&self, pos: Pos) -> bool {
        self.pins.iter().any(|r| r.contains(&pos.0))
    }
}

/// Cache statistics of a session.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CacheStats {
    /// Tokens processed so far.
    pub tokens_seen: usize,
    /// Entries in the cache now.
    pub entries: usize,
    /// Most entries held at once.
    pub peak_entries: usize,
    /// Bytes of K/V now.
    pub kv_bytes: usize,
    /// Most bytes of K/V held at once.
    pub peak_kv_bytes: usize,
    /// Bytes a full cache would hold now (`tokens_seen` entries).
    pub full_kv_bytes: usize,
    /// Bytes of K/V memory allocated now (the stores grow by doubling and never shrink).
    pub allocated_kv_bytes: usize,
    /// Element type of the stored keys and values.
    pub kv_dtype: crate::cache::KvDtype,
    /// C⇓ = 1 − entries / tokens_seen: the share of a full cache not kept.
    pub reduction: f64,
}

impl CacheStats {
    /// The statistics of `cache`.
    pub fn of(cache: &KvCache) -> Self {
        let per = cache.bytes_per_entry();
        let seen = cache.next_pos().0 as usize;
        // Per-layer policies: entries are the mean over layers, bytes what the layers hold.
        let entries = cache.held_entries();
        Self {
            tokens_seen: seen,
            entries,
            peak_entries: cache.peak_entries(),
            kv_bytes: cache.held_bytes(),
            peak_kv_bytes: cache.peak_entries() * per,
            full_kv_bytes: seen * per,
            allocated_kv_bytes: cache.capacity() * per,
            kv_dtype: cache.dtype(),
            reduction: match seen {
                0 => 0.0,
                _ => 1.0 - entries as f64 / seen as f64,
            },
        }
    }
}
