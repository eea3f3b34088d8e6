//! Policies from the command line: `NAME:PARAMS` (`h2o:512,64`), or a bare name plus a budget
//! (`--kv-policy h2o --kv-budget 0.25`) with each policy's default split of that budget.

use super::{Budget, PolicyConfig};
use crate::{Error, Result};

/// Attention sinks of `streaming` and `sepllm` from a bare budget (the StreamingLLM paper's 4).
pub const DEFAULT_SINKS: usize = 4;
/// SnapKV's observation window from a bare budget (kvpress's `window_size`).
pub const DEFAULT_SNAPKV_WINDOW: usize = 64;
/// H2O's recent window under a share budget (an entries budget is split evenly, as the paper).
pub const DEFAULT_H2O_RECENT: usize = 16;

impl std::str::FromStr for PolicyConfig {
    type Err = Error;

    /// `full`, `anchor`, `streaming:SINKS,WINDOW`, `h2o:BUDGET,RECENT`, `tova:BUDGET`,
    /// `tova_layer:BUDGET`, `sepllm:SINKS,WINDOW`, `snapkv:BUDGET,WINDOW`,
    /// `snapkv_head:BUDGET,WINDOW`, `knorm:BUDGET` or `knorm_head:BUDGET`; a BUDGET is entries
    /// (`512`) or a share of the tokens seen (`0.25`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::config("kv_policy", format!("`{s}`: {reason}"));
        let num = |v: &str| v.trim().parse().map_err(|_| bad("not a number"));
        let budget = |v: &str| v.parse::<Budget>().map_err(|e| bad(&e.to_string()));
        let pair = |args: &'_ str, spelling: &str| -> Result<(String, String)> {
            let (a, b) = args
                .split_once(',')
                .ok_or_else(|| bad(&format!("expected {spelling}")))?;
            Ok((a.to_string(), b.to_string()))
        };
        let config = match s.split_once(':') {
            None if s == "full" => Self::Full,
            None if s == "anchor" => Self::Anchor,
            Some(("streaming", args)) => {
                let (a, b) = pair(args, "streaming:SINKS,WINDOW")?;
                Self::Streaming {
                    sinks: num(&a)?,
                    window: num(&b)?,
                }
            }
            Some(("h2o", args)) => {
                let (a, b) = pair(args, "h2o:BUDGET,RECENT")?;
                Self::H2o {
                    budget: budget(&a)?,
                    recent: num(&b)?,
                }
            }
            Some(("tova", args)) => Self::Tova {
                budget: budget(args)?,
            },
            Some(("tova_layer", args)) => Self::TovaLayer {
                budget: budget(args)?,
            },
            Some(("sepllm", args)) => {
                let (a, b) = pair(args, "sepllm:SINKS,WINDOW")?;
                Self::Sepllm {
                    sinks: num(&a)?,
                    window: num(&b)?,
                }
            }
            Some(("snapkv", args)) => {
                let (a, b) = pair(args, "snapkv:BUDGET,WINDOW")?;
                Self::Snapkv {
                    budget: budget(&a)?,
                    window: num(&b)?,
                }
            }
            Some(("snapkv_head", args)) => {
                let (a, b) = pair(args, "snapkv_head:BUDGET,WINDOW")?;
                Self::SnapkvHead {
                    budget: budget(&a)?,
                    window: num(&b)?,
                }
            }
            Some(("knorm", args)) => Self::Knorm {
                budget: budget(args)?,
            },
            Some(("knorm_head", args)) => Self::KnormHead {
                budget: budget(args)?,
            },
            _ => {
                return Err(bad(
                    "expected full, anchor, streaming:SINKS,WINDOW, h2o:BUDGET,RECENT, \
                     tova:BUDGET, tova_layer:BUDGET, sepllm:SINKS,WINDOW, snapkv:BUDGET,WINDOW, \
                     snapkv_head:BUDGET,WINDOW, knorm:BUDGET or knorm_head:BUDGET \
                     (or a bare name with --kv-budget)",
                ));
            }
        };
        config.validate()?;
        Ok(config)
    }
}

impl PolicyConfig {
    /// The policy `name` holding `budget`, with its default parameters: `streaming` and
    /// `sepllm` keep [`DEFAULT_SINKS`] sinks and the rest of an entries budget as the window
    /// (SepLLM keeps every separator on top: its budget is not a bound); `h2o` keeps half of
    /// an entries budget as the recent window ([`DEFAULT_H2O_RECENT`] under a share);
    /// `snapkv` observes [`DEFAULT_SNAPKV_WINDOW`] queries (fewer when the budget is small);
    /// `tova` and `knorm` take the budget as is.
    pub fn with_budget(name: &str, budget: Budget) -> Result<Self> {
        let entries = |what: &str| {
            budget.fixed().ok_or_else(|| {
                Error::config(
                    "kv_budget",
                    format!("`{name}` keeps a fixed window: give {what} as entries, not a share"),
                )
            })
        };
        let window = |n: usize| match n > DEFAULT_SINKS {
            true => (DEFAULT_SINKS, n - DEFAULT_SINKS),
            false => (0, n),
        };
        let config = match name {
            "streaming" => {
                let (sinks, window) = window(entries("the budget")?);
                Self::Streaming { sinks, window }
            }
            "sepllm" => {
                let (sinks, window) = window(entries("the window")?);
                Self::Sepllm { sinks, window }
            }
            "h2o" => Self::H2o {
                budget,
                recent: budget.fixed().map_or(DEFAULT_H2O_RECENT, |n| n / 2),
            },
            "tova" => Self::Tova { budget },
            "tova_layer" => Self::TovaLayer { budget },
            "snapkv" | "snapkv_head" => {
                let window = match budget.fixed() {
                    Some(n) => DEFAULT_SNAPKV_WINDOW.min(n.saturating_sub(1)).max(1),
                    None => DEFAULT_SNAPKV_WINDOW,
                };
                match name {
                    "snapkv" => Self::Snapkv { budget, window },
                    _ => Self::SnapkvHead { budget, window },
                }
            }
            "knorm" => Self::Knorm { budget },
            "knorm_head" => Self::KnormHead { budget },
            "full" | "anchor" => {
                return Err(Error::config(
                    "kv_budget",
                    format!("`{name}` takes no budget (it keeps what its rule says)"),
                ));
            }
            other => {
                return Err(Error::config(
                    "kv_policy",
                    format!(
                        "`{other}`: expected streaming, sepllm, h2o, tova, tova_layer, snapkv, \
                         snapkv_head, knorm or knorm_head with a budget"
                    ),
                ));
            }
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_config_parses_and_serializes_every_example() {
        for config in PolicyConfig::examples() {
            let json = serde_json::to_string(&config).unwrap();
            let back: PolicyConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(back, config, "{json}");
            assert_eq!(config.build().name(), config.name());
        }
        let parsed = |s: &str| s.parse::<PolicyConfig>().unwrap();
        assert_eq!(
            parsed("streaming:4,64"),
            PolicyConfig::Streaming {
                sinks: 4,
                window: 64
            }
        );
        assert_eq!(parsed("anchor"), PolicyConfig::Anchor);
        assert_eq!(
            parsed("h2o:64,16"),
            PolicyConfig::H2o {
                budget: Budget::Entries(64),
                recent: 16
            }
        );
        assert_eq!(
            parsed("h2o:0.25,16"),
            PolicyConfig::H2o {
                budget: Budget::SharePpm(250_000),
                recent: 16
            }
        );
        assert_eq!(
            parsed("tova:32"),
            PolicyConfig::Tova {
                budget: Budget::Entries(32)
            }
        );
        assert_eq!(
            parsed("sepllm:4,64"),
            PolicyConfig::Sepllm {
                sinks: 4,
                window: 64
            }
        );
        assert_eq!(
            parsed("snapkv:256,32"),
            PolicyConfig::Snapkv {
                budget: Budget::Entries(256),
                window: 32
            }
        );
        assert_eq!(
            parsed("knorm:0.5"),
            PolicyConfig::Knorm {
                budget: Budget::SharePpm(500_000)
            }
        );
        // The JSON of earlier releases (a plain integer budget) still reads.
        let json = r#"{"kind":"h2o","budget":8,"recent":2}"#;
        assert_eq!(
            serde_json::from_str::<PolicyConfig>(json).unwrap(),
            PolicyConfig::H2o {
                budget: Budget::Entries(8),
                recent: 2
            }
        );
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
            "h2o:1.5,2",
            "tova",
            "tova:0",
            "tova:x",
            "tova:1.0001",
            "sepllm:4",
            "sepllm:4,0",
            "snapkv:8",
            "snapkv:8,8",
            "snapkv:8,0",
            "knorm:0",
            "knorm:-1",
            "",
        ] {
            let err = bad.parse::<PolicyConfig>().unwrap_err().to_string();
            assert!(err.contains("kv_policy"), "{bad}: {err}");
        }
        assert!(serde_json::from_str::<PolicyConfig>(r#"{"kind":"nope"}"#).is_err());
        let zero_share = PolicyConfig::Knorm {
            budget: Budget::SharePpm(0),
        };
        assert!(zero_share.validate().is_err());
    }

    #[test]
    fn a_bare_name_and_a_budget_give_each_policy_its_default_split() {
        let e = Budget::Entries;
        let with = |n: &str, b| PolicyConfig::with_budget(n, b).unwrap();
        assert_eq!(
            with("streaming", e(256)),
            PolicyConfig::Streaming {
                sinks: 4,
                window: 252
            }
        );
        assert_eq!(
            with("h2o", e(100)),
            PolicyConfig::H2o {
                budget: e(100),
                recent: 50
            }
        );
        assert_eq!(
            with("snapkv", e(40)),
            PolicyConfig::Snapkv {
                budget: e(40),
                window: 39
            }
        );
        assert_eq!(
            with("snapkv", e(512)),
            PolicyConfig::Snapkv {
                budget: e(512),
                window: 64
            }
        );
        let share = Budget::share(0.25).unwrap();
        assert_eq!(with("knorm", share), PolicyConfig::Knorm { budget: share });
        for (name, budget) in [
            ("streaming", share),
            ("sepllm", share),
            ("full", e(8)),
            ("anchor", share),
            ("nope", e(8)),
            ("snapkv", e(1)),
        ] {
            assert!(PolicyConfig::with_budget(name, budget).is_err(), "{name}");
        }
    }
}
