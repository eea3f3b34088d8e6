//! A policy's budget: a fixed number of entries, or a share of the tokens seen so far (as
//! kvpress's `CompressionRatioDecodingPress` keeps a fixed fraction of everything seen).
//!
//! Written as a number: an integer ≥ 1 is entries (`512`), a number strictly between 0 and 1
//! is a share (`0.25`). Shares are held in parts per million so that configurations stay
//! `Copy + Eq` and compare exactly after a JSON round trip.

use crate::{Error, Result};

const PPM: u64 = 1_000_000;

/// Most entries a budgeted policy keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// At most this many entries.
    Entries(usize),
    /// At most `ceil(share × tokens seen)` entries (at least 1); the share in parts per
    /// million, 1 ..= 999,999.
    SharePpm(u32),
}

impl Budget {
    /// A share of the tokens seen, `0 < share < 1`.
    pub fn share(share: f64) -> Result<Self> {
        let ppm = (share * PPM as f64).round();
        match share > 0.0 && share < 1.0 && ppm >= 1.0 && ppm < PPM as f64 {
            true => Ok(Self::SharePpm(ppm as u32)),
            false => Err(Error::config(
                "kv_budget",
                format!("a share must lie strictly between 0 and 1: {share}"),
            )),
        }
    }

    /// Entries allowed once `tokens_seen` tokens have been run.
    pub fn entries(self, tokens_seen: usize) -> usize {
        match self {
            Self::Entries(n) => n,
            Self::SharePpm(ppm) => {
                let kept = (tokens_seen as u64 * ppm as u64).div_ceil(PPM);
                (kept as usize).max(1)
            }
        }
    }

    /// Entries allowed for a cache whose stream has reached `cells.next_pos()`.
    pub fn entries_for(self, cells: &crate::cache::Cells) -> usize {
        self.entries(cells.next_pos().0 as usize)
    }

    /// The fixed bound, if the budget is a number of entries.
    pub fn fixed(self) -> Option<usize> {
        match self {
            Self::Entries(n) => Some(n),
            Self::SharePpm(_) => None,
        }
    }

    /// The budget as written: entries as an integer, a share as a decimal.
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Entries(n) => n as f64,
            Self::SharePpm(ppm) => ppm as f64 / PPM as f64,
        }
    }

    fn from_f64(x: f64) -> Result<Self> {
        match x {
            x if x > 0.0 && x < 1.0 => Self::share(x),
            x if x >= 1.0 && x.fract() == 0.0 && x <= usize::MAX as f64 => {
                Ok(Self::Entries(x as usize))
            }
            _ => Err(Error::config(
                "kv_budget",
                format!("expected entries (an integer ≥ 1) or a share in (0, 1): {x}"),
            )),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entries(n) => write!(f, "{n}"),
            Self::SharePpm(_) => write!(f, "{}", self.as_f64()),
        }
    }
}

impl std::str::FromStr for Budget {
    type Err = Error;

    /// `512` (entries) or `0.25` (share of the tokens seen).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Ok(n) = s.parse::<usize>() {
            return Self::from_f64(n as f64).map(|_| Self::Entries(n));
        }
        let x: f64 = s.parse().map_err(|_| {
            Error::config(
                "kv_budget",
                format!("`{s}`: expected entries (512) or a share (0.25)"),
            )
        })?;
        Self::from_f64(x)
    }
}

impl serde::Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match *self {
            Self::Entries(n) => s.serialize_u64(n as u64),
            Self::SharePpm(_) => s.serialize_f64(self.as_f64()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Budget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let x = f64::deserialize(d)?;
        Self::from_f64(x).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_parses_entries_and_shares_and_rejects_the_rest() {
        assert_eq!("512".parse::<Budget>().unwrap(), Budget::Entries(512));
        assert_eq!("0.25".parse::<Budget>().unwrap(), Budget::SharePpm(250_000));
        for bad in ["0", "1.5", "-0.5", "x", "", "1e400", "0.0000001"] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_share_budget_grows_with_the_tokens_seen_and_keeps_at_least_one() {
        let b = Budget::share(0.25).unwrap();
        // Hand-derived: ceil(0.25 × n).
        assert_eq!(b.entries(0), 1);
        assert_eq!(b.entries(3), 1);
        assert_eq!(b.entries(5), 2);
        assert_eq!(b.entries(4096), 1024);
        assert_eq!(Budget::Entries(7).entries(1), 7);
        assert_eq!(b.fixed(), None);
        assert_eq!(Budget::Entries(7).fixed(), Some(7));
    }

    #[test]
    fn budget_round_trips_through_json_as_a_plain_number() {
        for b in [Budget::Entries(64), Budget::share(0.1).unwrap()] {
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(serde_json::from_str::<Budget>(&json).unwrap(), b, "{json}");
        }
        assert_eq!(serde_json::to_string(&Budget::Entries(64)).unwrap(), "64");
        assert_eq!(
            serde_json::to_string(&Budget::share(0.5).unwrap()).unwrap(),
            "0.5"
        );
        assert!(serde_json::from_str::<Budget>("2.5").is_err());
    }
}
