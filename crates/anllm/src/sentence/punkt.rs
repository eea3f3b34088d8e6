//! Punkt parameters and the sentence splitter.
//!
//! A port of the decision algorithm of NLTK's `PunktSentenceTokenizer` (NLTK 3.10, after Kiss &
//! Strunk 2006): word tokenization, the first annotation pass (`.?!`, ellipses, known
//! abbreviations), the second pass (collocations, the orthographic heuristic, frequent sentence
//! starters, initials and ordinals) and the realignment of closing quotes and brackets.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;

use super::context;
use super::words::is_py_space;
use crate::{Error, Result};

/// Abbreviations that NLTK's English model lacks but English text uses mid-sentence
/// (`e.g.`, `i.e.`, `etc.`, …), added by [`super::load_english`]. Types are lower case
/// without the final period, like Punkt's `abbrev_types`.
pub const ENGLISH_EXTRA_ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "etc", "cf", "viz", "al", "approx", "fig", "figs", "vol", "vols", "eq", "eqs",
    "mar", "apr", "jun", "jul", "capt", "sgt", "gov", "rev", "hon", "pres", "dept", "univ",
];

/// Abbreviations of [`PunktParams::english_minimal`].
const MINIMAL_ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "messrs", "dr", "prof", "rev", "hon", "st", "jr", "sr", "gen", "col", "lt",
    "maj", "capt", "sgt", "gov", "sen", "rep", "pres", "e.g", "i.e", "etc", "vs", "cf", "viz",
    "al", "approx", "ca", "fig", "figs", "vol", "vols", "inc", "ltd", "co", "corp", "bros", "dept",
    "univ", "ave", "blvd", "mt", "ft", "u.s", "u.k", "u.n", "u.s.a", "d.c", "a.m", "p.m", "ph.d",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon",
    "tue", "tues", "wed", "thu", "thur", "thurs", "fri",
];

/// Frequent sentence starters of [`PunktParams::english_minimal`], separated by spaces.
const MINIMAL_SENTENCE_STARTERS: &str = "the a an he she it they we i you this that these \
    those there then but and however so yet thus in if when while after since although though \
    meanwhile moreover his her its their our my what why how who where";

/// Punkt model parameters: abbreviation types, collocations, frequent sentence starters and
/// orthographic contexts (NLTK `PunktParameters`).
#[derive(Debug, Clone, Default)]
pub struct PunktParams {
    /// Lower-case abbreviation types without the final period (`mr`, `u.s`).
    pub(crate) abbrev_types: HashSet<String>,
    /// Word pairs around a period that is not a break (`##number##` → `international`).
    pub(crate) collocations: HashMap<String, HashSet<String>>,
    /// Lower-case words that often start a sentence.
    pub(crate) sent_starters: HashSet<String>,
    /// Orthographic context flags of each word type (NLTK `_ORTHO_*` bits).
    pub(crate) ortho_context: HashMap<String, u32>,
}

/// The JSON layout of NLTK parameters as compiled by the `punkt` crate.
#[derive(Deserialize)]
struct JsonParams {
    abbrev_types: Vec<String>,
    collocations: Vec<(String, String)>,
    sentence_starters: Vec<String>,
    ortho_context: HashMap<String, u32>,
}

impl PunktParams {
    /// Parses parameters in the JSON layout of the `punkt` crate's `src/data/*.json` (keys
    /// `abbrev_types`, `collocations`, `sentence_starters`, `ortho_context`), exactly as
    /// given. Note that NLTK's English model has no `e.g`, `i.e` or `etc`: see
    /// [`super::load_english`].
    pub fn from_json_str(json: &str) -> Result<Self> {
        Self::parse(json).map_err(|e| Error::config("punkt parameters", e))
    }

    /// Reads [`PunktParams::from_json_str`] parameters from a file.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&json).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            reason: format!("not Punkt parameters: {e}"),
        })
    }

    fn parse(json: &str) -> serde_json::Result<Self> {
        let raw: JsonParams = serde_json::from_str(json)?;
        let mut params = PunktParams {
            abbrev_types: raw.abbrev_types.into_iter().collect(),
            sent_starters: raw.sentence_starters.into_iter().collect(),
            ortho_context: raw.ortho_context,
            ..PunktParams::default()
        };
        for (a, b) in raw.collocations {
            params.add_collocation(a, b);
        }
        Ok(params)
    }

    /// Small built-in English parameters: common abbreviations (titles, `e.g`, `i.e`, `etc`,
    /// `vs`, `u.s`, months, weekdays, …) and common sentence starters, with no orthographic
    /// data. Without orthographic data a break after an abbreviation is found only before a
    /// capitalized sentence starter, and an initial before a capitalized word (`J. Smith`)
    /// never breaks. For tests and as a fallback when `english.json` is not fetched.
    pub fn english_minimal() -> Self {
        let mut params = PunktParams::default();
        params.add_abbreviations(MINIMAL_ABBREVIATIONS);
        let starters = MINIMAL_SENTENCE_STARTERS.split_whitespace();
        params.sent_starters = starters.map(str::to_string).collect();
        params
    }

    /// Adds abbreviation types; each is lower-cased and a final period is dropped
    /// (`"E.g."` → `e.g`).
    pub fn add_abbreviations<S: AsRef<str>>(&mut self, abbrevs: impl IntoIterator<Item = S>) {
        for a in abbrevs {
            let a = a.as_ref().to_lowercase();
            let a = a.strip_suffix('.').unwrap_or(&a);
            if !a.is_empty() {
                self.abbrev_types.insert(a.to_string());
            }
        }
    }

    /// Whether `typ` (lower case, no final period) is a known abbreviation.
    pub fn is_abbreviation(&self, typ: &str) -> bool {
        self.abbrev_types.contains(typ)
    }

    pub(crate) fn add_collocation(&mut self, a: String, b: String) {
        self.collocations.entry(a).or_default().insert(b);
    }

    pub(crate) fn is_collocation(&self, a: &str, b: &str) -> bool {
        self.collocations.get(a).is_some_and(|s| s.contains(b))
    }

    pub(crate) fn ortho(&self, typ: &str) -> u32 {
        self.ortho_context.get(typ).copied().unwrap_or(0)
    }
}

/// Splits English text into sentences with Punkt.
#[derive(Debug, Clone)]
pub struct SentenceSplitter {
    params: PunktParams,
    realign_boundaries: bool,
    paragraph_breaks: bool,
}

impl SentenceSplitter {
    /// A splitter using `params`, with NLTK's defaults: closing quotes and brackets after a
    /// break are realigned onto the sentence before it, and a blank line alone does not end a
    /// sentence.
    pub fn new(params: PunktParams) -> Self {
        SentenceSplitter {
            params,
            realign_boundaries: true,
            paragraph_breaks: false,
        }
    }

    /// Turns NLTK's `realign_boundaries` off (`false`: `"Stop." Go.` gives `"Stop.` and
    /// `" Go.`) or on (the default).
    pub fn with_realign_boundaries(mut self, on: bool) -> Self {
        self.realign_boundaries = on;
        self
    }

    /// With `true`, a blank line also ends a sentence (a heading or a paragraph without final
    /// punctuation becomes a sentence of its own); NLTK and the default do not do this.
    pub fn with_paragraph_breaks(mut self, on: bool) -> Self {
        self.paragraph_breaks = on;
        self
    }

    /// The parameters in use.
    pub fn params(&self) -> &PunktParams {
        &self.params
    }

    /// Byte ranges of the sentences of `text`, in order, each trimmed of surrounding
    /// whitespace, never empty; the text between them is whitespace only. A sentence ends
    /// after its final punctuation including closing quotes and brackets
    /// (`He said "Stop."` ends after the closing quote). Whitespace is as Python's
    /// `str.isspace`: [`char::is_whitespace`] or U+001C..U+001F.
    pub fn sentence_spans(&self, text: &str) -> Vec<Range<usize>> {
        let spans = context::raw_spans(text, &self.params, self.realign_boundaries);
        let spans = spans.into_iter().filter_map(|r| context::trim(text, r));
        if self.paragraph_breaks {
            spans.flat_map(|r| paragraphs(text, r)).collect()
        } else {
            spans.collect()
        }
    }

    /// The sentences of `text` as slices (see [`SentenceSplitter::sentence_spans`]).
    pub fn sentences<'t>(&self, text: &'t str) -> Vec<&'t str> {
        self.sentence_spans(text)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }
}

/// `span` cut at blank lines into trimmed, non-empty pieces.
fn paragraphs(text: &str, span: Range<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = span.start;
    let mut pos = span.start;
    for line in text
        .get(span.clone())
        .unwrap_or_default()
        .split_inclusive('\n')
    {
        if line.chars().all(is_py_space) {
            out.extend(context::trim(text, start..pos));
            start = pos + line.len();
        }
        pos += line.len();
    }
    out.extend(context::trim(text, start..span.end));
    out
}

#[cfg(test)]
#[path = "punkt_tests.rs"]
mod tests;
