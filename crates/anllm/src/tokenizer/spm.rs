//! SentencePiece tokenization of GGUF `llama` vocabularies, ported from llama.cpp's
//! `llm_tokenizer_spm`.
//!
//! The text (with the dummy-prefix space, every `' '` escaped as `'▁'`) starts as one symbol per
//! character; adjacent symbols whose concatenation is a vocabulary piece are merged, highest
//! piece score first (leftmost on ties). A final symbol that is no piece falls back to its UTF-8
//! bytes as `<0xXX>` tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use candle_core::quantized::gguf_file::{Content, Value};

use super::gguf::{meta_array, meta_bool, meta_u32};
use super::vocab::{Fragment, Vocab};
use crate::{Error, Result, TokenId};

/// The sentinel "no neighbour" index of the symbol list.
const NONE: usize = usize::MAX;

/// The SentencePiece model: piece scores and the byte-fallback table.
#[derive(Debug)]
pub(super) struct Spm {
    scores: Vec<f32>,
    byte_ids: [Option<TokenId>; 256],
    unk: Option<TokenId>,
    add_space_prefix: bool,
}

/// A run of the escaped text, linked to its neighbours; `len == 0` once merged away.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: usize,
    next: usize,
}

/// A candidate merge of two adjacent symbols into a piece of `size` bytes.
#[derive(Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for Bigram {
    /// Highest score first, then leftmost (llama.cpp's `llm_bigram_spm::comparator`).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl Spm {
    /// Reads `tokenizer.ggml.scores`, `tokenizer.ggml.add_space_prefix` and the byte pieces.
    pub(super) fn from_gguf(content: &Content, vocab: &Vocab) -> Result<Self> {
        let scores = meta_array(content, "tokenizer.ggml.scores")?
            .ok_or_else(|| {
                Error::tokenizer("GGUF SentencePiece vocabulary has no `tokenizer.ggml.scores`")
            })?
            .iter()
            .map(|v| match v {
                Value::F32(x) => Some(*x),
                Value::F64(x) => Some(*x as f32),
                _ => None,
            })
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| Error::tokenizer("`tokenizer.ggml.scores` is not a float array"))?;
        if scores.len() != vocab.pieces.len() {
            return Err(Error::tokenizer(format!(
                "{} scores for {} tokens",
                scores.len(),
                vocab.pieces.len()
            )));
        }
        let mut byte_ids = [None; 256];
        for (b, slot) in (0u8..=255).zip(byte_ids.iter_mut()) {
            *slot = vocab
                .index
                .get(&format!("<0x{b:02X}>"))
                .copied()
                .or_else(|| {
                    // llama.cpp falls back to the byte itself as a one-byte piece.
                    b.is_ascii()
                        .then(|| vocab.index.get(&char::from(b).to_string()).copied())
                        .flatten()
                });
        }
        let unk = meta_u32(content, "tokenizer.ggml.unknown_token_id")
            .or(Some(0))
            .filter(|&id| (id as usize) < vocab.pieces.len());
        Ok(Self {
            scores,
            byte_ids,
            unk,
            add_space_prefix: meta_bool(content, "tokenizer.ggml.add_space_prefix").unwrap_or(true),
        })
    }

    /// The score of each piece (higher merges first).
    pub(super) fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// Whether a space is put before the text (and removed from the first decoded piece).
    pub(super) fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Ids of `text`: special tokens matched by [`Vocab::partition`], the plain text between
    /// them tokenized with the dummy-prefix space at the start and after each special token,
    /// as llama.cpp does.
    pub(super) fn encode(
        &self,
        vocab: &Vocab,
        text: &str,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        let mut after_special = true;
        for fragment in vocab.partition(text, parse_special) {
            match fragment {
                Fragment::Text(t) => {
                    self.tokenize(vocab, t, after_special, &mut out)?;
                    after_special = false;
                }
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
            }
        }
        Ok(out)
    }

    /// Appends the ids of the plain text `text`; `at_start` says that it begins the input or
    /// follows a special token, where llama.cpp puts the dummy-prefix space.
    fn tokenize(
        &self,
        vocab: &Vocab,
        text: &str,
        at_start: bool,
        out: &mut Vec<TokenId>,
    ) -> Result<()> {
        let mut escaped = String::with_capacity(text.len() + text.len() / 2 + 3);
        if at_start && self.add_space_prefix {
            escaped.push('▁');
        }
        for c in text.chars() {
            escaped.push(if c == ' ' { '▁' } else { c });
        }
        if escaped.is_empty() {
            return Ok(());
        }
        let n = escaped.chars().count();
        let mut symbols: Vec<Symbol> = escaped
            .char_indices()
            .enumerate()
            .map(|(i, (start, c))| Symbol {
                start,
                len: c.len_utf8(),
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == n { NONE } else { i + 1 },
            })
            .collect();

        let mut queue = BinaryHeap::with_capacity(n);
        for i in 1..n {
            self.push_bigram(vocab, &escaped, &symbols, i - 1, i, &mut queue);
        }
        while let Some(bigram) = queue.pop() {
            let (left, right) = (symbols[bigram.left], symbols[bigram.right]);
            // Skip bigrams made stale by an earlier merge.
            if left.len == 0 || right.len == 0 || left.len + right.len != bigram.size {
                continue;
            }
            symbols[bigram.left].len += right.len;
            symbols[bigram.right].len = 0;
            symbols[bigram.left].next = right.next;
            if right.next != NONE {
                symbols[right.next].prev = bigram.left;
            }
            self.push_bigram(
                vocab,
                &escaped,
                &symbols,
                left.prev,
                bigram.left,
                &mut queue,
            );
            self.push_bigram(
                vocab,
                &escaped,
                &symbols,
                bigram.left,
                right.next,
                &mut queue,
            );
        }

        let mut i = 0;
        while i != NONE {
            let sym = symbols[i];
            if sym.len > 0 {
                self.resegment(vocab, &escaped[sym.start..sym.start + sym.len], out)?;
            }
            i = sym.next;
        }
        Ok(())
    }

    /// Queues the merge of `left` and `right` if their concatenation is a piece.
    fn push_bigram(
        &self,
        vocab: &Vocab,
        text: &str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        queue: &mut BinaryHeap<Bigram>,
    ) {
        if left == NONE || right == NONE {
            return;
        }
        let start = symbols[left].start;
        let size = symbols[left].len + symbols[right].len;
        let Some(&id) = vocab.index.get(&text[start..start + size]) else {
            return;
        };
        if let Some(&score) = self.scores.get(id as usize) {
            queue.push(Bigram {
                score,
                left,
                right,
                size,
            });
        }
    }

    /// Emits the piece of a final symbol, or its bytes when it is no piece.
    fn resegment(&self, vocab: &Vocab, piece: &str, out: &mut Vec<TokenId>) -> Result<()> {
        if let Some(&id) = vocab.index.get(piece) {
            out.push(id);
            return Ok(());
        }
        for b in piece.bytes() {
            let id = self.byte_ids[usize::from(b)].or(self.unk).ok_or_else(|| {
                Error::tokenizer(format!(
                    "no byte-fallback piece <0x{b:02X}> and no unknown token"
                ))
            })?;
            out.push(id);
        }
        Ok(())
    }
}

/// Writes a normal SentencePiece piece with `'▁'` turned back into `' '`.
pub(super) fn unescape_whitespace(piece: &str, out: &mut Vec<u8>) {
    let mut rest = piece;
    while let Some(at) = rest.find('▁') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        out.push(b' ');
        rest = &rest[at + '▁'.len_utf8()..];
    }
    out.extend_from_slice(rest.as_bytes());
}
