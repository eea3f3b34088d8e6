//! Corpus chrF exactly as sacrebleu 2.x computes it by default (`sacrebleu.corpus_chrf(hyps,
//! [refs])`: chrF2, i.e. character n-grams of orders 1–6, no word n-grams, β = 2, whitespace
//! removed, no eps smoothing), with one reference per hypothesis.
//!
//! Per segment and order, sacrebleu keeps three counts: hypothesis n-grams, reference n-grams and
//! clipped matches. These are summed over the corpus; the precision and recall of each order with
//! both hypothesis and reference n-grams are averaged (the "effective order"), and the F-β score
//! is taken of the two averages. Characters are Unicode code points, with no normalization.
//! The pinned peer is `benches/sacrebleu.sh`; `crates/anllm-eval/tests/golden/sacrebleu.json`
//! holds its values.

use std::collections::HashMap;

use anllm::Result;

use super::bleu::{check_corpus, is_py_space};

/// The maximum character n-gram order (sacrebleu's `CHRF.CHAR_ORDER`).
const ORDER: usize = 6;

/// β² with sacrebleu's `CHRF.BETA = 2`: recall weighs 4 times as much as precision.
const FACTOR: f64 = 4.0;

/// Hypothesis n-grams, reference n-grams and clipped matches of one order.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts {
    hyp: usize,
    reference: usize,
    matched: usize,
}

/// Counts of the character n-grams of one order.
fn char_ngrams(chars: &[char], n: usize) -> HashMap<&[char], usize> {
    let mut counts = HashMap::new();
    for gram in chars.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

/// The counts of one hypothesis against its reference, per order (sacrebleu's
/// `_get_match_statistics`). Whitespace (Python's) is removed first. Where the reference has no
/// n-gram of an order, the hypothesis n-grams of that order are not counted either.
fn segment_counts(hypothesis: &str, reference: &str) -> [Counts; ORDER] {
    let hyp: Vec<char> = hypothesis.chars().filter(|&c| !is_py_space(c)).collect();
    let reference: Vec<char> = reference.chars().filter(|&c| !is_py_space(c)).collect();
    let mut out = [Counts::default(); ORDER];
    for (n, counts) in (1..=ORDER).zip(out.iter_mut()) {
        let ref_grams = char_ngrams(&reference, n);
        let mut hyp_total = 0;
        for (gram, count) in char_ngrams(&hyp, n) {
            hyp_total += count;
            counts.matched += count.min(ref_grams.get(gram).copied().unwrap_or(0));
        }
        counts.hyp = if ref_grams.is_empty() { 0 } else { hyp_total };
        counts.reference = ref_grams.values().sum();
    }
    out
}

/// chrF from corpus counts (sacrebleu's `_compute_f_score` with `eps_smoothing=False`), 0–100.
fn f_score(counts: &[Counts; ORDER]) -> f64 {
    let (mut avg_prec, mut avg_rec, mut effective) = (0.0, 0.0, 0usize);
    for c in counts.iter().filter(|c| c.hyp > 0 && c.reference > 0) {
        avg_prec += c.matched as f64 / c.hyp as f64;
        avg_rec += c.matched as f64 / c.reference as f64;
        effective += 1;
    }
    if effective > 0 {
        avg_prec /= effective as f64;
        avg_rec /= effective as f64;
    }
    if avg_prec + avg_rec == 0.0 {
        return 0.0;
    }
    let score = (1.0 + FACTOR) * avg_prec * avg_rec / (FACTOR * avg_prec + avg_rec);
    100.0 * score
}

/// Corpus chrF of `hypotheses` against `references` (one each), as sacrebleu's default
/// `corpus_chrf(hypotheses, [references])`, 0–100.
///
/// # Errors
/// [`anllm::Error::Config`] when the corpus is empty or the two lists differ in length.
pub fn corpus_chrf(hypotheses: &[&str], references: &[&str]) -> Result<f64> {
    check_corpus(hypotheses, references)?;
    let mut total = [Counts::default(); ORDER];
    for (hyp, reference) in hypotheses.iter().zip(references) {
        for (sum, c) in total.iter_mut().zip(segment_counts(hyp, reference)) {
            sum.hyp += c.hyp;
            sum.reference += c.reference;
            sum.matched += c.matched;
        }
    }
    Ok(f_score(&total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chrf(hyp: &str, reference: &str) -> f64 {
        corpus_chrf(&[hyp], &[reference]).expect("chrf")
    }

    #[test]
    fn corpus_chrf_identical_is_100() {
        let s = ["Die Größe der Straße.", "ok"];
        let score = corpus_chrf(&s, &s).expect("chrf");
        assert!((score - 100.0).abs() < 1e-9, "{score}");
    }

    #[test]
    fn corpus_chrf_hand_counted_example_matches() {
        // hyp "a b" (whitespace removed: "ab") vs ref "abc": 1-grams P = 2/2, R = 2/3; 2-grams
        // P = 1/1, R = 1/2; orders 3..6 have no hypothesis n-grams. Averages P = 1, R = 7/12;
        // F2 = 5·P·R / (4·P + R) = (35/12) / (55/12) = 7/11.
        assert!((chrf("a b", "abc") - 700.0 / 11.0).abs() < 1e-9);
    }

    #[test]
    fn corpus_chrf_ignores_orders_the_reference_lacks() {
        // hyp "abcd" vs ref "ab": 1-grams P = 2/4, R = 1; 2-grams P = 1/3, R = 1; the hypothesis
        // 3- and 4-grams are not counted (the reference has none). P = 5/12, R = 1:
        // F2 = 5·(5/12) / (4·5/12 + 1) = 25/32.
        assert!((chrf("abcd", "ab") - 78.125).abs() < 1e-9);
    }

    #[test]
    fn corpus_chrf_sums_counts_before_averaging() {
        // Counts are pooled over the corpus: one empty hypothesis only lowers the recall.
        let pooled = corpus_chrf(&["", "abc"], &["abc", "abc"]).expect("chrf");
        // 1-grams P = 3/3, R = 3/6; 2-grams P = 2/2, R = 2/4; 3-grams P = 1/1, R = 1/2:
        // F2 = 5·0.5 / (4 + 0.5) = 5/9.
        assert!((pooled - 500.0 / 9.0).abs() < 1e-9, "{pooled}");
        assert_eq!(chrf("", "abc"), 0.0);
    }

    #[test]
    fn corpus_chrf_mismatched_lengths_is_an_error() {
        assert!(corpus_chrf(&["a", "b"], &["a"]).is_err());
    }
}
