//! Anchors (spec §1): which tokens close a segment, and `<AC>` insertion after sentences.
//!
//! * AnLLM-EP uses existing punctuation: [`AnchorSpec::Ep`] is exactly the paper's rule (the
//!   bare `.` piece; Llama-2 id 29889), [`AnchorSpec::EpSentence`] every piece whose text ends a
//!   sentence (`.`, `!`, `?`, possibly followed by closing quotes or brackets), derived from the
//!   vocabulary, and [`AnchorSpec::EpNoDigit`] the paper's `.` except right after a digit (the
//!   `.` of a list number `1.` or a decimal `3.14` stays an ordinary token), and
//!   [`AnchorSpec::EpList`] the same with that `.` kept in the cache (pinned) as a list mark.
//! * AnLLM-AC uses an added `<AC>` token, inserted after every sentence ([`insert`]).
//! * [`AnchorSpec::None`]: no anchors, plain causal attention.

pub mod insert;

use std::str::FromStr;

use crate::token::Role;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result, TokenId};

/// Piece of the AnLLM-AC anchor token.
pub const AC_PIECE: &str = "<AC>";

/// Piece of the padding token the AnLLM checkpoints add.
pub const PAD_PIECE: &str = "[PAD]";

/// Which anchors a run uses, before it is resolved against a tokenizer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AnchorSpec {
    /// No anchors: plain causal attention, full cache.
    #[default]
    None,
    /// The paper's AnLLM-EP rule: the bare `.` piece only.
    Ep,
    /// Every piece whose text ends a sentence.
    EpSentence,
    /// The bare `.` piece, except right after a digit piece (list numbers, decimals).
    EpNoDigit,
    /// [`AnchorSpec::EpNoDigit`], and the `.` right after a digit is pinned: a list mark that
    /// stays in the cache and visible to every later token (not the paper's rule).
    EpList,
    /// The `<AC>` token of an AnLLM-AC model.
    Ac,
    /// Explicit token ids.
    Ids(Vec<TokenId>),
}

impl FromStr for AnchorSpec {
    type Err = Error;

    /// `none`, `ep`, `ep-sentence`, `ep-nodigit`, `ep-list`, `ac` or `ids:<id>,<id>,…`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "ep" => Ok(Self::Ep),
            "ep-sentence" => Ok(Self::EpSentence),
            "ep-nodigit" => Ok(Self::EpNoDigit),
            "ep-list" => Ok(Self::EpList),
            "ac" => Ok(Self::Ac),
            _ => {
                let list = s.strip_prefix("ids:").ok_or_else(|| {
                    Error::config(
                        "anchors",
                        format!(
                            "`{s}`: expected none, ep, ep-sentence, ep-nodigit, ep-list, ac or \
                             ids:<list>"
                        ),
                    )
                })?;
                let ids = list
                    .split(',')
                    .map(|id| id.trim().parse::<TokenId>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::config("anchors", format!("`{s}`: {e}")))?;
                Ok(Self::Ids(ids))
            }
        }
    }
}

/// The resolved anchor ids and pad id: classifies each token as token, anchor or pad, given
/// the token before it (an anchor right after a `not_after` token is an ordinary token, and
/// with `pin_marks` a pinned one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnchorSet {
    anchors: Vec<TokenId>, // sorted, unique
    pad: Option<TokenId>,
    not_after: Vec<TokenId>, // sorted, unique
    pin_marks: bool,
}

impl AnchorSet {
    /// A set of anchor ids and an optional pad id.
    pub fn new(anchors: impl IntoIterator<Item = TokenId>, pad: Option<TokenId>) -> Self {
        let mut anchors: Vec<TokenId> = anchors.into_iter().collect();
        anchors.sort_unstable();
        anchors.dedup();
        Self {
            anchors,
            pad,
            not_after: Vec::new(),
            pin_marks: false,
        }
    }

    /// This set, where an anchor id right after a `not_after` id is pinned (a list mark:
    /// kept in the cache and visible to every later token) rather than ordinary.
    pub fn with_pinned_marks(mut self, on: bool) -> Self {
        self.pin_marks = on;
        self
    }

    /// Whether `token` after `prev` is a pinned mark (see [`AnchorSet::with_pinned_marks`]).
    pub fn pins(&self, prev: Option<TokenId>, token: TokenId) -> bool {
        self.pin_marks
            && self.anchors.binary_search(&token).is_ok()
            && prev.is_some_and(|p| self.not_after.binary_search(&p).is_ok())
    }

    /// Whether anchor ids right after a `not_after` id are pinned.
    pub fn pinned_marks(&self) -> bool {
        self.pin_marks
    }

    /// This set, where an anchor id right after one of `ids` is an ordinary token.
    pub fn with_not_after(mut self, ids: impl IntoIterator<Item = TokenId>) -> Self {
        self.not_after = ids.into_iter().collect();
        self.not_after.sort_unstable();
        self.not_after.dedup();
        self
    }

    /// Resolves `spec` against `tokenizer`. The pad id is `[PAD]` when the vocabulary has it.
    pub fn from_spec(spec: &AnchorSpec, tokenizer: &Tokenizer) -> Result<Self> {
        let pad = tokenizer.token_id(PAD_PIECE);
        let look_up = |piece: &str, why: &str| {
            tokenizer.token_id(piece).ok_or_else(|| {
                Error::config(
                    "anchors",
                    format!("the vocabulary has no `{piece}` piece{why}"),
                )
            })
        };
        let anchors = match spec {
            AnchorSpec::None => Vec::new(),
            AnchorSpec::Ep | AnchorSpec::EpNoDigit | AnchorSpec::EpList => {
                vec![look_up(".", "")?]
            }
            AnchorSpec::EpSentence => sentence_end_pieces(tokenizer)?,
            AnchorSpec::Ac => vec![look_up(
                AC_PIECE,
                " (an AnLLM-AC model adds it; `anllm train --anchors ac` does)",
            )?],
            AnchorSpec::Ids(ids) => {
                let n = tokenizer.vocab_size();
                if let Some(bad) = ids.iter().find(|&&id| id as usize >= n) {
                    return Err(Error::config(
                        "anchors",
                        format!("id {bad} is outside the vocabulary of {n}"),
                    ));
                }
                ids.clone()
            }
        };
        if pad.is_some_and(|p| anchors.contains(&p)) {
            return Err(Error::config(
                "anchors",
                "the pad token cannot be an anchor",
            ));
        }
        let set = Self::new(anchors, pad);
        Ok(match spec {
            AnchorSpec::EpNoDigit => set.with_not_after(digit_pieces(tokenizer)?),
            AnchorSpec::EpList => set
                .with_not_after(digit_pieces(tokenizer)?)
                .with_pinned_marks(true),
            _ => set,
        })
    }

    /// The role of `token` when `prev` is the token before it in the stream (`None` at the
    /// start of a stream or document).
    pub fn classify(&self, prev: Option<TokenId>, token: TokenId) -> Role {
        if self.pad == Some(token) {
            Role::Pad
        } else if self.anchors.binary_search(&token).is_ok()
            && prev.is_none_or(|p| self.not_after.binary_search(&p).is_err())
        {
            Role::Anchor
        } else {
            Role::Token
        }
    }

    /// The ids after which an anchor id is an ordinary token (empty but for `ep-nodigit`).
    pub fn not_after(&self) -> &[TokenId] {
        &self.not_after
    }

    /// The anchor ids, sorted.
    pub fn ids(&self) -> &[TokenId] {
        &self.anchors
    }

    /// The pad id, if the vocabulary has one.
    pub fn pad(&self) -> Option<TokenId> {
        self.pad
    }

    /// Whether no token is an anchor.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// Ids of every piece whose text ends a sentence: after trimming whitespace, one `.` or a run
/// of `!`/`?`, then only closing quotes or brackets. `...`, `▁.5` or `e.g.` are not included;
/// neither are control tokens or byte-fallback pieces.
pub fn sentence_end_pieces(tokenizer: &Tokenizer) -> Result<Vec<TokenId>> {
    pieces_where(tokenizer, ends_sentence)
}

/// Ids of every piece whose text, without surrounding whitespace, is one or more ASCII digits
/// (`7`, `▁7`, `2024` in vocabularies that merge digits); not control or byte-fallback pieces.
pub fn digit_pieces(tokenizer: &Tokenizer) -> Result<Vec<TokenId>> {
    pieces_where(tokenizer, |text| {
        let core = text.trim();
        !core.is_empty() && core.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Ids of the vocabulary's text pieces (not control tokens, not byte-fallback pieces) whose
/// decoded text satisfies `keep`.
fn pieces_where(tokenizer: &Tokenizer, keep: impl Fn(&str) -> bool) -> Result<Vec<TokenId>> {
    let mut ids = Vec::new();
    for id in 0..tokenizer.vocab_size() as TokenId {
        if tokenizer.piece(id).is_none_or(|p| p.starts_with("<0x")) {
            continue;
        }
        if keep(&tokenizer.decode(&[id], true)?) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Whether `text` is sentence-final punctuation (see [`sentence_end_pieces`]).
pub fn ends_sentence(text: &str) -> bool {
    const CLOSERS: &[char] = &['"', '\'', '”', '’', ')', ']', '»', '}'];
    let core = text.trim().trim_end_matches(CLOSERS);
    core == "." || (!core.is_empty() && core.chars().all(|c| c == '!' || c == '?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentence_final_pieces_are_recognized() {
        for yes in [".", " .", ".\"", "!\"", "?", "?!", ".)", ".\n", ".”", "!!"] {
            assert!(ends_sentence(yes), "{yes:?}");
        }
        for no in ["...", "..", "e.g.", ".5", "", " ", "\"", ",", ".,", "Mr."] {
            assert!(!ends_sentence(no), "{no:?}");
        }
    }

    #[test]
    fn spec_parses_every_form() {
        assert_eq!("ep".parse::<AnchorSpec>().ok(), Some(AnchorSpec::Ep));
        assert_eq!(
            "ep-nodigit".parse::<AnchorSpec>().ok(),
            Some(AnchorSpec::EpNoDigit)
        );
        assert_eq!(
            "ids:13, 29889".parse::<AnchorSpec>().ok(),
            Some(AnchorSpec::Ids(vec![13, 29889]))
        );
        assert!("ids:x".parse::<AnchorSpec>().is_err());
        assert!("period".parse::<AnchorSpec>().is_err());
    }

    #[test]
    fn ep_list_pins_exactly_the_anchor_ids_after_a_not_after_token() {
        // Ids: 7 = a digit, 3 = the period, 4 = a word, 9 = pad.
        let set = AnchorSet::new([3], Some(9))
            .with_not_after([7])
            .with_pinned_marks(true);
        assert!(set.pins(Some(7), 3));
        assert_eq!(
            set.classify(Some(7), 3),
            Role::Token,
            "a mark closes nothing"
        );
        for (prev, token) in [
            (Some(4), 3),
            (None, 3),
            (Some(7), 4),
            (Some(7), 9),
            (Some(3), 7),
        ] {
            assert!(!set.pins(prev, token), "{prev:?} {token}");
        }
    }

    #[test]
    fn classify_puts_pad_before_anchor() {
        let set = AnchorSet::new([5, 3, 5], Some(9));
        assert_eq!(set.ids(), &[3, 5]);
        assert_eq!(set.classify(None, 3), Role::Anchor);
        assert_eq!(set.classify(None, 9), Role::Pad);
        assert_eq!(set.classify(None, 4), Role::Token);
    }

    #[test]
    fn an_anchor_after_a_not_after_token_is_an_ordinary_token() {
        // Ids: 7 = a digit, 3 = the period, 4 = a word, 9 = pad.
        let set = AnchorSet::new([3], Some(9)).with_not_after([7, 7]);
        assert_eq!(set.not_after(), &[7]);
        assert_eq!(set.classify(Some(7), 3), Role::Token);
        assert_eq!(set.classify(Some(4), 3), Role::Anchor);
        assert_eq!(set.classify(None, 3), Role::Anchor);
        assert_eq!(set.classify(Some(7), 9), Role::Pad);
        assert_eq!(set.classify(Some(7), 4), Role::Token);
        assert!(!set.pins(Some(7), 3), "ep-nodigit pins nothing");
    }
}
