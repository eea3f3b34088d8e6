//! Repetition penalties over a window of the stream's last tokens, as llama.cpp's penalties
//! sampler applies them (`--repeat-penalty`, `--repeat-last-n`, `--frequency-penalty`,
//! `--presence-penalty`, and llama-server's OpenAI fields of the same names): for every token
//! that occurs `c > 0` times in the window, its logit `l` becomes
//!
//! ```text
//! (l > 0 ? l / repeat : l * repeat) - c * frequency - presence
//! ```
//!
//! The repeat factor is HF transformers' `repetition_penalty` (which looks at the whole
//! sequence: a window of all tokens); frequency and presence are OpenAI's. The window holds the
//! prompt too (the caller feeds it), then every sampled token.

use std::collections::{HashMap, VecDeque};

use crate::{Error, Result, TokenId};

/// The penalty knobs. The default is off (repeat 1, frequency and presence 0) with llama.cpp's
/// window of 64 tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalties {
    /// Divides the positive logit and multiplies the negative logit of every token in the
    /// window (1 = off; above 1 discourages repeats).
    pub repeat: f32,
    /// Subtracted from a token's logit once per occurrence in the window (0 = off).
    pub frequency: f32,
    /// Subtracted once from the logit of every token in the window (0 = off).
    pub presence: f32,
    /// How many of the stream's last tokens the window holds (0: none, so no penalty;
    /// `usize::MAX`: all of them).
    pub last_n: usize,
}

impl Default for Penalties {
    fn default() -> Self {
        Self {
            repeat: 1.0,
            frequency: 0.0,
            presence: 0.0,
            last_n: 64,
        }
    }
}

impl Penalties {
    /// The window length of llama.cpp's `repeat_last_n`: N tokens, 0 for none, -1 for all;
    /// `None` below -1.
    pub fn last_n_of(n: i64) -> Option<usize> {
        match n {
            -1 => Some(usize::MAX),
            n => usize::try_from(n).ok(),
        }
    }

    /// True when no logit can change: neutral knobs or an empty window.
    pub fn is_off(&self) -> bool {
        self.last_n == 0 || (self.repeat == 1.0 && self.frequency == 0.0 && self.presence == 0.0)
    }

    /// Checks the ranges of the knobs.
    pub fn validate(&self) -> Result<()> {
        if !(self.repeat > 0.0 && self.repeat.is_finite()) {
            return Err(Error::config(
                "repeat_penalty",
                "must be a finite number > 0",
            ));
        }
        if !self.frequency.is_finite() {
            return Err(Error::config("frequency_penalty", "must be finite"));
        }
        if !self.presence.is_finite() {
            return Err(Error::config("presence_penalty", "must be finite"));
        }
        Ok(())
    }
}

/// The tokens of the penalty window and how often each occurs in it.
#[derive(Debug, Clone)]
pub struct PenaltyWindow {
    penalties: Penalties,
    recent: VecDeque<TokenId>,
    counts: HashMap<TokenId, u32>,
}

impl PenaltyWindow {
    /// An empty window for `penalties`.
    pub fn new(penalties: Penalties) -> Self {
        Self {
            penalties,
            recent: VecDeque::new(),
            counts: HashMap::new(),
        }
    }

    /// Appends `tokens` to the stream (only the last `last_n` can matter).
    pub fn extend(&mut self, tokens: &[TokenId]) {
        if self.penalties.is_off() {
            return;
        }
        let skip = tokens.len().saturating_sub(self.penalties.last_n);
        for &t in &tokens[skip..] {
            self.push(t);
        }
    }

    /// Appends one token, dropping the oldest when the window is full.
    pub fn push(&mut self, token: TokenId) {
        if self.penalties.is_off() {
            return;
        }
        self.recent.push_back(token);
        *self.counts.entry(token).or_insert(0) += 1;
        if self.recent.len() > self.penalties.last_n {
            let old = self.recent.pop_front().expect("the window is not empty");
            if let Some(c) = self.counts.get_mut(&old) {
                *c -= 1;
                if *c == 0 {
                    self.counts.remove(&old);
                }
            }
        }
    }

    /// Penalizes `logits` (one row over the vocabulary) in place; ids past the row are ignored.
    pub fn apply(&self, logits: &mut [f32]) {
        let p = &self.penalties;
        for (&id, &count) in &self.counts {
            let Some(l) = logits.get_mut(id as usize) else {
                continue;
            };
            *l = if *l > 0.0 {
                *l / p.repeat
            } else {
                *l * p.repeat
            };
            *l -= count as f32 * p.frequency + p.presence;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(penalties: Penalties, stream: &[TokenId]) -> PenaltyWindow {
        let mut w = PenaltyWindow::new(penalties);
        w.extend(stream);
        w
    }

    /// Hand-derived: stream [0, 1, 1] with repeat 2, frequency 0.5, presence 0.25 over
    /// logits [2, -1, 0.5, 3]: id 0 (once) 2/2 - 0.5 - 0.25 = 0.25; id 1 (twice)
    /// -1*2 - 1 - 0.25 = -3.25; ids 2 and 3 never occur and keep their logits.
    #[test]
    fn penalties_follow_the_formula_by_count() {
        let p = Penalties {
            repeat: 2.0,
            frequency: 0.5,
            presence: 0.25,
            last_n: 64,
        };
        let mut logits = [2.0, -1.0, 0.5, 3.0];
        window(p, &[0, 1, 1]).apply(&mut logits);
        assert_eq!(logits, [0.25, -3.25, 0.5, 3.0]);
    }

    /// With a window of 2, the stream [0, 1, 1] leaves only id 1 (twice): id 0 keeps its logit.
    #[test]
    fn penalties_see_only_the_last_n_tokens() {
        let p = Penalties {
            repeat: 2.0,
            frequency: 0.5,
            presence: 0.25,
            last_n: 2,
        };
        let mut logits = [2.0, -1.0, 0.5, 3.0];
        let mut w = window(p, &[0]);
        w.push(1);
        w.push(1);
        w.apply(&mut logits);
        assert_eq!(logits, [2.0, -3.25, 0.5, 3.0]);
        // Fed at once, the same stream gives the same window.
        let mut again = [2.0, -1.0, 0.5, 3.0];
        window(p, &[0, 1, 1]).apply(&mut again);
        assert_eq!(again, logits);
    }

    /// Repeat alone is HF's `repetition_penalty`: 3 / 1.5 = 2 and -3 * 1.5 = -4.5; a zero logit
    /// stays 0; counts do not matter.
    #[test]
    fn repeat_penalty_alone_divides_positive_and_multiplies_negative_logits() {
        let p = Penalties {
            repeat: 1.5,
            ..Penalties::default()
        };
        let mut logits = [3.0, -3.0, 0.0, 1.0];
        window(p, &[0, 0, 0, 1, 2]).apply(&mut logits);
        assert_eq!(logits, [2.0, -4.5, 0.0, 1.0]);
    }

    #[test]
    fn neutral_penalties_and_an_empty_window_change_nothing() {
        let logits = [2.0, -1.0, 0.5];
        for p in [
            Penalties::default(),
            Penalties {
                repeat: 3.0,
                presence: 1.0,
                last_n: 0,
                ..Penalties::default()
            },
        ] {
            assert!(p.is_off());
            let mut l = logits;
            window(p, &[0, 1, 2]).apply(&mut l);
            assert_eq!(l, logits);
        }
    }

    #[test]
    fn ids_past_the_row_are_ignored() {
        let p = Penalties {
            presence: 1.0,
            ..Penalties::default()
        };
        let mut logits = [1.0, 1.0];
        window(p, &[1, 7]).apply(&mut logits);
        assert_eq!(logits, [1.0, 0.0]);
    }

    #[test]
    fn last_n_of_reads_llama_cpp_s_convention() {
        assert_eq!(Penalties::last_n_of(64), Some(64));
        assert_eq!(Penalties::last_n_of(0), Some(0));
        assert_eq!(Penalties::last_n_of(-1), Some(usize::MAX));
        assert_eq!(Penalties::last_n_of(-2), None);
    }

    #[test]
    fn penalties_reject_bad_values() {
        for bad in [
            Penalties {
                repeat: 0.0,
                ..Penalties::default()
            },
            Penalties {
                repeat: f32::NAN,
                ..Penalties::default()
            },
            Penalties {
                frequency: f32::INFINITY,
                ..Penalties::default()
            },
            Penalties {
                presence: f32::NAN,
                ..Penalties::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
