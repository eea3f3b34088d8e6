//! Epochs, shuffling and batches, resumable from a [`DataPosition`].

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use anllm::{Error, Result, TokenId};

use super::block::{self, BlockMode, Example};
use super::{DataConfig, TokenizedDoc};

/// Where a run is in its data: the epoch and the number of examples of that epoch already
/// consumed. Saved in checkpoints; [`TrainData::batches_from`] continues from it exactly.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct DataPosition {
    /// Epoch, from 0.
    pub epoch: u64,
    /// Examples of `epoch` consumed before this position.
    pub index: usize,
}

/// One batch: its rows, all of the same length, and where it sits in the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `batch_size` rows (fewer at the end of an epoch), padded to the longest.
    pub examples: Vec<Example>,
    /// The position of the batch's first example.
    pub position: DataPosition,
    /// The position right after the batch: what a checkpoint saved after this batch stores.
    pub next: DataPosition,
}

impl Batch {
    /// Tokens per row (pads included).
    pub fn seq_len(&self) -> usize {
        self.examples.first().map_or(0, Example::len)
    }

    /// Prediction targets in the whole batch.
    pub fn target_count(&self) -> usize {
        self.examples.iter().map(Example::target_count).sum()
    }

    /// Tokens that are not pads, in the whole batch.
    pub fn token_count(&self) -> usize {
        self.examples.iter().map(|e| e.len() - e.pad_count()).sum()
    }
}

/// Tokenized documents with the rules that turn them into batches (see [`DataConfig`]).
#[derive(Debug, Clone)]
pub struct TrainData {
    docs: Vec<TokenizedDoc>,
    config: DataConfig,
    examples_per_epoch: usize,
    /// The rows of [`BlockMode::Fit`], laid out once (empty for the other modes).
    fit_rows: Vec<block::FitRow>,
}

/// Mixes the epoch into the seed (odd multiplier: distinct epochs, distinct seeds).
const EPOCH_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl TrainData {
    /// `docs` under `config`. Documents without a prediction target (empty texts) are left
    /// out; the others keep their order, and their index here is [`Example::doc`]. Fails when
    /// `config` is invalid or no example remains.
    pub fn new(docs: Vec<TokenizedDoc>, config: DataConfig) -> Result<Self> {
        config.validate()?;
        let docs: Vec<TokenizedDoc> = docs.into_iter().filter(|d| d.target_count() > 0).collect();
        if docs.len() >= Example::PAD_DOC as usize {
            return Err(Error::config("data", "too many documents"));
        }
        let fit_rows = match config.block_mode {
            BlockMode::Fit => block::fit_layout(&docs, config.block_size),
            _ => Vec::new(),
        };
        let examples_per_epoch = match config.block_mode {
            BlockMode::Truncate => docs
                .iter()
                .filter(|d| block::has_target_in_block(d, config.block_size))
                .count(),
            BlockMode::Pack => {
                let total = docs.iter().map(TokenizedDoc::len).sum();
                block::packed_rows(total, config.block_size, config.pad)
            }
            BlockMode::Fit => fit_rows.len(),
        };
        if examples_per_epoch == 0 {
            return Err(Error::config(
                "data",
                "no training examples (empty data, or one short block without a pad token)",
            ));
        }
        Ok(Self {
            docs,
            config,
            examples_per_epoch,
            fit_rows,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DataConfig {
        &self.config
    }

    /// The tokenized documents, in file order.
    pub fn documents(&self) -> &[TokenizedDoc] {
        &self.docs
    }

    /// Examples in every epoch (the same in each).
    pub fn examples_per_epoch(&self) -> usize {
        self.examples_per_epoch
    }

    /// Batches in every epoch, the last one possibly short.
    pub fn batches_per_epoch(&self) -> usize {
        self.examples_per_epoch.div_ceil(self.config.batch_size)
    }

    /// Document indices in the order of `epoch`: a permutation drawn from `(seed, epoch)`, or
    /// file order when shuffling is off. ([`BlockMode::Fit`] shuffles its rows instead.)
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        self.shuffled(self.docs.len(), epoch)
    }

    fn shuffled(&self, n: usize, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        if self.config.shuffle {
            let seed = self.config.seed.wrapping_add(epoch.wrapping_mul(EPOCH_MIX));
            order.shuffle(&mut StdRng::seed_from_u64(seed));
        }
        order
    }

    /// The examples of `epoch`, in order: the documents of [`TrainData::epoch_order`], truncated
    /// or packed, or the [`BlockMode::Fit`] rows in an order drawn the same way.
    pub fn epoch_examples(&self, epoch: u64) -> Vec<Example> {
        let (docs, size) = (&self.docs, self.config.block_size);
        match self.config.block_mode {
            BlockMode::Truncate => block::truncate(docs, &self.epoch_order(epoch), size),
            BlockMode::Pack => block::pack(docs, &self.epoch_order(epoch), size, self.config.pad),
            BlockMode::Fit => {
                // `DataConfig::validate` refuses Fit without a pad.
                let pad = self.config.pad.unwrap_or_default();
                let order = self.shuffled(self.fit_rows.len(), epoch);
                let rows = order.iter().map(|&r| &self.fit_rows[r]);
                rows.map(|row| block::fit_example(docs, row, size, pad))
                    .collect()
            }
        }
    }

    /// The share of pads in the rows of an epoch under [`BlockMode::Fit`] (0 for the others,
    /// which pad at most one row).
    pub fn fit_pad_share(&self) -> f64 {
        let placed: usize = self.fit_rows.iter().flatten().map(|(_, r)| r.len()).sum();
        let room = self.fit_rows.len() * self.config.block_size;
        if room == 0 {
            return 0.0;
        }
        1.0 - placed as f64 / room as f64
    }

    /// A line for the run's log on how the documents fill the rows: `fit`'s rows and pad
    /// share, or how many documents `pack` cuts (none when it cuts none, or for `truncate`).
    pub fn block_note(&self) -> Option<String> {
        let size = self.config.block_size;
        match self.config.block_mode {
            BlockMode::Fit => Some(format!(
                "--block-mode fit: {} rows of {size} tokens, {:.1}% of them pads",
                self.examples_per_epoch,
                100.0 * self.fit_pad_share()
            )),
            BlockMode::Pack => Some(self.cut_documents()).filter(|&n| n > 0).map(|cut| {
                format!(
                    "packing cuts {cut} of {} documents across two rows in the first epoch \
                     (their second piece starts without its beginning; --block-mode fit keeps \
                     them whole)",
                    self.docs.len()
                )
            }),
            BlockMode::Truncate => None,
        }
    }

    /// How many documents that fit in one block the first epoch cuts across two rows
    /// (only [`BlockMode::Pack`] cuts them).
    pub fn cut_documents(&self) -> usize {
        match self.config.block_mode {
            BlockMode::Pack => {
                block::cut_by_pack(&self.docs, &self.epoch_order(0), self.config.block_size)
            }
            BlockMode::Truncate | BlockMode::Fit => 0,
        }
    }

    /// Batches from the start, epoch after epoch without end.
    pub fn batches(&self) -> Batches<'_> {
        Batches {
            data: self,
            position: DataPosition::default(),
            rows: Vec::new().into_iter(),
        }
    }

    /// Batches from `position` on: exactly those the run that saved `position` would have
    /// seen next. Fails when `position` lies past the end of its epoch.
    pub fn batches_from(&self, position: DataPosition) -> Result<Batches<'_>> {
        let mut batches = self.batches();
        if position.index == self.examples_per_epoch {
            batches.position = next_epoch(position);
        } else if position.index > self.examples_per_epoch {
            return Err(Error::config(
                "data position",
                format!(
                    "index {} is past the {} examples of an epoch (different data or settings?)",
                    position.index, self.examples_per_epoch
                ),
            ));
        } else if position.index > 0 {
            let mut rows = self.epoch_examples(position.epoch);
            rows.drain(..position.index);
            batches.position = position;
            batches.rows = rows.into_iter();
        } else {
            batches.position = position;
        }
        Ok(batches)
    }
}

fn next_epoch(position: DataPosition) -> DataPosition {
    DataPosition {
        epoch: position.epoch + 1,
        index: 0,
    }
}

/// The endless batch iterator of [`TrainData::batches`] and [`TrainData::batches_from`].
#[derive(Debug)]
pub struct Batches<'a> {
    data: &'a TrainData,
    position: DataPosition,
    rows: std::vec::IntoIter<Example>,
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        // `position` is always inside an epoch; `rows` is empty exactly when it is the start
        // of one that is not built yet (every epoch has `examples_per_epoch > 0` rows).
        if self.rows.len() == 0 {
            let rows = self.data.epoch_examples(self.position.epoch);
            debug_assert_eq!(rows.len(), self.data.examples_per_epoch);
            self.rows = rows.into_iter();
        }
        let config = &self.data.config;
        let mut examples: Vec<Example> = self.rows.by_ref().take(config.batch_size).collect();
        pad_rows(&mut examples, config.pad);
        let position = self.position;
        self.position.index += examples.len();
        if self.rows.len() == 0 {
            self.position = next_epoch(position);
        }
        Some(Batch {
            examples,
            position,
            next: self.position,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

/// Pads every row to the longest one (rows of a batch without a pad have equal lengths:
/// [`DataConfig::validate`]).
fn pad_rows(rows: &mut [Example], pad: Option<TokenId>) {
    let Some(pad) = pad else { return };
    let longest = rows.iter().map(Example::len).max().unwrap_or(0);
    rows.iter_mut().for_each(|row| row.pad_to(longest, pad));
}
