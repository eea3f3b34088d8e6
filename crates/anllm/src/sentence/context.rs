//! Finding candidate sentence ends and cutting the text into sentences (NLTK
//! `_match_potential_end_contexts`, `_slices_from_text` and `_realign_boundaries`).

use std::ops::Range;

use super::annotate::contains_sentbreak;
use super::punkt::PunktParams;
use super::words::{is_ascii_space, is_non_word, is_py_space, is_space};

/// A `.`, `?` or `!` followed by other punctuation or by whitespace and a token (NLTK
/// `period_context_re`).
#[derive(Debug, Clone)]
struct Candidate {
    /// Byte offset of the end character.
    start: usize,
    /// Byte offset just after it.
    end: usize,
    /// End of the lookahead: the punctuation character, or whitespace plus the next token.
    after_end: usize,
    /// Start of the next token when the lookahead is whitespace plus a token.
    next_tok: Option<usize>,
}

fn candidate_at(text: &str, start: usize) -> Option<Candidate> {
    let end = start + 1;
    let rest = &text[end..];
    let next = rest.chars().next()?;
    if is_non_word(next) {
        let after_end = end + next.len_utf8();
        return Some(Candidate {
            start,
            end,
            after_end,
            next_tok: None,
        });
    }
    let ws = rest.find(|c: char| !is_space(c))?;
    if ws == 0 {
        return None;
    }
    let tok = end + ws;
    let tok_len = text[tok..].find(is_space).unwrap_or(text.len() - tok);
    Some(Candidate {
        start,
        end,
        after_end: tok + tok_len,
        next_tok: Some(tok),
    })
}

/// All candidates in order.
fn candidates(text: &str) -> Vec<Candidate> {
    text.char_indices()
        .filter(|&(_, c)| matches!(c, '.' | '?' | '!'))
        .filter_map(|(i, _)| candidate_at(text, i))
        .collect()
}

/// Candidates with the byte offset where the word before each starts; a candidate whose
/// word reaches back over the previous candidate absorbs it (NLTK 3.10 forward scan).
fn candidates_with_words(text: &str) -> Vec<(Candidate, usize)> {
    let mut out: Vec<(Candidate, usize)> = Vec::new();
    let mut prev: Option<(Candidate, Range<usize>)> = None;
    for m in candidates(text) {
        let from = prev.as_ref().map_or(0, |(_, w)| w.end);
        let before = &text[from..m.start];
        let word_start = match before
            .char_indices()
            .rev()
            .find(|&(_, c)| is_ascii_space(c))
        {
            Some((i, c)) if i > 0 => from + i + c.len_utf8(),
            _ => prev.as_ref().map_or(0, |(_, w)| w.start),
        };
        if let Some((pm, pw)) = prev.take()
            && pw.end <= word_start
        {
            out.push((pm, pw.start));
        }
        prev = Some((m.clone(), word_start..m.start));
    }
    out.extend(prev.map(|(m, w)| (m, w.start)));
    out
}

/// Sentence slices before realignment (NLTK `_slices_from_text`).
fn slices(text: &str, params: &PunktParams) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut last_break = 0;
    for (m, word_start) in candidates_with_words(text) {
        // NLTK joins the word before, the end character and the lookahead: one slice here.
        let context = text.get(word_start..m.after_end).unwrap_or_default();
        if contains_sentbreak(context, params) {
            out.push(last_break..m.end);
            last_break = m.next_tok.unwrap_or(m.end);
        }
    }
    let trimmed = text.trim_end_matches(is_py_space).len();
    out.push(last_break..trimmed.max(last_break));
    out
}

/// Closing punctuation moved onto the sentence before it.
fn is_closing(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | ')'
            | ']'
            | '}'
            | '\u{2018}'
            | '\u{2019}'
            | '\u{201c}'
            | '\u{201d}'
            | '\u{ab}'
            | '\u{bb}'
    )
}

/// NLTK `re_boundary_realignment` matched at the start of `s`: closing punctuation followed
/// by whitespace, `--` or the end of `s`. Returns (length without and with the whitespace).
fn realignment(s: &str) -> Option<(usize, usize)> {
    let close = s.find(|c: char| !is_closing(c)).unwrap_or(s.len());
    if close == 0 {
        return None;
    }
    let rest = &s[close..];
    let ws = rest.find(|c: char| !is_space(c)).unwrap_or(rest.len());
    (ws > 0 || rest.is_empty() || rest.starts_with("--")).then_some((close, close + ws))
}

/// Moves closing quotes and brackets that follow a break into the sentence before it
/// (NLTK `_realign_boundaries`).
fn realign(text: &str, slices: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut shift = 0;
    for (k, s1) in slices.iter().enumerate() {
        let s1 = (s1.start + shift).min(s1.end)..s1.end;
        let Some(s2) = slices.get(k + 1) else {
            out.push(s1);
            break;
        };
        match text.get(s2.clone()).and_then(realignment) {
            Some((keep, skip)) => {
                out.push(s1.start..s2.start + keep);
                shift = skip;
            }
            None => {
                out.push(s1);
                shift = 0;
            }
        }
    }
    out
}

/// Sentence byte ranges (NLTK `span_tokenize`), realigned if `realign_boundaries`; not yet
/// trimmed.
pub(crate) fn raw_spans(
    text: &str,
    params: &PunktParams,
    realign_boundaries: bool,
) -> Vec<Range<usize>> {
    let slices = slices(text, params);
    if realign_boundaries {
        realign(text, &slices)
    } else {
        slices
    }
}

/// `r` without surrounding whitespace, or `None` if nothing is left.
pub(crate) fn trim(text: &str, r: Range<usize>) -> Option<Range<usize>> {
    let s = text.get(r.clone())?;
    let lead = s.len() - s.trim_start_matches(is_py_space).len();
    let body = s.trim_matches(is_py_space);
    (!body.is_empty()).then(|| r.start + lead..r.start + lead + body.len())
}
