//! Cutting tokenized documents into training examples of at most one block.

use std::collections::BTreeSet;
use std::ops::Range;
use std::str::FromStr;

use anllm::{Error, Result, TokenId};

use super::TokenizedDoc;

/// How documents become examples of at most `block_size` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockMode {
    /// One document per example, right-truncated to the block; the rest of a longer document
    /// is dropped (the paper, spec §2.5). Rows of a batch are padded to the longest.
    #[default]
    Truncate,
    /// Documents concatenated and cut into blocks of exactly `block_size` tokens; a document
    /// longer than the rest of a block continues in the next one. [`Example::doc`] tells the
    /// mask where documents change, so attention never crosses them.
    Pack,
    /// Documents packed whole into blocks of `block_size` tokens, the rest of a block padded:
    /// no document that fits in a block is cut (a cut piece starts at position 0 without its
    /// beginning, e.g. an answer without its prompt). A longer document gives full-block pieces
    /// and its remainder. Pieces go longest first into the fullest block with room (best-fit
    /// decreasing, as TRL's `bfd` packing); the blocks are laid out once and shuffled by epoch.
    /// Needs a pad id.
    Fit,
}

impl FromStr for BlockMode {
    type Err = Error;

    /// `truncate`, `pack` or `fit`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "truncate" => Ok(Self::Truncate),
            "pack" => Ok(Self::Pack),
            "fit" => Ok(Self::Fit),
            _ => Err(Error::config(
                "block-mode",
                format!("`{s}`: expected truncate, pack or fit"),
            )),
        }
    }
}

/// One training row: tokens, prediction targets and the document of each token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Example {
    /// Token ids.
    pub tokens: Vec<TokenId>,
    /// `true` where the token is a prediction target (predicted from the tokens before it):
    /// never the first token of a row or of a document, never a pad, and for instruction data
    /// only the response and its EOS.
    pub loss_mask: Vec<bool>,
    /// Index of each token's document in the dataset ([`Example::PAD_DOC`] for pads). A token
    /// may attend only to tokens of its own document.
    pub doc: Vec<u32>,
    /// `true` where the token is pinned (see [`TokenizedDoc::pinned`]); empty means none is.
    pub pinned: Vec<bool>,
}

impl Example {
    /// The [`Example::doc`] value of a pad.
    pub const PAD_DOC: u32 = u32::MAX;

    /// Number of tokens, pads included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the row has no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Number of prediction targets.
    pub fn target_count(&self) -> usize {
        self.loss_mask.iter().filter(|&&t| t).count()
    }

    /// Number of pads (tokens of no document).
    pub fn pad_count(&self) -> usize {
        self.doc.iter().filter(|&&d| d == Self::PAD_DOC).count()
    }

    /// Appends `tokens[range]` of document `doc`; its first token is never a target (nothing
    /// of its document comes before it in the row).
    fn push_piece(&mut self, doc: u32, source: &TokenizedDoc, range: Range<usize>) {
        let first = self.len();
        self.tokens.extend_from_slice(&source.tokens[range.clone()]);
        self.loss_mask
            .extend_from_slice(&source.loss_mask[range.clone()]);
        self.doc.extend(std::iter::repeat_n(doc, range.len()));
        if !source.pinned.is_empty() || !self.pinned.is_empty() {
            self.pinned.resize(first, false);
            self.pinned
                .extend(range.clone().map(|j| source.is_pinned(j)));
        }
        if !range.is_empty() {
            self.loss_mask[first] = false;
        }
    }

    /// Pads the row up to `len` tokens with `pad`.
    pub(super) fn pad_to(&mut self, len: usize, pad: TokenId) {
        let n = len.saturating_sub(self.len());
        self.tokens.extend(std::iter::repeat_n(pad, n));
        self.loss_mask.extend(std::iter::repeat_n(false, n));
        self.doc.extend(std::iter::repeat_n(Self::PAD_DOC, n));
        if !self.pinned.is_empty() {
            self.pinned.resize(self.len(), false);
        }
    }

    /// Whether token `i` is pinned.
    pub fn is_pinned(&self, i: usize) -> bool {
        self.pinned.get(i).copied().unwrap_or(false)
    }
}

/// One example per document of `order` (indices into `docs`), each cut to `block_size`;
/// documents left without a target by the cut are skipped.
pub(super) fn truncate(docs: &[TokenizedDoc], order: &[usize], block_size: usize) -> Vec<Example> {
    order
        .iter()
        .filter(|&&i| has_target_in_block(&docs[i], block_size))
        .map(|&i| {
            let mut example = Example::default();
            push_doc(&mut example, docs, i, 0..docs[i].len().min(block_size));
            example
        })
        .collect()
}

/// Whether `doc` keeps a target when cut to `block_size`.
pub(super) fn has_target_in_block(doc: &TokenizedDoc, block_size: usize) -> bool {
    doc.loss_mask.iter().take(block_size).any(|&t| t)
}

/// The documents of `order` concatenated and cut into rows of exactly `block_size` tokens. A
/// short final row is padded with `pad`, or dropped when there is none.
pub(super) fn pack(
    docs: &[TokenizedDoc],
    order: &[usize],
    block_size: usize,
    pad: Option<TokenId>,
) -> Vec<Example> {
    let mut rows = Vec::new();
    let mut row = Example::default();
    for &i in order {
        let mut start = 0;
        while start < docs[i].len() {
            let end = docs[i].len().min(start + block_size - row.len());
            push_doc(&mut row, docs, i, start..end);
            start = end;
            if row.len() == block_size {
                rows.push(std::mem::take(&mut row));
            }
        }
    }
    if let (false, Some(pad)) = (row.is_empty(), pad) {
        row.pad_to(block_size, pad);
        rows.push(row);
    }
    rows
}

/// Number of rows [`pack`] makes from `total` tokens.
pub(super) fn packed_rows(total: usize, block_size: usize, pad: Option<TokenId>) -> usize {
    total / block_size + usize::from(!total.is_multiple_of(block_size) && pad.is_some())
}

/// The pieces of one [`BlockMode::Fit`] row: (document index, token range), in row order.
pub(super) type FitRow = Vec<(usize, Range<usize>)>;

/// The rows of [`BlockMode::Fit`] for `docs`: every document cut into full blocks and a
/// remainder (a piece without a target, such as a remainder of one token, is left out), the
/// pieces placed longest first (ties: document order) into the row with the least room that
/// still holds them, a new row when none does. Every row has a target.
pub(super) fn fit_layout(docs: &[TokenizedDoc], block_size: usize) -> Vec<FitRow> {
    let mut pieces: Vec<(usize, Range<usize>)> = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let mut start = 0;
        while start < d.len() {
            let end = d.len().min(start + block_size);
            // The piece's first token is no target in its row (`Example::push_piece`).
            if d.loss_mask[start + 1..end].contains(&true) {
                pieces.push((i, start..end));
            }
            start = end;
        }
    }
    pieces.sort_by_key(|(i, r)| (std::cmp::Reverse(r.len()), *i, r.start));
    let mut rows: Vec<FitRow> = Vec::new();
    let mut room: BTreeSet<(usize, usize)> = BTreeSet::new(); // (free tokens, row)
    for (i, range) in pieces {
        let n = range.len();
        let row = match room.range((n, 0)..).next().copied() {
            Some((free, row)) => {
                room.remove(&(free, row));
                if free > n {
                    room.insert((free - n, row));
                }
                row
            }
            None => {
                rows.push(Vec::new());
                if block_size > n {
                    room.insert((block_size - n, rows.len() - 1));
                }
                rows.len() - 1
            }
        };
        rows[row].push((i, range));
    }
    rows
}

/// The example of one [`fit_layout`] row, padded to `block_size` with `pad`.
pub(super) fn fit_example(
    docs: &[TokenizedDoc],
    row: &FitRow,
    block_size: usize,
    pad: TokenId,
) -> Example {
    let mut example = Example::default();
    for (i, range) in row {
        push_doc(&mut example, docs, *i, range.clone());
    }
    example.pad_to(block_size, pad);
    example
}

/// How many documents of `docs` that fit in one block [`pack`] cuts across two rows when it
/// packs them in `order`.
pub(super) fn cut_by_pack(docs: &[TokenizedDoc], order: &[usize], block_size: usize) -> usize {
    let (mut filled, mut cut) = (0, 0);
    for &i in order {
        let n = docs[i].len();
        cut += usize::from(n <= block_size && filled > 0 && filled + n > block_size);
        filled = (filled + n) % block_size;
    }
    cut
}

fn push_doc(row: &mut Example, docs: &[TokenizedDoc], i: usize, range: Range<usize>) {
    // `TrainData::new` checks that document indices fit below `PAD_DOC`.
    row.push_piece(i as u32, &docs[i], range);
}
