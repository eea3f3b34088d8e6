//! Punkt's word tokenizer and token properties (NLTK `PunktLanguageVars.word_tokenize`,
//! `PunktBaseClass._tokenize_words` and `PunktToken`), written out by hand instead of as
//! regular expressions.
//!
//! Character classes follow the `regex` module NLTK 3.10 compiles its patterns with: `\s` is
//! Unicode `White_Space` ([`is_space`]), `[^\W\d]` (a "letter") is [`is_letter`], and `\d` is
//! taken as an ASCII digit (other decimal digits are rare in English text; a deliberate
//! simplification). Python's `str.strip` counts a few more characters as space
//! ([`is_py_space`]).

/// Characters that cannot appear within a word and end it (NLTK `_re_non_word_chars`, 3.10:
/// ASCII brackets and quotes, curly quotes, guillemets, `?` and `!`).
const NON_WORD: &[char] = &[
    ')', '"', ';', '}', ']', '*', ':', '@', '\'', '(', '{', '[', '\u{2018}', '\u{2019}',
    '\u{201c}', '\u{201d}', '\u{ab}', '\u{bb}', '?', '!',
];

/// Characters that cannot start a word token (NLTK `_re_word_start`, negated).
const NOT_WORD_START: &[char] = &[
    '(', '"', '`', '{', '[', ':', ';', '&', '#', '*', '@', ')', '}', ']', '-', ',',
];

/// `\s` of NLTK's patterns: Unicode `White_Space`.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Python's `str.isspace` (used by `str.strip`): `White_Space` plus U+001C..U+001F.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python `string.whitespace` (ASCII only), used by NLTK to find the word before a period.
pub(crate) fn is_ascii_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}')
}

/// `[^\W\d]`: a word character that is not a digit: alphabetic, connector punctuation
/// (`_`, `‿`, …), combining diacritics and the joiners (general combining marks of other
/// scripts are not recognized).
pub(crate) fn is_letter(c: char) -> bool {
    c.is_alphabetic()
        || matches!(
            c,
            '_' | '\u{203f}' | '\u{2040}' | '\u{2054}' | '\u{fe33}' | '\u{fe34}' | '\u{ff3f}'
        )
        || matches!(c, '\u{fe4d}'..='\u{fe4f}' | '\u{300}'..='\u{36f}' | '\u{200c}' | '\u{200d}')
}

/// Characters of `\S` that end a word: `NON_WORD`.
pub(crate) fn is_non_word(c: char) -> bool {
    NON_WORD.contains(&c)
}

/// Length in chars of the multi-character punctuation (`--`, `..`, `. . .`) starting at `i`.
fn multi_char_len(c: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| c.get(k).copied();
    match (at(i)?, at(i + 1)) {
        ('-', Some('-')) | ('.', Some('.')) => {
            let ch = c[i];
            Some(c[i..].iter().take_while(|&&x| x == ch).count())
        }
        ('.', _) => {
            // `(?:\.\s){2,}\.`, greedy with backtracking.
            let pairs = (0..)
                .take_while(|&j| {
                    at(i + 2 * j) == Some('.') && at(i + 2 * j + 1).is_some_and(is_space)
                })
                .count();
            let reps = if at(i + 2 * pairs) == Some('.') {
                pairs
            } else {
                pairs.saturating_sub(1)
            };
            (reps >= 2).then_some(2 * reps + 1)
        }
        _ => None,
    }
}

/// Whether the lazy word match `\S+?` stops before position `p`.
fn word_stops_at(c: &[char], p: usize) -> bool {
    let Some(&ch) = c.get(p) else { return true };
    if is_space(ch) || is_non_word(ch) || multi_char_len(c, p).is_some() {
        return true;
    }
    // `,(?=$|\s|NonWord|MultiChar)`: a comma at the end of a word.
    ch == ','
        && c.get(p + 1)
            .is_none_or(|&n| is_space(n) || is_non_word(n) || multi_char_len(c, p + 1).is_some())
}

/// Splits one line into Punkt word tokens (NLTK `word_tokenize`): byte ranges into `line`.
pub(crate) fn word_tokenize(line: &str) -> Vec<std::ops::Range<usize>> {
    let offsets: Vec<usize> = line
        .char_indices()
        .map(|(b, _)| b)
        .chain([line.len()])
        .collect();
    let c: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let len = if is_space(c[i]) {
            i += 1;
            continue;
        } else if let Some(n) = multi_char_len(&c, i) {
            n
        } else if !NOT_WORD_START.contains(&c[i]) {
            (i + 1..=c.len())
                .find(|&p| word_stops_at(&c, p))
                .unwrap_or(c.len())
                - i
        } else {
            1
        };
        out.push(offsets[i]..offsets[i + len]);
        i += len;
    }
    out
}

/// One Punkt token with its first- and second-pass annotations (NLTK `PunktToken`).
#[derive(Debug, Clone)]
pub(crate) struct Token<'a> {
    /// The token text.
    pub tok: &'a str,
    /// Lower-cased text, numbers replaced by `##number##`.
    pub typ: String,
    /// First token of a paragraph (after a blank line).
    pub parastart: bool,
    /// First token of a line.
    pub linestart: bool,
    /// Marked as ending a sentence.
    pub sentbreak: bool,
    /// Marked as an abbreviation.
    pub abbr: bool,
    /// Marked as an ellipsis.
    pub ellipsis: bool,
}

impl<'a> Token<'a> {
    fn new(tok: &'a str, parastart: bool, linestart: bool) -> Self {
        let lower = tok.to_lowercase();
        let typ = if is_numeric(&lower) {
            "##number##".to_string()
        } else {
            lower
        };
        Token {
            tok,
            typ,
            parastart,
            linestart,
            sentbreak: false,
            abbr: false,
            ellipsis: false,
        }
    }

    /// The token ends in a period.
    pub fn period_final(&self) -> bool {
        self.tok.ends_with('.')
    }

    /// The type without a final period (if longer than one char).
    pub fn type_no_period(&self) -> &str {
        match self.typ.strip_suffix('.') {
            Some(t) if !t.is_empty() => t,
            _ => &self.typ,
        }
    }

    /// The type without its final period if the token is a sentence break.
    pub fn type_no_sentperiod(&self) -> &str {
        if self.sentbreak {
            self.type_no_period()
        } else {
            &self.typ
        }
    }

    fn first(&self) -> Option<char> {
        self.tok.chars().next()
    }

    /// First character is upper case.
    pub fn first_upper(&self) -> bool {
        self.first().is_some_and(char::is_uppercase)
    }

    /// First character is lower case.
    pub fn first_lower(&self) -> bool {
        self.first().is_some_and(char::is_lowercase)
    }

    /// Two or more periods and nothing else.
    pub fn is_ellipsis(&self) -> bool {
        self.tok.len() >= 2 && self.tok.bytes().all(|b| b == b'.')
    }

    /// The type is `##number##`.
    pub fn is_number(&self) -> bool {
        self.typ.starts_with("##number##")
    }

    /// One letter followed by a period (`J.`).
    pub fn is_initial(&self) -> bool {
        let mut it = self.tok.chars();
        matches!((it.next(), it.next(), it.next()), (Some(l), Some('.'), None) if is_letter(l))
    }

    /// Letters only.
    pub fn is_alpha(&self) -> bool {
        !self.tok.is_empty() && self.tok.chars().all(is_letter)
    }

    /// The type contains a letter (numbers count, as `##number##`).
    pub fn is_non_punct(&self) -> bool {
        self.typ.chars().any(is_letter)
    }
}

/// NLTK `_RE_NUMERIC`: `^-?[\.,]?\d[\d,\.-]*\.?$`.
fn is_numeric(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let s = s.strip_prefix(['.', ',']).unwrap_or(s);
    let mut it = s.chars();
    it.next().is_some_and(|c| c.is_ascii_digit())
        && it.all(|c| c.is_ascii_digit() || matches!(c, ',' | '.' | '-'))
}

/// Tokens of `text`, line by line, with paragraph- and line-start flags
/// (NLTK `_tokenize_words`).
pub(crate) fn tokenize_words(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut parastart = false;
    for line in text.split('\n') {
        if line.chars().all(is_py_space) {
            parastart = true;
            continue;
        }
        for (k, r) in word_tokenize(line).into_iter().enumerate() {
            out.push(Token::new(&line[r], parastart && k == 0, k == 0));
        }
        parastart = false;
    }
    out
}
