//! [`PolicyConfig`]: the built-in policies by name, for configuration files, the CLI and the
//! server, and the session test matrix ([`PolicyConfig::examples`]).

use super::{AnchorPolicy, Budget, Full, H2o, Knorm, KvPolicy, SepLlm, SnapKv, StreamingLlm, Tova};
use crate::{Error, Result};

/// The built-in policies by name, for configuration (serde: `{"kind": "streaming", "sinks":
/// 4, "window": 256}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyConfig {
    /// [`Full`]: keep everything.
    #[default]
    Full,
    /// [`AnchorPolicy`]: anchors, pinned entries and the open segment (AnLLM); a session
    /// also keeps its rule's local window ([`SessionConfig::build_policy`]).
    ///
    /// [`SessionConfig::build_policy`]: crate::session::SessionConfig::build_policy
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
        budget: Budget,
        /// Most recent entries always kept (less than `budget`).
        recent: usize,
    },
    /// [`Tova`]: the entries the current query attends to most.
    Tova {
        /// Most entries kept.
        budget: Budget,
    },
    /// [`Tova::per_layer`]: TOVA with one set per layer (kvpress's granularity).
    TovaLayer {
        /// Most entries kept per layer.
        budget: Budget,
    },
    /// [`SnapKv`]: attention of the step's last `window` queries, pooled, plus the window.
    Snapkv {
        /// Most entries kept.
        budget: Budget,
        /// Observation window: the queries that score, and the newest entries always kept.
        window: usize,
    },
    /// [`SnapKv::per_head`]: SnapKV with one set per layer and KV head (kvpress's granularity).
    SnapkvHead {
        /// Most entries kept per KV head.
        budget: Budget,
        /// Observation window: the queries that score, and the newest entries always kept.
        window: usize,
    },
    /// [`Knorm`]: the entries whose keys have the smallest L2 norm.
    Knorm {
        /// Most entries kept.
        budget: Budget,
    },
    /// [`Knorm::per_head`]: KNorm with one set per layer and KV head (kvpress's granularity).
    KnormHead {
        /// Most entries kept per KV head.
        budget: Budget,
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
            Self::Anchor => Box::new(AnchorPolicy::default()),
            Self::Streaming { sinks, window } => Box::new(StreamingLlm::new(sinks, window)),
            Self::H2o { budget, recent } => Box::new(H2o::new(budget, recent)),
            Self::Tova { budget } => Box::new(Tova::new(budget)),
            Self::TovaLayer { budget } => Box::new(Tova::per_layer(budget)),
            Self::Sepllm { sinks, window } => Box::new(SepLlm::new(sinks, window)),
            Self::Snapkv { budget, window } => Box::new(SnapKv::new(budget, window)),
            Self::SnapkvHead { budget, window } => Box::new(SnapKv::per_head(budget, window)),
            Self::Knorm { budget } => Box::new(Knorm::new(budget)),
            Self::KnormHead { budget } => Box::new(Knorm::per_head(budget)),
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
            Self::TovaLayer { .. } => "tova_layer",
            Self::Sepllm { .. } => "sepllm",
            Self::Snapkv { .. } => "snapkv",
            Self::SnapkvHead { .. } => "snapkv_head",
            Self::Knorm { .. } => "knorm",
            Self::KnormHead { .. } => "knorm_head",
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
                budget: Budget::Entries(12),
                recent: 4,
            },
            // Smaller than a prefill chunk: the bound must hold within the prompt too.
            Self::H2o {
                budget: Budget::Entries(2),
                recent: 1,
            },
            Self::H2o {
                budget: Budget::SharePpm(250_000),
                recent: 2,
            },
            Self::Tova {
                budget: Budget::Entries(8),
            },
            Self::Tova {
                budget: Budget::Entries(1),
            },
            Self::Tova {
                budget: Budget::SharePpm(100_000),
            },
            Self::TovaLayer {
                budget: Budget::Entries(6),
            },
            Self::TovaLayer {
                budget: Budget::Entries(1),
            },
            Self::TovaLayer {
                budget: Budget::SharePpm(250_000),
            },
            Self::Snapkv {
                budget: Budget::Entries(12),
                window: 4,
            },
            Self::Snapkv {
                budget: Budget::Entries(2),
                window: 1,
            },
            Self::Snapkv {
                budget: Budget::SharePpm(500_000),
                window: 3,
            },
            Self::SnapkvHead {
                budget: Budget::Entries(10),
                window: 3,
            },
            Self::SnapkvHead {
                budget: Budget::SharePpm(250_000),
                window: 2,
            },
            Self::Knorm {
                budget: Budget::Entries(8),
            },
            Self::KnormHead {
                budget: Budget::Entries(7),
            },
            Self::KnormHead {
                budget: Budget::Entries(1),
            },
            Self::Knorm {
                budget: Budget::SharePpm(250_000),
            },
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

    /// Whether the policy keeps a set per KV head (heads of a layer then hold different
    /// entries, which needs causal attention).
    pub fn is_per_head(&self) -> bool {
        matches!(self, Self::SnapkvHead { .. } | Self::KnormHead { .. })
    }

    /// Whether the policy needs anchors to do anything (it keeps whole segments).
    pub fn is_anchor_based(&self) -> bool {
        matches!(self, Self::Anchor)
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Self::H2o { budget, .. }
            | Self::Tova { budget }
            | Self::TovaLayer { budget }
            | Self::Snapkv { budget, .. }
            | Self::SnapkvHead { budget, .. }
            | Self::Knorm { budget }
            | Self::KnormHead { budget } => check_budget(budget)?,
            _ => {}
        }
        match *self {
            Self::Streaming { window: 0, .. }
            | Self::Sepllm { window: 0, .. }
            | Self::Snapkv { window: 0, .. }
            | Self::SnapkvHead { window: 0, .. } => Err(Error::config(
                "kv_policy.window",
                "must be at least 1 (the newest entry)",
            )),
            Self::H2o {
                budget: Budget::Entries(budget),
                recent,
            } if recent >= budget => Err(Error::config(
                "kv_policy.recent",
                format!("must be less than the budget ({budget}): {recent}"),
            )),
            Self::Snapkv {
                budget: Budget::Entries(budget),
                window,
            }
            | Self::SnapkvHead {
                budget: Budget::Entries(budget),
                window,
            } if window >= budget => Err(Error::config(
                "kv_policy.window",
                format!("must be less than the budget ({budget}): {window}"),
            )),
            _ => Ok(()),
        }
    }
}

fn check_budget(budget: Budget) -> Result<()> {
    match budget {
        Budget::Entries(0) => Err(Error::config("kv_policy.budget", "must be at least 1")),
        Budget::SharePpm(ppm) if ppm == 0 || ppm >= 1_000_000 => Err(Error::config(
            "kv_policy.budget",
            "a share must lie strictly between 0 and 1",
        )),
        _ => Ok(()),
    }
}
