//! Seeded, offline long-context tasks (RULER-style) for comparing KV-cache eviction policies.
//!
//! [`generate`] builds [`KvItem`]s of one [`KvTask`] at one target length; the length is measured
//! by a token-counting closure (the real tokenizer in production), and every item's `context`
//! lands in the window `[length − ⌊2 % · length⌋ − 8, length]` tokens. Tasks:
//!
//! * [`KvTask::Passkey`] (RULER `niah_single_1`): one pass-key needle in the repeated
//!   "The grass is green. …" haystack;
//! * [`KvTask::Multikey`] (`niah_multikey_2`): a haystack made only of "special magic number"
//!   needles with distinct `adjective-noun` keys, one of them asked for;
//! * [`KvTask::Vt`] (variable tracking, one chain of four hops): five `VAR` statements spread
//!   through the noise haystack, the model lists every variable holding the value;
//! * [`KvTask::Agreement`]: a window of real text and its real continuation, to compare a
//!   policy's next-token predictions with the full cache's.
//!
//! The same [`GenSpec`] and counter always give the same items: each item draws from its own RNG
//! seeded from (`seed`, task, length, item index), so items do not depend on generation order.
//! [`write_jsonl`] and [`read_jsonl`] store them one JSON object a line.

mod metrics;
pub mod run;
mod tasks;
#[cfg(test)]
mod tests;
mod words;

use tasks::AGREEMENT_ANSWER_TOKENS as ANSWER_TOKENS;

pub use tasks::{
    AGREEMENT_ANSWER_TOKENS, GenSpec, KvItem, KvTask, MIN_LENGTH, generate, read_jsonl, write_jsonl,
};

/// Most texts built and counted while fitting one context to its window.
const MAX_PROBES: usize = 48;

/// The inclusive token window a fitted text must land in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// Fewest tokens accepted.
    lo: usize,
    /// Most tokens accepted.
    hi: usize,
}

impl Window {
    /// `[length − ⌊length / 50⌋ − 8, length]`: the smallest integer range holding every count
    /// within 2 % + 8 tokens under `length`.
    fn for_length(length: usize) -> Self {
        Self {
            lo: length.saturating_sub(length / 50 + 8),
            hi: length,
        }
    }

    fn contains(self, tokens: usize) -> bool {
        (self.lo..=self.hi).contains(&tokens)
    }
}

/// A text that fits its window, built from `n` units.
#[derive(Debug)]
struct Fitted {
    n: usize,
    text: String,
}

/// Why no unit count fits the window.
#[derive(Debug, PartialEq, Eq)]
enum Miss {
    /// Even zero units are longer than the window (the fixed part does not fit).
    TooLong(usize),
    /// The largest count still under the window's top, `n` units of `tokens` tokens, is short.
    Short { n: usize, tokens: usize },
}

/// A point (units, tokens) measured while fitting.
type Probe = (usize, usize);

/// The number of units `n ≤ max_n` whose text `build(n)` has a token count in `win`, with a few
/// calls to `count`: one for `build(0)` (the fixed part), one at `guess`, then secant steps
/// between the closest points under and over the window (bisection after a few steps), so a
/// near-linear count converges in two or three probes. Token counts are assumed to grow with `n`.
fn fit(
    win: Window,
    max_n: usize,
    guess: usize,
    build: &dyn Fn(usize) -> String,
    count: &dyn Fn(&str) -> usize,
) -> Result<Fitted, Miss> {
    let text = build(0);
    let base = count(&text);
    if base > win.hi {
        return Err(Miss::TooLong(base));
    }
    if win.contains(base) || max_n == 0 {
        return found_or_short(win, Fitted { n: 0, text }, base);
    }
    let (mut below, mut above): (Probe, Option<Probe>) = ((0, base), None);
    let mut n = guess.clamp(1, max_n);
    for step in 0..MAX_PROBES {
        let text = build(n);
        let tokens = count(&text);
        if win.contains(tokens) {
            return Ok(Fitted { n, text });
        }
        if tokens > win.hi {
            above = Some((n, tokens));
        } else {
            below = (n, tokens);
        }
        let top = above.map_or(max_n, |(a, _)| a - 1);
        if top <= below.0 {
            break;
        }
        n = next_probe(win, base, below, above, step).clamp(below.0 + 1, top);
    }
    Err(Miss::Short {
        n: below.0,
        tokens: below.1,
    })
}

impl Miss {
    /// What went wrong, for an error message.
    fn message(self, win: Window) -> String {
        match self {
            Self::TooLong(tokens) => format!(
                "the needles alone take {tokens} tokens, more than the {} asked for",
                win.hi
            ),
            Self::Short { tokens, .. } => format!(
                "could not fit the text to [{}, {}] tokens (closest: {tokens})",
                win.lo, win.hi
            ),
        }
    }
}

fn found_or_short(win: Window, fitted: Fitted, tokens: usize) -> Result<Fitted, Miss> {
    if win.contains(tokens) {
        Ok(fitted)
    } else {
        Err(Miss::Short {
            n: fitted.n,
            tokens,
        })
    }
}

/// The next unit count to try: aim at the window's middle along the line through the bracket
/// (or through the origin point `(0, base)` and the last point under the window); bisect the
/// bracket, or double, once secant steps have not converged within four probes.
fn next_probe(win: Window, base: usize, below: Probe, above: Option<Probe>, step: usize) -> usize {
    let target = (win.lo + win.hi) as f64 / 2.0;
    let (from, to) = match above {
        Some(a) if step >= 4 => return (below.0 + a.0) / 2,
        Some(a) => (below, a),
        None if step >= 4 => return below.0 * 2,
        None => ((0, base), below),
    };
    let slope = (to.1 as f64 - from.1 as f64) / (to.0 as f64 - from.0 as f64);
    if slope <= 0.0 {
        return below.0 * 2;
    }
    let n = below.0 as f64 + (target - below.1 as f64) / slope;
    n.round().max(0.0) as usize
}

/// Units `0..n` joined by single spaces, with each insert placed before unit `round(depth · n)`
/// (depth 1 puts it after the last unit); inserts at the same place keep their order.
fn interleave<S: AsRef<str>>(units: &[S], n: usize, inserts: &[(f32, &str)]) -> String {
    let at: Vec<usize> = inserts
        .iter()
        .map(|(d, _)| ((f64::from(*d) * n as f64).round() as usize).min(n))
        .collect();
    let mut parts: Vec<&str> = Vec::with_capacity(n + inserts.len());
    let mut pending = at.iter().zip(inserts).peekable();
    for (j, unit) in units[..n].iter().enumerate() {
        while let Some((_, (_, text))) = pending.next_if(|(at, _)| **at <= j) {
            parts.push(text);
        }
        parts.push(unit.as_ref());
    }
    parts.extend(pending.map(|(_, (_, text))| *text));
    parts.join(" ")
}

/// Bytes of the start of a real text that measure its [`Rate`].
const SAMPLE_BYTES: usize = 16_384;

/// Bytes per token and tokens per word of a real text, measured on its first [`SAMPLE_BYTES`].
#[derive(Debug, Clone, Copy)]
struct Rate {
    bytes_per_token: f64,
    tokens_per_word: f64,
}

impl Rate {
    fn measure(text: &str, count: &dyn Fn(&str) -> usize) -> Self {
        let sample = &text[..words::floor_boundary(text, SAMPLE_BYTES)];
        let tokens = count(sample).max(1) as f64;
        let n_words = sample.split_whitespace().count().max(1) as f64;
        Self {
            bytes_per_token: sample.len().max(1) as f64 / tokens,
            tokens_per_word: tokens / n_words,
        }
    }

    /// Bytes that hold about `tokens` tokens, with a 25 % margin.
    fn bytes_for(&self, tokens: usize) -> usize {
        (tokens as f64 * self.bytes_per_token * 1.25).ceil() as usize
    }

    /// Words that make about `tokens` tokens.
    fn words_for(&self, tokens: usize) -> usize {
        (tokens as f64 / self.tokens_per_word) as usize
    }
}

/// An Agreement window of `text` from `start` (a word start): the context, whole words fitted to
/// `length` tokens, and the answer, the next whole words fitted to [`ANSWER_TOKENS`] tokens with
/// the whitespace between them leading it, so `context + answer` is exactly the text from
/// `start` on.
fn real_window(
    text: &str,
    start: usize,
    length: usize,
    rate: &Rate,
    count: &dyn Fn(&str) -> usize,
) -> Result<(String, String), String> {
    let limit = words::floor_boundary(text, start + 2 * rate.bytes_for(length + ANSWER_TOKENS));
    let body = &text[start..limit];
    let ends = words::word_ends(body, limit == text.len());
    let end = |n: usize| if n == 0 { 0 } else { ends[n - 1] };
    let (win, guess) = (Window::for_length(length), rate.words_for(length));
    let build = |n: usize| body[..end(n)].to_string();
    let context = fit(win, ends.len().saturating_sub(1), guess, &build, count)
        .map_err(|miss| format!("context: {}", miss.message(win)))?;
    let (win, guess) = (
        Window::for_length(ANSWER_TOKENS),
        rate.words_for(ANSWER_TOKENS),
    );
    let from = end(context.n);
    let build = |m: usize| body[from..end(context.n + m)].to_string();
    let answer = fit(win, ends.len() - context.n, guess, &build, count)
        .map_err(|miss| format!("answer: {}", miss.message(win)))?;
    Ok((context.text, answer.text))
}
