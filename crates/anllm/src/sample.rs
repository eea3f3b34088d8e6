//! Next-token selection: greedy, or temperature / top-k / top-p sampling with a seeded RNG.

use rand::SeedableRng;
use rand::distr::{Distribution, weighted::WeightedIndex};
use rand::rngs::StdRng;

use crate::{Error, Result, TokenId};

/// How to pick the next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = no limit).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1.0 = no limit).
    pub top_p: f32,
    /// RNG seed, so runs are reproducible.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 42,
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
        Ok(())
    }
}

/// A seeded sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    sampling: Sampling,
    rng: StdRng,
}

impl Sampler {
    /// A sampler for `sampling`.
    pub fn new(sampling: Sampling) -> Self {
        Self {
            rng: StdRng::seed_from_u64(sampling.seed),
            sampling,
        }
    }

    /// Picks a token from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> Result<TokenId> {
        if logits.is_empty() {
            return Err(Error::config("logits", "empty row"));
        }
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
            let mut s = Sampler::new(sampling);
            (0..30)
                .map(|_| s.sample(&logits).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn sampling_rejects_bad_top_p() {
        let s = Sampling {
            top_p: 0.0,
            ..Sampling::default()
        };
        assert!(s.validate().is_err());
    }
}
