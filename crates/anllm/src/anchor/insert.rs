//! AnLLM-AC data preparation: an `<AC>` token after every sentence, at the token level
//! (spec §1.3). The text is tokenized once, as a whole, so the tokens are exactly those of the
//! plain text; the anchor goes right after the token that holds the sentence's last character.

use crate::tokenizer::Tokenizer;
use crate::{Result, TokenId};

/// Whether the last sentence of a text gets an anchor too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FinalSentence {
    /// No anchor after the last sentence: the authors' `add_ac` joins sentences with `<AC>`.
    #[default]
    Open,
    /// An anchor after the last sentence as well ("end of each sequence" reading of the paper).
    Anchored,
}

/// Token ids of `text` with `anchor` inserted after every sentence of `spans` (byte ranges of
/// the sentences, in order, e.g. from [`SentenceSplitter::sentence_spans`]; the last one gets an
/// anchor according to `last`). Sentences that end inside the same token get one anchor.
///
/// [`SentenceSplitter::sentence_spans`]: crate::sentence::SentenceSplitter::sentence_spans
pub fn insert_after_sentences(
    tokenizer: &Tokenizer,
    text: &str,
    spans: &[std::ops::Range<usize>],
    anchor: TokenId,
    last: FinalSentence,
) -> Result<Vec<TokenId>> {
    let tokens = tokenizer.encode_with_offsets(text)?;
    let cut = match last {
        FinalSentence::Open => spans.len().saturating_sub(1),
        FinalSentence::Anchored => spans.len(),
    };
    Ok(insert_at_ends(
        &tokens,
        spans[..cut].iter().map(|s| s.end),
        anchor,
    ))
}

/// `tokens` (id, end offset) with `anchor` after the first token reaching each of `ends`
/// (ascending byte offsets).
pub fn insert_at_ends(
    tokens: &[(TokenId, usize)],
    ends: impl IntoIterator<Item = usize>,
    anchor: TokenId,
) -> Vec<TokenId> {
    let mut ends = ends.into_iter().peekable();
    let mut out = Vec::with_capacity(tokens.len() + 16);
    for &(id, end) in tokens {
        out.push(id);
        let mut reached = false;
        while ends.next_if(|&e| e <= end).is_some() {
            reached = true;
        }
        if reached {
            out.push(anchor);
        }
    }
    if ends.peek().is_some() && out.last() != Some(&anchor) {
        out.push(anchor);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_follows_the_token_holding_the_sentence_end() {
        // "Hi. Yo." as tokens "Hi" ".", " Yo" ".", ends 2, 3, 6, 7.
        let tokens = [(1, 2), (2, 3), (3, 6), (2, 7)];
        assert_eq!(insert_at_ends(&tokens, [3], 99), vec![1, 2, 99, 3, 2]);
        assert_eq!(
            insert_at_ends(&tokens, [3, 7], 99),
            vec![1, 2, 99, 3, 2, 99]
        );
    }

    #[test]
    fn sentences_ending_in_one_token_get_one_anchor() {
        let tokens = [(1, 4), (2, 9)];
        assert_eq!(insert_at_ends(&tokens, [2, 3], 99), vec![1, 99, 2]);
    }
}
