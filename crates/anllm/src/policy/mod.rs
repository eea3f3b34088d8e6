//! KV policies: after every forward step a policy *plans* which entries to drop; only the
//! cache *applies* the plan ([`KvCache::apply`](crate::cache::KvCache::apply)), as in
//! llama.cpp's memory interface. (kvpress calls the same idea a "press".)
//!
//! A policy sees an [`Observation`] of the step: the cells after the step's append, which
//! slots the step appended, and, when it asks for them ([`KvPolicy::needs_attention`]), the
//! attention mass the step's queries put on every cached key, per layer. Policies are trait
//! objects, so a user can pass their own to [`Session::with_policy`](crate::Session::with_policy);
//! [`PolicyConfig`] names the built-in ones for configuration files, the CLI and the server.
//!
//! Adding a policy: one file here, one [`PolicyConfig`] variant, one entry in
//! [`PolicyConfig::examples`] (which puts it in the session test matrix, `tests/policies.rs`).

mod anchor;
mod full;
mod h2o;
mod sepllm;
mod streaming;
mod tova;

use std::ops::Range;

pub use anchor::AnchorPolicy;
pub use full::Full;
pub use h2o::H2o;
pub use sepllm::SepLlm;
pub use streaming::StreamingLlm;
pub use tova::Tova;

use crate::cache::Cells;
pub use crate::cache::Eviction;
use crate::model::AttentionStats;
use crate::{Error, Result};

/// What a policy sees after a step.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// The cached cells, this step's included.
    pub cells: &'a Cells,
    /// The slots of this step's entries (the tail of the cache).
    pub appended: Range<usize>,
    /// Attention mass of the step's queries over the cached keys, per layer; `Some` when the
    /// policy [needs it](KvPolicy::needs_attention).
    pub attention: Option<&'a AttentionStats>,
}

/// Decides what the cache keeps.
///
/// Three required methods: a name, the plan, and a fresh copy for
/// [`Session::fork`](crate::Session::fork); the rest have defaults.
pub trait KvPolicy: Send + std::fmt::Debug {
    /// Stable short name used by the CLI, reports and golden files (`"full"`, `"anchor"`, …).
    fn name(&self) -> &'static str;

    /// Called after every forward step, before anything is dropped; returns what to drop.
    /// The cache applies it; a policy never mutates the cache.
    fn plan(&mut self, obs: &Observation<'_>) -> Eviction;

    /// A copy of this policy in its current state, for a forked session.
    fn fork(&self) -> Box<dyn KvPolicy>;

    /// Whether [`Observation::attention`] must be filled (costs a dense attention pass).
    fn needs_attention(&self) -> bool {
        false
    }

    /// Most entries the cache holds after any [`plan`](KvPolicy::plan), if bounded: the
    /// session test matrix asserts it after every step.
    fn max_entries(&self) -> Option<usize> {
        None
    }

    /// Entries to preallocate for a stream of about `expected_tokens` tokens prefilled in
    /// chunks of `chunk_size` (the cache still grows if needed).
    fn capacity_hint(&self, expected_tokens: usize, chunk_size: usize) -> usize {
        match self.max_entries() {
            Some(max) => expected_tokens.min(max.saturating_add(chunk_size)),
            None => expected_tokens,
        }
    }

    /// Forgets per-stream state when the session is reset.
    fn reset(&mut self) {}
}

/// The built-in policies by name, for configuration (serde: `{"kind": "streaming", "sinks":
/// 4, "window": 256}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// [`Full`]: keep everything.
    #[default]
    Full,
    /// [`AnchorPolicy`]: anchors, pinned entries and the open segment (AnLLM).
    Anchor,
    /// [`StreamingLlm`]: the first `sinks` entries and the last `window` ones.
    Streaming {
        /// Attention-sink entries kept from the start of the stream.
        sinks: usize,
        /// Most recent entries kept.
        window: usize,
    },
    /// [`H2o`]: heavy hitters by accumulated attention plus the most recent entries.
    H2o {
        /// Most entries kept.
        budget: usize,
        /// Most recent entries always kept (less than `budget`).
        recent: usize,
    },
    /// [`Tova`]: the entries the current step attends to most.
    Tova {
        /// Most entries kept.
        budget: usize,
    },
    /// [`SepLlm`]: the first `sinks` entries, every separator (anchor) and the last `window`.
    Sepllm {
        /// Attention-sink entries kept from the start of the stream.
        sinks: usize,
        /// Most recent entries kept.
        window: usize,
    },
}

impl PolicyConfig {
    /// The policy object.
    pub fn build(&self) -> Box<dyn KvPolicy> {
        match *self {
            Self::Full => Box::new(Full),
            Self::Anchor => Box::new(AnchorPolicy),
            Self::Streaming { sinks, window } => Box::new(StreamingLlm::new(sinks, window)),
            Self::H2o { budget, recent } => Box::new(H2o::new(budget, recent)),
            Self::Tova { budget } => Box::new(Tova::new(budget)),
            Self::Sepllm { sinks, window } => Box::new(SepLlm::new(sinks, window)),
        }
    }

    /// The policy's stable name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Anchor => "anchor",
            Self::Streaming { .. } => "streaming",
            Self::H2o { .. } => "h2o",
            Self::Tova { .. } => "tova",
            Self::Sepllm { .. } => "sepllm",
        }
    }

    /// Every built-in policy with an easy and a hard setting: the session test matrix.
    pub fn examples() -> Vec<Self> {
        vec![
            Self::Full,
            Self::Anchor,
            Self::Streaming {
                sinks: 4,
                window: 8,
            },
            Self::Streaming {
                sinks: 0,
                window: 1,
            },
            Self::H2o {
                budget: 12,
                recent: 4,
            },
            // Smaller than a prefill chunk: the bound must hold within the prompt too.
            Self::H2o {
                budget: 2,
                recent: 1,
            },
            Self::Tova { budget: 8 },
            Self::Tova { budget: 1 },
            Self::Sepllm {
                sinks: 4,
                window: 8,
            },
            Self::Sepllm {
                sinks: 0,
                window: 1,
            },
        ]
    }

    /// Whether the policy needs anchors to do anything (it keeps whole segments).
    pub fn is_anchor_based(&self) -> bool {
        matches!(self, Self::Anchor)
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::Streaming { window: 0, .. } | Self::Sepllm { window: 0, .. } => Err(
                Error::config("kv_policy.window", "must be at least 1 (the newest entry)"),
            ),
            Self::H2o { budget: 0, .. } | Self::Tova { budget: 0 } => {
                Err(Error::config("kv_policy.budget", "must be at least 1"))
            }
            Self::H2o { budget, recent } if recent >= budget => Err(Error::config(
                "kv_policy.recent",
                format!("must be less than the budget ({budget}): {recent}"),
            )),
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for PolicyConfig {
    type Err = Error;

    /// `full`, `anchor`, `streaming:SINKS,WINDOW`, `h2o:BUDGET,RECENT`, `tova:BUDGET` or
    /// `sepllm:SINKS,WINDOW`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::config("kv_policy", format!("`{s}`: {reason}"));
        let num = |v: &str| v.trim().parse().map_err(|_| bad("not a number"));
        let pair = |args: &str, spelling: &str| {
            let (a, b) = args
                .split_once(',')
                .ok_or_else(|| bad(&format!("expected {spelling}")))?;
            Ok::<_, Error>((num(a)?, num(b)?))
        };
        let config = match s.split_once(':') {
            None if s == "full" => Self::Full,
            None if s == "anchor" => Self::Anchor,
            Some(("streaming", args)) => {
                let (sinks, window) = pair(args, "streaming:SINKS,WINDOW")?;
                Self::Streaming { sinks, window }
            }
            Some(("h2o", args)) => {
                let (budget, recent) = pair(args, "h2o:BUDGET,RECENT")?;
                Self::H2o { budget, recent }
            }
            Some(("tova", args)) => Self::Tova { budget: num(args)? },
            Some(("sepllm", args)) => {
                let (sinks, window) = pair(args, "sepllm:SINKS,WINDOW")?;
                Self::Sepllm { sinks, window }
            }
            _ => {
                return Err(bad(
                    "expected full, anchor, streaming:SINKS,WINDOW, h2o:BUDGET,RECENT, \
                     tova:BUDGET or sepllm:SINKS,WINDOW",
                ));
            }
        };
        config.validate()?;
        Ok(config)
    }
}

/// The `count` slots of `scores` with the lowest score, ties broken toward the lower (older)
/// slot; NaN scores count as highest.
pub(crate) fn lowest(scores: &[f32], count: usize) -> Vec<usize> {
    let mut slots: Vec<usize> = (0..scores.len()).collect();
    slots.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    slots.truncate(count);
    slots
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Pos;
    use crate::cache::Cell;
    use crate::token::{Role, SegmentId};

    /// Cells with `(segment, role, pinned)` at positions 0, 1, 2, …
    pub(crate) fn cells(spec: &[(u32, Role, bool)]) -> Cells {
        let mut cells = Cells::default();
        let new: Vec<Cell> = spec
            .iter()
            .enumerate()
            .map(|(i, &(segment, role, pinned))| Cell {
                segment: SegmentId(segment),
                role,
                pinned,
                ..Cell::token(1, Pos(i as u32))
            })
            .collect();
        cells.extend(&new);
        cells
    }

    /// The observation of a step that appended the last `appended` cells.
    pub(crate) fn observe(cells: &Cells, appended: usize) -> Observation<'_> {
        Observation {
            cells,
            appended: cells.len() - appended..cells.len(),
            attention: None,
        }
    }

    #[test]
    fn policy_config_parses_and_serializes_every_example() {
        for config in PolicyConfig::examples() {
            let json = serde_json::to_string(&config).unwrap();
            let back: PolicyConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(back, config, "{json}");
            assert_eq!(config.build().name(), config.name());
        }
        assert_eq!(
            "streaming:4,64".parse::<PolicyConfig>().unwrap(),
            PolicyConfig::Streaming {
                sinks: 4,
                window: 64
            }
        );
        assert_eq!(
            "anchor".parse::<PolicyConfig>().unwrap(),
            PolicyConfig::Anchor
        );
        assert_eq!(
            "h2o:64,16".parse::<PolicyConfig>().unwrap(),
            PolicyConfig::H2o {
                budget: 64,
                recent: 16
            }
        );
        assert_eq!(
            "tova:32".parse::<PolicyConfig>().unwrap(),
            PolicyConfig::Tova { budget: 32 }
        );
        assert_eq!(
            "sepllm:4,64".parse::<PolicyConfig>().unwrap(),
            PolicyConfig::Sepllm {
                sinks: 4,
                window: 64
            }
        );
        let json = r#"{"kind":"h2o","budget":8,"recent":2}"#;
        assert_eq!(
            serde_json::from_str::<PolicyConfig>(json).unwrap(),
            PolicyConfig::H2o {
                budget: 8,
                recent: 2
            }
        );
    }

    #[test]
    fn lowest_breaks_ties_toward_the_older_slot() {
        assert_eq!(lowest(&[2.0, 1.0, 1.0, f32::NAN, 0.5], 3), [4, 1, 2]);
    }

    #[test]
    fn policy_config_rejects_unknown_names_and_bad_numbers() {
        for bad in [
            "h2o",
            "streaming",
            "streaming:4",
            "streaming:a,b",
            "streaming:4,0",
            "h2o:8",
            "h2o:0,0",
            "h2o:8,8",
            "h2o:8,9",
            "tova",
            "tova:0",
            "tova:x",
            "sepllm:4",
            "sepllm:4,0",
            "",
        ] {
            let err = bad.parse::<PolicyConfig>().unwrap_err().to_string();
            assert!(err.contains("kv_policy"), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<PolicyConfig>(r#"{"kind":"nope"}"#).is_err());
    }
}
