//! Punkt's two annotation passes over tokens (NLTK `_first_pass_annotation`,
//! `_second_pass_annotation` and `_ortho_heuristic`).

use super::punkt::PunktParams;
use super::words::{Token, tokenize_words};

/// Orthographic context flags (NLTK `_ORTHO_*`), as stored in `ortho_context`.
pub(crate) mod ortho {
    /// Sentence-initial, upper case.
    pub const BEG_UC: u32 = 1 << 1;
    /// Sentence-internal, upper case.
    pub const MID_UC: u32 = 1 << 2;
    /// Unknown position, upper case.
    pub const UNK_UC: u32 = 1 << 3;
    /// Sentence-initial, lower case.
    pub const BEG_LC: u32 = 1 << 4;
    /// Sentence-internal, lower case.
    pub const MID_LC: u32 = 1 << 5;
    /// Unknown position, lower case.
    pub const UNK_LC: u32 = 1 << 6;
    /// Any upper-case context.
    pub const UC: u32 = BEG_UC | MID_UC | UNK_UC;
    /// Any lower-case context.
    pub const LC: u32 = BEG_LC | MID_LC | UNK_LC;
}

/// Tokens that never start a sentence (NLTK `PunktSentenceTokenizer.PUNCTUATION`).
const PUNCTUATION: &[&str] = &[";", ":", ",", ".", "!", "?"];

/// First pass: marks `.?!`, ellipses, abbreviations and other period-final tokens.
pub(crate) fn first_pass(tok: &mut Token<'_>, params: &PunktParams) {
    let t = tok.tok;
    if matches!(t, "." | "?" | "!") {
        tok.sentbreak = true;
    } else if tok.is_ellipsis() {
        tok.ellipsis = true;
    } else if tok.period_final() && !t.ends_with("..") {
        let base = t[..t.len() - 1].to_lowercase();
        let last = base.rsplit('-').next().unwrap_or(&base);
        if params.abbrev_types.contains(&base) || params.abbrev_types.contains(last) {
            tok.abbr = true;
        } else {
            tok.sentbreak = true;
        }
    }
}

/// Result of the orthographic heuristic: does the token start a sentence?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Starter {
    Yes,
    No,
    Unknown,
}

/// NLTK `_ortho_heuristic`.
fn ortho_heuristic(tok: &Token<'_>, params: &PunktParams) -> Starter {
    if PUNCTUATION.contains(&tok.tok) {
        return Starter::No;
    }
    let ctx = params.ortho(tok.type_no_sentperiod());
    if tok.first_upper() && ctx & ortho::LC != 0 && ctx & ortho::MID_UC == 0 {
        return Starter::Yes;
    }
    if tok.first_lower() && (ctx & ortho::UC != 0 || ctx & ortho::BEG_LC == 0) {
        return Starter::No;
    }
    Starter::Unknown
}

fn mark_abbrev(tok: &mut Token<'_>) {
    tok.sentbreak = false;
    tok.abbr = true;
}

/// Second pass over the pair (`t1`, `t2`), updating `t1` (NLTK `_second_pass_annotation`).
pub(crate) fn second_pass(t1: &mut Token<'_>, t2: &Token<'_>, params: &PunktParams) {
    if !t1.period_final() {
        return;
    }
    let next_typ = t2.type_no_sentperiod();
    let initial = t1.is_initial();
    // 4.1.2 collocation heuristic.
    if params.is_collocation(t1.type_no_period(), next_typ) {
        return mark_abbrev(t1);
    }
    // 4.2 abbreviations and ellipses that also end a sentence: orthographic evidence, or a
    // capitalized frequent sentence starter.
    let abbrev_like = (t1.abbr || t1.ellipsis) && !initial;
    if abbrev_like
        && (ortho_heuristic(t2, params) == Starter::Yes
            || (t2.first_upper() && params.sent_starters.contains(next_typ)))
    {
        t1.sentbreak = true;
        return;
    }
    // 4.3 initials and ordinals.
    if initial || t1.type_no_period() == "##number##" {
        let starter = ortho_heuristic(t2, params);
        if starter == Starter::No
            || (starter == Starter::Unknown
                && initial
                && t2.first_upper()
                && params.ortho(next_typ) & ortho::LC == 0)
        {
            mark_abbrev(t1);
        }
    }
}

/// Runs both passes over `tokens` in place (NLTK `_annotate_tokens`): every token gets its
/// first-pass marks before the second pass looks at it as the right-hand token.
pub(crate) fn annotate(tokens: &mut [Token<'_>], params: &PunktParams) {
    for t in tokens.iter_mut() {
        first_pass(t, params);
    }
    for i in 1..tokens.len() {
        let (left, right) = tokens.split_at_mut(i);
        second_pass(&mut left[i - 1], &right[0], params);
    }
}

/// Whether `context` holds a sentence break before its last token (NLTK
/// `text_contains_sentbreak`).
pub(crate) fn contains_sentbreak(context: &str, params: &PunktParams) -> bool {
    let mut tokens = tokenize_words(context);
    annotate(&mut tokens, params);
    tokens
        .split_last()
        .is_some_and(|(_, init)| init.iter().any(|t| t.sentbreak))
}
