//! Text-level helpers of a generation: stop strings held back until they can no longer start
//! a match, and log-probabilities of a logits row.

use anllm::TokenId;

/// Holds back text that might be the start of a stop string, and cuts the output at the first
/// stop string (which is not returned).
#[derive(Debug, Default)]
pub struct StopFilter {
    stops: Vec<String>,
    held: String,
}

impl StopFilter {
    /// A filter for `stops` (empty strings are ignored).
    pub fn new(stops: Vec<String>) -> Self {
        let stops = stops.into_iter().filter(|s| !s.is_empty()).collect();
        Self {
            stops,
            held: String::new(),
        }
    }

    /// Adds `text`; returns the text that is safe to send and whether a stop string ended the
    /// output.
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.held.push_str(text);
        let hit = (self.stops.iter())
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            let out = self.held[..at].to_string();
            self.held.clear();
            return (out, true);
        }
        let keep = self.partial_suffix();
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        (out, false)
    }

    /// The text still held back (at the end of the generation it is sent).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest suffix of the held text that is a proper prefix of a stop string.
    fn partial_suffix(&self) -> usize {
        let held = self.held.as_str();
        (1..held.len().min(self.longest()) + 1)
            .rev()
            .filter(|&n| held.is_char_boundary(held.len() - n))
            .find(|&n| {
                let tail = &held[held.len() - n..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(0)
    }

    fn longest(&self) -> usize {
        self.stops.iter().map(String::len).max().unwrap_or(0)
    }
}

/// The log-probability of `chosen` in `row` (log-softmax of the raw logits, no temperature)
/// and the `k` most likely tokens with theirs, best first.
pub fn logprobs(row: &[f32], chosen: TokenId, k: usize) -> (f32, Vec<(TokenId, f32)>) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let lse = max + sum.ln() as f32;
    let chosen_lp = row
        .get(chosen as usize)
        .map_or(f32::NEG_INFINITY, |l| l - lse);
    let mut top: Vec<(TokenId, f32)> = Vec::with_capacity(k + 1);
    for (i, &l) in row.iter().enumerate() {
        if top.len() < k || top.last().is_some_and(|t| l > t.1) {
            let at = top.partition_point(|t| t.1 >= l);
            top.insert(at, (i as TokenId, l));
            top.truncate(k);
        }
    }
    (
        chosen_lp,
        top.into_iter().map(|(i, l)| (i, l - lse)).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_filter_split_stop_string_is_cut_and_not_returned() {
        let mut f = StopFilter::new(vec!["User:".into()]);
        assert_eq!(f.push("Hello Us"), ("Hello ".to_string(), false));
        assert_eq!(f.push("er: more"), (String::new(), true));
    }

    #[test]
    fn stop_filter_false_start_is_released() {
        let mut f = StopFilter::new(vec!["\n\n".into()]);
        assert_eq!(f.push("a\n"), ("a".to_string(), false));
        assert_eq!(f.push("b"), ("\nb".to_string(), false));
        assert_eq!(f.flush(), "");
    }

    #[test]
    fn stop_filter_multibyte_text_is_cut_on_char_boundaries() {
        let mut f = StopFilter::new(vec!["é!".into()]);
        assert_eq!(f.push("caféé"), ("café".to_string(), false));
        assert_eq!(f.push("!"), (String::new(), true));
    }

    #[test]
    fn logprobs_match_hand_computed_softmax() {
        // softmax([0, ln 3]) = [1/4, 3/4]
        let row = [0.0, 3f32.ln(), f32::NEG_INFINITY];
        let (lp, top) = logprobs(&row, 0, 2);
        assert!((lp - 0.25f32.ln()).abs() < 1e-6);
        assert_eq!(top[0].0, 1);
        assert!((top[0].1 - 0.75f32.ln()).abs() < 1e-6);
        assert_eq!(top[1].0, 0);
    }
}
