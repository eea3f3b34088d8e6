//! Corpus BLEU exactly as sacrebleu 2.x computes it by default (`sacrebleu.corpus_bleu(hyps,
//! [refs])`: `tokenize='13a'`, `smooth_method='exp'`, no lowercasing, no effective order, n-grams
//! up to 4), with one reference per hypothesis.
//!
//! Each segment is `rstrip`ped, then tokenized by [`tokenize_13a`] (mteval-v13a). The n-gram
//! matches (clipped by the reference counts) and the lengths are summed over the corpus before
//! the precisions, the brevity penalty and the geometric mean are taken.
//! The pinned peer is `benches/sacrebleu.sh`; `crates/anllm-eval/tests/golden/sacrebleu.json`
//! holds its values.

use std::collections::HashMap;
use std::sync::LazyLock;

use anllm::{Error, Result};
use regex::Regex;

/// The maximum n-gram order (sacrebleu's `MAX_NGRAM_ORDER`).
const ORDER: usize = 4;

/// What sacrebleu's `my_log` returns for `log(0)`.
const LOG_ZERO: f64 = -9_999_999_999.0;

/// A corpus BLEU score and its sufficient statistics (sacrebleu's `BLEUScore`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bleu {
    /// BLEU, 0–100.
    pub score: f64,
    /// The n-gram precisions in percent, 1- to 4-grams (smoothed where no n-gram matched).
    pub precisions: [f64; 4],
    /// The brevity penalty.
    pub bp: f64,
    /// Total hypothesis length in tokens.
    pub sys_len: usize,
    /// Total reference length in tokens.
    pub ref_len: usize,
    /// Matched (clipped) n-grams per order.
    pub counts: [usize; 4],
    /// Hypothesis n-grams per order.
    pub totals: [usize; 4],
}

/// Python's `str.isspace`, what `str.split()` and `str.rstrip()` cut at: Unicode White_Space
/// plus the four ASCII separators U+001C–U+001F, which Rust's [`char::is_whitespace`] lacks.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Fails unless there is at least one hypothesis and exactly one reference for each.
///
/// sacrebleu raises on an empty corpus and silently truncates to the shorter list on a length
/// mismatch; a mismatch here is always a caller bug, so it is an error.
pub(crate) fn check_corpus(hypotheses: &[&str], references: &[&str]) -> Result<()> {
    if hypotheses.len() != references.len() {
        return Err(Error::config(
            "references",
            format!(
                "{} hypotheses but {} references (one per hypothesis)",
                hypotheses.len(),
                references.len()
            ),
        ));
    }
    if hypotheses.is_empty() {
        return Err(Error::config("hypotheses", "the corpus is empty"));
    }
    Ok(())
}

/// The four regexes of sacrebleu's `TokenizerRegexp`, applied in order, each with Python's
/// `re.sub` semantics (leftmost, non-overlapping: the same as [`Regex::replace_all`]).
static RULES: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(p).expect("the 13a regexes are valid");
    [
        // Split off ASCII punctuation and symbols other than '.', ',', '-' and '\''.
        (re(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), " ${1} "),
        // Period and comma, unless preceded by a digit.
        (re(r"([^0-9])([\.,])"), "${1} ${2} "),
        // Period and comma, unless followed by a digit.
        (re(r"([\.,])([^0-9])"), " ${1} ${2}"),
        // Dash after a digit.
        (re(r"([0-9])(-)"), "${1} ${2} "),
    ]
});

/// The mteval-v13a tokenization of one line, as sacrebleu's `Tokenizer13a` (no `rstrip`: that
/// is [`corpus_bleu`]'s preprocessing). Removes `<skipped>`, joins `-\n`, turns other newlines
/// into spaces, decodes `&quot;` `&amp;` `&lt;` `&gt;` (in that order, once), splits off
/// punctuation by the four regexes, and joins the words with single spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, replacement) in RULES.iter() {
        line = re.replace_all(&line, *replacement).into_owned();
    }
    let words: Vec<&str> = line.split(is_py_space).filter(|w| !w.is_empty()).collect();
    words.join(" ")
}

/// One segment's statistics: lengths, matched and total n-grams per order.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Stats {
    sys_len: usize,
    ref_len: usize,
    counts: [usize; ORDER],
    totals: [usize; ORDER],
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.sys_len += other.sys_len;
        self.ref_len += other.ref_len;
        for n in 0..ORDER {
            self.counts[n] += other.counts[n];
            self.totals[n] += other.totals[n];
        }
    }
}

/// Counts of every n-gram of orders 1..=4 (keyed by the token slice).
fn ngrams<'a>(tokens: &'a [&'a str]) -> HashMap<&'a [&'a str], usize> {
    let mut counts = HashMap::new();
    for n in 1..=ORDER.min(tokens.len()) {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// The statistics of one hypothesis against its reference (sacrebleu's
/// `_compute_segment_statistics` with one reference).
fn segment_stats(hypothesis: &str, reference: &str) -> Stats {
    let hyp = tokenize_13a(hypothesis.trim_end_matches(is_py_space));
    let reference = tokenize_13a(reference.trim_end_matches(is_py_space));
    let hyp_tokens: Vec<&str> = hyp.split(' ').filter(|w| !w.is_empty()).collect();
    let ref_tokens: Vec<&str> = reference.split(' ').filter(|w| !w.is_empty()).collect();
    let ref_grams = ngrams(&ref_tokens);
    let mut stats = Stats {
        sys_len: hyp_tokens.len(),
        ref_len: ref_tokens.len(),
        ..Stats::default()
    };
    for (gram, count) in ngrams(&hyp_tokens) {
        let n = gram.len() - 1;
        stats.totals[n] += count;
        stats.counts[n] += count.min(ref_grams.get(gram).copied().unwrap_or(0));
    }
    stats
}

/// sacrebleu's `my_log`: the natural log, with `log(0)` floored to -9999999999.
fn my_log(x: f64) -> f64 {
    if x == 0.0 { LOG_ZERO } else { x.ln() }
}

/// BLEU from corpus statistics (sacrebleu's `compute_bleu` with `smooth_method='exp'`): an
/// order with no match gets precision `100 / (2^k · total)` for its k-th such order; the loop
/// stops at the first order with no hypothesis n-grams, whose precision stays 0 (log -9999999999,
/// so the score is 0).
fn compute(stats: &Stats) -> Bleu {
    let bp = if stats.sys_len >= stats.ref_len {
        1.0
    } else if stats.sys_len > 0 {
        (1.0 - stats.ref_len as f64 / stats.sys_len as f64).exp()
    } else {
        0.0
    };
    let mut bleu = Bleu {
        score: 0.0,
        precisions: [0.0; ORDER],
        bp,
        sys_len: stats.sys_len,
        ref_len: stats.ref_len,
        counts: stats.counts,
        totals: stats.totals,
    };
    if stats.counts.iter().all(|&c| c == 0) {
        return bleu;
    }
    let mut smooth = 1.0;
    for n in 0..ORDER {
        let (count, total) = (stats.counts[n], stats.totals[n]);
        if total == 0 {
            break;
        }
        bleu.precisions[n] = if count == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total as f64)
        } else {
            100.0 * count as f64 / total as f64
        };
    }
    let log_sum = bleu.precisions.iter().fold(0.0, |acc, &p| acc + my_log(p));
    bleu.score = bp * (log_sum / ORDER as f64).exp();
    bleu
}

/// Corpus BLEU of `hypotheses` against `references` (one each), as sacrebleu's default
/// `corpus_bleu(hypotheses, [references])`.
///
/// # Errors
/// [`Error::Config`] when the corpus is empty or the two lists differ in length.
pub fn corpus_bleu(hypotheses: &[&str], references: &[&str]) -> Result<Bleu> {
    check_corpus(hypotheses, references)?;
    let mut stats = Stats::default();
    for (hyp, reference) in hypotheses.iter().zip(references) {
        stats.add(&segment_stats(hyp, reference));
    }
    Ok(compute(&stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_13a_digits_and_entities_follow_mteval() {
        assert_eq!(
            tokenize_13a("It costs 3.5, not 1,000."),
            "It costs 3.5 , not 1,000 ."
        );
        assert_eq!(tokenize_13a("pages 10-20 &amp; a-b"), "pages 10 - 20 & a-b");
        assert_eq!(tokenize_13a("well-\nknown\nfact"), "wellknown fact");
        // Non-overlapping matches: the second '.' of "..5" is neither split nor kept apart.
        assert_eq!(tokenize_13a("..5"), ". .5");
        assert_eq!(tokenize_13a("a\u{1c}b "), "a b");
    }

    #[test]
    fn corpus_bleu_identical_is_100() {
        let s = ["The cat sat on the mat.", "It is 3.5 km away."];
        let b = corpus_bleu(&s, &s).expect("bleu");
        assert!((b.score - 100.0).abs() < 1e-9, "{b:?}");
        assert_eq!(b.bp, 1.0);
    }

    #[test]
    fn corpus_bleu_hand_counted_example_matches() {
        // hyp "the cat sat on the mat" vs ref "the cat is on the mat", 6 tokens each (bp = 1):
        // 1-grams the×2 cat on mat match 5/6; 2-grams "the cat" "on the" "the mat" 3/5;
        // 3-grams "on the mat" 1/4; 4-grams none of 3, so exp smoothing gives 100/(2·3).
        let b = corpus_bleu(&["the cat sat on the mat"], &["the cat is on the mat"]).expect("bleu");
        assert_eq!((b.counts, b.totals), ([5, 3, 1, 0], [6, 5, 4, 3]));
        let want = (500.0f64 / 6.0 * 60.0 * 25.0 * (100.0 / 6.0)).powf(0.25);
        assert!((b.score - want).abs() < 1e-9, "{} vs {want}", b.score);
    }

    #[test]
    fn corpus_bleu_short_system_without_4grams_is_zero() {
        // 2 tokens vs 6: bp = exp(1 - 6/2); no 3-grams, so the loop stops and BLEU is 0.
        let b = corpus_bleu(&["the cat"], &["the cat sat on the mat"]).expect("bleu");
        assert_eq!((b.counts, b.totals), ([2, 1, 0, 0], [2, 1, 0, 0]));
        assert!((b.bp - (-2.0f64).exp()).abs() < 1e-15);
        assert_eq!(b.score, 0.0);
    }

    #[test]
    fn corpus_bleu_empty_system_has_zero_bp() {
        let b = corpus_bleu(&["", "  "], &["a b", "c"]).expect("bleu");
        assert_eq!((b.score, b.bp, b.sys_len, b.ref_len), (0.0, 0.0, 0, 3));
    }

    #[test]
    fn corpus_bleu_mismatched_or_empty_corpus_is_an_error() {
        assert!(corpus_bleu(&["a"], &["a", "b"]).is_err());
        assert!(corpus_bleu(&[], &[]).is_err());
    }
}
