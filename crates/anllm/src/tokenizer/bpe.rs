//! Byte-level BPE of GGUF `gpt2` vocabularies, as llama.cpp's `llm_tokenizer_bpe`.
//!
//! The text is first cut by the regexes llama.cpp uses for the vocabulary's
//! `tokenizer.ggml.pre` (each regex splits the pieces left by the previous one, matches and the
//! text between them both kept), then every piece is written as GPT-2 byte-level characters and
//! merged pair by pair, lowest merge rank first (leftmost on ties).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::utils::SysRegex;

use super::gguf::{meta_array, meta_str};
use super::vocab::{Fragment, Vocab};
use crate::{Error, Result, TokenId};

/// The GPT-2 pattern. llama.cpp's has no final `\s+`, but keeps unmatched text as pieces, which
/// gives the same split.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Every digit on its own (`smollm`, `starcoder`, … before [`GPT2`]).
const DIGITS: &str = r"\p{N}";
/// llama.cpp's default BPE pre-tokenizer (no or `default` `tokenizer.ggml.pre`).
const DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"];
/// Llama 3.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The sentinel "no neighbour" index of the symbol list.
const NONE: usize = usize::MAX;

/// How a `tokenizer.ggml.pre` value pre-tokenizes.
struct PreType {
    regexes: &'static [&'static str],
    /// Take a whole piece that is in the vocabulary without merging (llama.cpp's
    /// `ignore_merges`).
    ignore_merges: bool,
    add_bos: bool,
}

/// The pre-tokenizer of `pre`, after llama.cpp's `llama_vocab::impl::load`.
fn pre_type(pre: &str) -> Option<PreType> {
    let (regexes, ignore_merges, add_bos): (&'static [&'static str], _, _) = match pre {
        "default" => (DEFAULT, false, false),
        "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" => (&[GPT2], false, false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            (&[DIGITS, GPT2], false, false)
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" => (&[LLAMA3], true, true),
        "qwen2" | "deepseek-r1-qwen" => (&[QWEN2], false, false),
        _ => return None,
    };
    Some(PreType {
        regexes,
        ignore_merges,
        add_bos,
    })
}

/// A byte-level BPE model: pre-tokenizer regexes and merge ranks over vocabulary ids.
#[derive(Debug)]
pub(super) struct Bpe {
    /// The pre-tokenizer regexes, applied in order (their sources in `patterns`).
    splits: Vec<SysRegex>,
    patterns: &'static [&'static str],
    /// `(left, right)` → `(rank, merged)`.
    merges: HashMap<(TokenId, TokenId), (u32, TokenId)>,
    /// The id of each byte's byte-level character.
    byte_ids: [Option<TokenId>; 256],
    ignore_merges: bool,
    add_bos: bool,
}

impl Bpe {
    /// Reads `tokenizer.ggml.merges` and `tokenizer.ggml.pre`.
    pub(super) fn from_gguf(content: &Content, vocab: &Vocab) -> Result<Self> {
        let pre = meta_str(content, "tokenizer.ggml.pre")?.unwrap_or("default");
        let pre = pre_type(pre)
            .ok_or_else(|| Error::unsupported(format!("BPE pre-tokenizer `{pre}`")))?;
        let splits = pre
            .regexes
            .iter()
            .map(|r| {
                SysRegex::new(r).map_err(|e| Error::tokenizer(format!("pre-tokenizer regex: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;

        let list = meta_array(content, "tokenizer.ggml.merges")?.ok_or_else(|| {
            Error::tokenizer("GGUF BPE vocabulary has no `tokenizer.ggml.merges`")
        })?;
        let mut merges = HashMap::with_capacity(list.len());
        let mut joined = String::new();
        for (rank, merge) in (0u32..).zip(list) {
            let Value::String(merge) = merge else {
                return Err(Error::tokenizer(
                    "`tokenizer.ggml.merges` holds a non-string",
                ));
            };
            // As llama.cpp: split at the first space after the first character.
            let first = merge.chars().next().map_or(0, char::len_utf8);
            let at = merge[first..]
                .find(' ')
                .map(|i| i + first)
                .ok_or_else(|| Error::tokenizer(format!("merge `{merge}` has no space")))?;
            let (left, right) = (&merge[..at], &merge[at + 1..]);
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            // A merge whose parts or result are no pieces can never apply.
            if let (Some(&l), Some(&r), Some(&m)) = (
                vocab.index.get(left),
                vocab.index.get(right),
                vocab.index.get(joined.as_str()),
            ) {
                merges.entry((l, r)).or_insert((rank, m)); // the first rank wins
            }
        }

        let mut byte_ids = [None; 256];
        let mut buf = [0u8; 4];
        for (b, slot) in (0u8..=255).zip(byte_ids.iter_mut()) {
            *slot = vocab
                .index
                .get(&*byte_to_char(b).encode_utf8(&mut buf))
                .copied();
        }
        Ok(Self {
            splits,
            patterns: pre.regexes,
            merges,
            byte_ids,
            ignore_merges: pre.ignore_merges,
            add_bos: pre.add_bos,
        })
    }

    /// Whether this pre-tokenizer type wants BOS when the GGUF does not say.
    pub(super) fn default_add_bos(&self) -> bool {
        self.add_bos
    }

    /// The pre-tokenizer regexes, applied in order (for writing `tokenizer.json`).
    pub(super) fn patterns(&self) -> &'static [&'static str] {
        self.patterns
    }

    /// Whether a whole pre-tokenized word found in the vocabulary skips merging.
    pub(super) fn ignore_merges(&self) -> bool {
        self.ignore_merges
    }

    /// The usable merges as `(left, right)` ids, lowest rank first.
    pub(super) fn merge_list(&self) -> Vec<(TokenId, TokenId)> {
        let mut ranked: Vec<(u32, (TokenId, TokenId))> = self
            .merges
            .iter()
            .map(|(&pair, &(rank, _))| (rank, pair))
            .collect();
        ranked.sort_unstable();
        ranked.into_iter().map(|(_, pair)| pair).collect()
    }

    /// Ids of `text`: special tokens matched by [`Vocab::partition`], the plain text between
    /// them pre-tokenized and merged.
    pub(super) fn encode(
        &self,
        vocab: &Vocab,
        text: &str,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        for fragment in vocab.partition(text, parse_special) {
            match fragment {
                Fragment::Text(t) => self.tokenize(vocab, t, &mut out)?,
                Fragment::Token(id) => out.push(id),
            }
        }
        Ok(out)
    }

    /// Appends the ids of the plain text `text`.
    fn tokenize(&self, vocab: &Vocab, text: &str, out: &mut Vec<TokenId>) -> Result<()> {
        for word in self.pre_tokenize(text) {
            self.encode_word(vocab, word, out)?;
        }
        Ok(())
    }

    /// Cuts `text` with each regex in turn, keeping matches and the text between them.
    fn pre_tokenize<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut words = if text.is_empty() {
            Vec::new()
        } else {
            vec![text]
        };
        for regex in &self.splits {
            let mut next = Vec::with_capacity(words.len() * 2);
            for word in words {
                let mut prev = 0;
                for (start, end) in regex.find_iter(word) {
                    if start > prev {
                        next.push(&word[prev..start]);
                    }
                    if end > start {
                        next.push(&word[start..end]);
                    }
                    prev = end;
                }
                if prev < word.len() {
                    next.push(&word[prev..]);
                }
            }
            words = next;
        }
        words
    }

    /// Byte-level BPE of one pre-tokenized word.
    fn encode_word(&self, vocab: &Vocab, word: &str, out: &mut Vec<TokenId>) -> Result<()> {
        if self.ignore_merges {
            let encoded: String = word.bytes().map(byte_to_char).collect();
            if let Some(&id) = vocab.index.get(&encoded) {
                out.push(id);
                return Ok(());
            }
        }
        let n = word.len();
        let mut ids = Vec::with_capacity(n);
        for b in word.bytes() {
            ids.push(self.byte_ids[usize::from(b)].ok_or_else(|| {
                Error::tokenizer(format!("byte 0x{b:02X} has no byte-level piece"))
            })?);
        }
        if n < 2 {
            out.extend_from_slice(&ids);
            return Ok(());
        }
        let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { NONE } else { i - 1 }).collect();
        let mut next: Vec<usize> = (0..n)
            .map(|i| if i + 1 == n { NONE } else { i + 1 })
            .collect();
        let mut alive = vec![true; n];

        // (rank, left, right, left id, right id): lowest rank, then leftmost, pops first.
        let mut queue = BinaryHeap::with_capacity(n);
        let push = |queue: &mut BinaryHeap<_>, ids: &[TokenId], left: usize, right: usize| {
            if left == NONE || right == NONE {
                return;
            }
            if let Some(&(rank, _)) = self.merges.get(&(ids[left], ids[right])) {
                queue.push(Reverse((rank, left, right, ids[left], ids[right])));
            }
        };
        for i in 1..n {
            push(&mut queue, &ids, i - 1, i);
        }
        while let Some(Reverse((_, left, right, left_id, right_id))) = queue.pop() {
            // Skip pairs changed by an earlier merge.
            if !alive[left] || !alive[right] || ids[left] != left_id || ids[right] != right_id {
                continue;
            }
            let Some(&(_, merged)) = self.merges.get(&(left_id, right_id)) else {
                continue;
            };
            ids[left] = merged;
            alive[right] = false;
            next[left] = next[right];
            if next[right] != NONE {
                prev[next[right]] = left;
            }
            push(&mut queue, &ids, prev[left], left);
            push(&mut queue, &ids, left, next[left]);
        }
        let mut i = 0;
        while i != NONE {
            out.push(ids[i]);
            i = next[i];
        }
        Ok(())
    }
}

/// GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the others are shifted
/// to U+0100 and up in byte order.
fn byte_to_char(b: u8) -> char {
    let code = match b {
        b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF => u32::from(b),
        0x00..=0x20 => 0x100 + u32::from(b),
        0x7F..=0xA0 => 0x100 + 33 + u32::from(b - 0x7F),
        0xAD => 0x100 + 67,
    };
    char::from_u32(code).unwrap_or('\u{FFFD}')
}

/// The inverse of [`byte_to_char`].
fn char_to_byte(c: char) -> Option<u8> {
    let code = u32::from(c);
    let byte = match code {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => code,
        0x100..=0x120 => code - 0x100,
        0x121..=0x142 => code - 0x121 + 0x7F,
        0x143 => 0xAD,
        _ => return None,
    };
    u8::try_from(byte).ok()
}

/// Writes the bytes of a normal byte-level piece (characters outside the table as they are).
pub(super) fn decode_byte_level(piece: &str, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    for c in piece.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_round_trips() {
        for b in 0u8..=255 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b), "byte {b:#04x}");
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(0xAD), 'Ń');
    }
}
