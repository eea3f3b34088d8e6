//! Next-token selection: greedy, or temperature / top-k / top-p sampling with a seeded RNG,
//! after optional repetition penalties ([`penalty`]).

mod penalty;

pub use penalty::{Penalties, PenaltyWindow};

use rand::SeedableRng;
use rand::distr::{Distribution, weighted::WeightedIndex};
use rand::rngs::StdRng;

use crate::{Error, Result, TokenId};

/// How to pick the next token.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = no limit).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1.0 = no limit).
    pub top_p: f32,
    /// RNG seed, so runs are reproducible.
    pub seed: u64,
    /// Added to the logits of these token ids first (OpenAI's `logit_bias`, llama.cpp's
    /// `--logit-bias`): -100 bans a token, 100 all but forces it.
    pub logit_bias: Vec<(TokenId, f32)>,
    /// Repetition penalties over the stream's last tokens, applied after the bias.
    pub penalties: Penalties,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 42,
            logit_bias: Vec::new(),
            penalties: Penalties::default(),
        }
    }
}

impl Sampling {
    /// Checks the ranges of the knobs.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::config("temperature", "must be a finite number >= 0"));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::config("top_p", "must be in (0, 1]"));
        }
        if self.logit_bias.iter().any(|(_, b)| !b.is_finite()) {
            return Err(Error::config("logit_bias", "every bias must be finite"));
        }
        self.penalties.validate()
    }
}

/// A seeded sampler. With penalties on, it keeps the window of the stream's last tokens: feed
/// it the prompt ([`Sampler::accept`]); the tokens it samples join the window by themselves.
#[derive(Debug, Clone)]
pub struct Sampler {
    sampling: Sampling,
    rng: StdRng,
    window: PenaltyWindow,
}

impl Sampler {
    /// A sampler for `sampling`.
    pub fn new(sampling: Sampling) -> Self {
        Self {
            rng: StdRng::seed_from_u64(sampling.seed),
            window: PenaltyWindow::new(sampling.penalties),
            sampling,
        }
    }

    /// Appends tokens of the stream that the sampler did not pick (the prompt, earlier turns)
    /// to the penalty window; nothing when the penalties are off.
    pub fn accept(&mut self, tokens: &[TokenId]) {
        self.window.extend(tokens);
    }

    /// Starts the penalty window with the stream so far, in order (earlier turns, the tokens
    /// pending, then the new prompt), as llama.cpp's window sees it; nothing is copied when
    /// the penalties are off.
    pub fn accept_stream(&mut self, parts: &[&[TokenId]]) {
        for part in parts {
            self.accept(part);
        }
    }

    /// Picks a token from one row of logits (penalized first, when penalties are on) and
    /// appends it to the penalty window.
    pub fn sample(&mut self, logits: &[f32]) -> Result<TokenId> {
        if logits.is_empty() {
            return Err(Error::config("logits", "empty row"));
        }
        let next = match self.sampling.penalties.is_off() && self.sampling.logit_bias.is_empty() {
            true => self.pick(logits)?,
            false => {
                let mut row = logits.to_vec();
                for &(id, bias) in &self.sampling.logit_bias {
                    if let Some(l) = row.get_mut(id as usize) {
                        *l += bias;
                    }
                }
                self.window.apply(&mut row);
                self.pick(&row)?
            }
        };
        self.window.push(next);
        Ok(next)
    }

    fn pick(&mut self, logits: &[f32]) -> Result<TokenId> {
        if self.sampling.temperature == 0.0 {
            return Ok(argmax(logits));
        }
        let mut cand: Vec<(TokenId, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as TokenId, l / self.sampling.temperature))
            .collect();
        cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        if self.sampling.top_k > 0 {
            cand.truncate(self.sampling.top_k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f32> = cand.iter().map(|c| (c.1 - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter_mut().enumerate() {
            *p /= total;
            acc += *p;
            if acc >= self.sampling.top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        let dist = WeightedIndex::new(&probs).map_err(|e| Error::config("sampling", e))?;
        Ok(cand[dist.sample(&mut self.rng)].0)
    }
}

/// Index of the largest value (first one on ties).
pub fn argmax(values: &[f32]) -> TokenId {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as TokenId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_zero_temperature_is_argmax() {
        let mut s = Sampler::new(Sampling::default());
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9]).unwrap(), 1);
    }

    #[test]
    fn sampler_top_k_one_is_argmax_at_any_temperature() {
        let sampling = Sampling {
            temperature: 5.0,
            top_k: 1,
            ..Sampling::default()
        };
        let mut s = Sampler::new(sampling);
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9]).unwrap(), 1);
        }
    }

    #[test]
    fn sampler_same_seed_same_tokens() {
        let sampling = Sampling {
            temperature: 1.0,
            seed: 7,
            ..Sampling::default()
        };
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = || {
            let mut s = Sampler::new(sampling.clone());
            (0..30)
                .map(|_| s.sample(&logits).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    /// Probabilities by id: id 1 is the most likely, then 3, 0, 2 (0.5, 0.3, 0.15, 0.05), listed
    /// out of rank order so that keeping the first ids cannot pass for truncation.
    const PROBS: [f32; 4] = [0.15, 0.5, 0.05, 0.3];

    /// How often each id is drawn in `n` seeded draws from log(PROBS) (temperature 1 turns
    /// them back into PROBS).
    fn draw(sampling: Sampling, n: usize) -> [f64; 4] {
        let logits = PROBS.map(f32::ln);
        let mut s = Sampler::new(Sampling {
            seed: 11,
            ..sampling
        });
        let mut counts = [0usize; 4];
        for _ in 0..n {
            counts[s.sample(&logits).unwrap() as usize] += 1;
        }
        counts.map(|c| c as f64 / n as f64)
    }

    /// Draws 4000 tokens and checks the frequency of each id against `want` (0 for ids outside
    /// the kept set: never drawn at all). A binomial frequency over 4000 draws has a standard
    /// deviation of at most 0.008, so 0.04 is 5 of them.
    fn assert_draws(sampling: Sampling, want: [f64; 4]) {
        let got = draw(sampling.clone(), 4000);
        for id in 0..4 {
            if want[id] == 0.0 {
                assert_eq!(
                    got[id], 0.0,
                    "{sampling:?}: id {id} drawn, outside the kept set"
                );
            } else {
                assert!(
                    (got[id] - want[id]).abs() < 0.04,
                    "{sampling:?}: id {id} drawn {:.3} of the time, expected {:.3}",
                    got[id],
                    want[id]
                );
            }
        }
    }

    fn temperature_one() -> Sampling {
        Sampling {
            temperature: 1.0,
            ..Sampling::default()
        }
    }

    #[test]
    fn sampler_top_p_draws_only_inside_the_nucleus() {
        // Sorted: 0.5 (id 1), 0.3 (id 3), 0.15 (id 0), 0.05 (id 2); cumulative 0.5, 0.8, 0.95, 1.
        // The nucleus is the shortest prefix whose sum reaches top_p, renormalized. Values of
        // top_p sit between the cumulative sums: on one (0.8), f32 rounding would decide.
        let top_p = |p: f32| Sampling {
            top_p: p,
            ..temperature_one()
        };
        assert_draws(top_p(0.4), [0.0, 1.0, 0.0, 0.0]);
        assert_draws(top_p(0.75), [0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8]);
        assert_draws(top_p(0.9), [0.15 / 0.95, 0.5 / 0.95, 0.0, 0.3 / 0.95]);
        assert_draws(top_p(1.0), [0.15, 0.5, 0.05, 0.3]);
    }

    #[test]
    fn sampler_top_k_draws_only_the_k_most_likely() {
        let top_k = |k: usize| Sampling {
            top_k: k,
            ..temperature_one()
        };
        assert_draws(top_k(2), [0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8]);
        assert_draws(top_k(3), [0.15 / 0.95, 0.5 / 0.95, 0.0, 0.3 / 0.95]);
        // k beyond the vocabulary keeps everything.
        assert_draws(top_k(10), [0.15, 0.5, 0.05, 0.3]);
    }

    #[test]
    fn sampler_top_k_and_top_p_keep_the_smaller_set() {
        // top_k 3 keeps {1, 3, 0}; top_p 0.75 of those (renormalized: 0.526, 0.316, 0.158;
        // cumulative 0.526, 0.842) keeps {1, 3}.
        let both = Sampling {
            top_k: 3,
            top_p: 0.75,
            ..temperature_one()
        };
        assert_draws(both, [0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8]);
    }

    #[test]
    fn sampler_temperature_applies_before_top_p() {
        // Temperature 2 takes square roots: 0.707, 0.548, 0.387, 0.224 for ids 1, 3, 0, 2, i.e.
        // 0.379, 0.293, 0.208, 0.120 (cumulative 0.379, 0.672, 0.880): top_p 0.75 now keeps
        // id 0 too, where at temperature 1 it keeps only {1, 3}.
        let hot = Sampling {
            temperature: 2.0,
            top_p: 0.75,
            ..Sampling::default()
        };
        let root = PROBS.map(|p| f64::from(p).sqrt());
        let kept = root[0] + root[1] + root[3];
        assert_draws(hot, [root[0] / kept, root[1] / kept, 0.0, root[3] / kept]);
    }

    #[test]
    fn sampling_rejects_bad_top_p() {
        let s = Sampling {
            top_p: 0.0,
            ..Sampling::default()
        };
        assert!(s.validate().is_err());
    }

    /// Greedy with a presence penalty of 0.5 over [0.1, 3.0, -1.0, 2.9]: id 1 first; then its
    /// logit is 2.5 < 2.9, so id 3; then 2.5 > 2.4, id 1 again (presence counts once). The
    /// sampler's own picks join the window; `accept` adds the prompt's tokens.
    #[test]
    fn greedy_with_a_presence_penalty_picks_by_the_penalized_logits() {
        let sampling = Sampling {
            penalties: Penalties {
                presence: 0.5,
                ..Penalties::default()
            },
            ..Sampling::default()
        };
        let logits = [0.1, 3.0, -1.0, 2.9];
        let mut s = Sampler::new(sampling.clone());
        let picks: Vec<_> = (0..3).map(|_| s.sample(&logits).unwrap()).collect();
        assert_eq!(picks, [1, 3, 1]);
        let mut prompted = Sampler::new(sampling);
        prompted.accept(&[1]);
        assert_eq!(prompted.sample(&logits).unwrap(), 3);
    }

    #[test]
    fn sampling_rejects_bad_penalties() {
        let s = Sampling {
            penalties: Penalties {
                repeat: -1.0,
                ..Penalties::default()
            },
            ..Sampling::default()
        };
        assert!(s.validate().is_err());
    }

    /// The bias is added before anything else: over [0.1, 3.0, -1.0, 2.9], -100 on id 1 leaves
    /// id 3 the argmax, +5 on id 2 makes it 4.0, the largest.
    #[test]
    fn logit_bias_moves_the_argmax() {
        let pick = |bias: Vec<(TokenId, f32)>| {
            let sampling = Sampling {
                logit_bias: bias,
                ..Sampling::default()
            };
            Sampler::new(sampling)
                .sample(&[0.1, 3.0, -1.0, 2.9])
                .unwrap()
        };
        assert_eq!(pick(vec![]), 1);
        assert_eq!(pick(vec![(1, -100.0)]), 3);
        assert_eq!(pick(vec![(2, 5.0)]), 2);
        assert_eq!(pick(vec![(9, 50.0)]), 1, "ids past the row are ignored");
    }

    /// llama.cpp's order: bias, then penalties. Logits [1.0, 1.2], +1 on id 0, repeat penalty 2
    /// with id 0 in the window: (1 + 1) / 2 = 1.0 < 1.2 picks id 1 (penalty first would give
    /// 1 / 2 + 1 = 1.5 and pick id 0).
    #[test]
    fn logit_bias_applies_before_the_penalties() {
        let sampling = Sampling {
            logit_bias: vec![(0, 1.0)],
            penalties: Penalties {
                repeat: 2.0,
                ..Penalties::default()
            },
            ..Sampling::default()
        };
        let mut s = Sampler::new(sampling);
        s.accept(&[0]);
        assert_eq!(s.sample(&[1.0, 1.2]).unwrap(), 1);
    }

    #[test]
    fn sampling_rejects_an_infinite_bias() {
        let s = Sampling {
            logit_bias: vec![(0, f32::INFINITY)],
            ..Sampling::default()
        };
        assert!(s.validate().is_err());
    }
}
