//! Learning-rate schedules: linear warmup, then constant (the authors' continued pre-training,
//! `constant_with_warmup`, 20 steps) or cosine decay (the authors' SFT, warmup ratio 0.03),
//! spec §4.
//!
//! Steps are counted from 0 (the number of updates already done). Warmup step `s < warmup`
//! uses `(s + 1) / warmup` of the peak, so the first update already moves and step
//! `warmup − 1` reaches the peak (Hugging Face's `s / warmup` spends its first update at
//! learning rate 0). The cosine decays from the peak at step `warmup` to `min_ratio` × peak
//! at the last step, `total − 1`.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

use anllm::{Error, Result};

/// What follows the warmup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    /// The peak learning rate until the end.
    Constant,
    /// Half a cosine from the peak down to `min_ratio` × peak at the last step.
    Cosine {
        /// Final learning rate as a fraction of the peak, in `[0, 1]`.
        min_ratio: f64,
    },
}

impl FromStr for Decay {
    type Err = Error;

    /// `constant` or `cosine` (decaying to 0; set `min_ratio` afterwards for another floor).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "constant" => Ok(Decay::Constant),
            "cosine" => Ok(Decay::Cosine { min_ratio: 0.0 }),
            other => Err(Error::config(
                "schedule",
                format!("`{other}` is not one of constant, cosine"),
            )),
        }
    }
}

impl fmt::Display for Decay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decay::Constant => f.write_str("constant"),
            Decay::Cosine { .. } => f.write_str("cosine"),
        }
    }
}

/// A warmup and a decay over a run of `total` steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// The shape after the warmup.
    pub decay: Decay,
    /// Linear warmup steps (0: none).
    pub warmup: u64,
    /// Steps of the whole run (the cosine ends at step `total − 1`).
    pub total: u64,
}

impl LrSchedule {
    /// Checks the numbers and builds the schedule.
    pub fn new(decay: Decay, warmup: u64, total: u64) -> Result<Self> {
        if let Decay::Cosine { min_ratio } = decay
            && !(0.0..=1.0).contains(&min_ratio)
        {
            return Err(Error::config(
                "min-lr-ratio",
                format!("{min_ratio} is not in [0, 1]"),
            ));
        }
        Ok(Self {
            decay,
            warmup,
            total,
        })
    }

    /// Constant after `warmup` steps (the authors' continued pre-training: 20).
    pub fn constant(warmup: u64) -> Self {
        Self {
            decay: Decay::Constant,
            warmup,
            total: u64::MAX,
        }
    }

    /// Warmup steps for a warmup ratio, as Hugging Face computes them: `ceil(ratio × total)`.
    pub fn warmup_from_ratio(ratio: f64, total: u64) -> u64 {
        if ratio.is_finite() && ratio > 0.0 {
            (ratio * total as f64).ceil() as u64
        } else {
            0
        }
    }

    /// Fraction of the peak learning rate at `step` (updates done before this one).
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup {
            return (step + 1) as f64 / self.warmup as f64;
        }
        match self.decay {
            Decay::Constant => 1.0,
            Decay::Cosine { min_ratio } => {
                let span = self.total.saturating_sub(1).saturating_sub(self.warmup);
                let progress = if span == 0 {
                    1.0
                } else {
                    ((step - self.warmup) as f64 / span as f64).min(1.0)
                };
                min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (PI * progress).cos())
            }
        }
    }

    /// Learning rate at `step` for a peak of `peak`.
    pub fn lr_at(&self, peak: f64, step: u64) -> f64 {
        peak * self.factor(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn constant_with_warmup_ramps_then_holds() {
        let s = LrSchedule::constant(20);
        assert!(close(s.lr_at(2e-5, 0), 1e-6));
        assert!(close(s.lr_at(2e-5, 9), 1e-5));
        assert!(close(s.lr_at(2e-5, 19), 2e-5));
        assert!(close(s.lr_at(2e-5, 20), 2e-5));
        assert!(close(s.lr_at(2e-5, 1_000_000), 2e-5));
        assert!(close(LrSchedule::constant(0).factor(0), 1.0));
    }

    #[test]
    fn cosine_decays_to_the_floor_at_the_last_step() {
        let s = LrSchedule::new(Decay::Cosine { min_ratio: 0.1 }, 10, 111).unwrap();
        assert!(close(s.factor(4), 0.5));
        assert!(close(s.factor(10), 1.0));
        // Halfway through the decay (step 10 + 50 of 100): the mean of peak and floor.
        assert!(close(s.factor(60), 0.55));
        assert!(close(s.factor(110), 0.1));
        assert!(close(s.factor(500), 0.1));
        let values: Vec<f64> = (10..111).map(|t| s.factor(t)).collect();
        assert!(values.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn cosine_degenerate_spans_do_not_divide_by_zero() {
        let s = LrSchedule::new(Decay::Cosine { min_ratio: 0.0 }, 5, 5).unwrap();
        assert!(close(s.factor(4), 1.0));
        assert!(close(s.factor(5), 0.0));
        let s = LrSchedule::new(Decay::Cosine { min_ratio: 0.2 }, 0, 1).unwrap();
        assert!(close(s.factor(0), 0.2));
    }

    #[test]
    fn parses_names_and_rejects_others() {
        assert_eq!("constant".parse::<Decay>().unwrap(), Decay::Constant);
        assert_eq!(
            " Cosine ".parse::<Decay>().unwrap(),
            Decay::Cosine { min_ratio: 0.0 }
        );
        assert!("linear".parse::<Decay>().is_err());
        assert_eq!(Decay::Constant.to_string(), "constant");
        assert!(LrSchedule::new(Decay::Cosine { min_ratio: 1.5 }, 0, 10).is_err());
    }

    #[test]
    fn warmup_ratio_rounds_up_like_hugging_face() {
        assert_eq!(LrSchedule::warmup_from_ratio(0.03, 1000), 30);
        assert_eq!(LrSchedule::warmup_from_ratio(0.03, 101), 4);
        assert_eq!(LrSchedule::warmup_from_ratio(0.0, 101), 0);
    }
}
