//! The training data pipeline: files → documents → tokens (with anchors) → examples of one
//! block → shuffled, resumable batches.
//!
//! * Reading ([`read_documents`]): plain text cut by [`DocSplit`], JSON/JSONL records with a
//!   `text` field, Alpaca JSON/JSONL (`instruction`, `input`, `output`) rendered with
//!   [`alpaca_prompt`], chat JSONL (`messages`) rendered by the model's chat template.
//! * Tokenizing ([`Encoder`]): `BOS` + text for pre-training (no EOS, spec §4.1); `BOS` +
//!   prompt + response + `EOS` for instruction data with the loss on the response and EOS only
//!   (spec §4.2). [`AnchorData::Ep`] inserts nothing (spec §1.2); [`AnchorData::Ac`] puts
//!   `<AC>` after every sentence at the token level (spec §1.3).
//! * Blocks ([`BlockMode`]): one truncated document per example (the paper, spec §2.5) or
//!   documents packed into full blocks, with the document of each token in [`Example::doc`].
//! * Order ([`TrainData`]): every epoch shuffles the documents with a generator seeded from
//!   `(seed, epoch)`, so any [`DataPosition`] can be replayed without the epochs before it.
//!
//! ```no_run
//! use anllm_train::data::{AnchorData, DataConfig, DataPosition, TrainData};
//! # fn main() -> anllm::Result<()> {
//! let tokenizer = anllm::tokenizer::Tokenizer::from_hf_dir("model".as_ref())?;
//! let config = DataConfig {
//!     anchors: AnchorData::Ep,
//!     ..DataConfig::new(256, 4)
//! };
//! let data = TrainData::from_files(&["train.txt"], &tokenizer, None, config)?;
//! for batch in data.batches_from(DataPosition::default())?.take(10) {
//!     println!("{} rows of {} tokens, then {:?}", batch.examples.len(), batch.seq_len(), batch.next);
//! }
//! # Ok(())
//! # }
//! ```

mod block;
mod encode;
mod epoch;
mod source;
#[cfg(test)]
mod tests;

use std::path::Path;

use rayon::prelude::*;

pub use anllm::anchor::insert::FinalSentence;
pub use block::{BlockMode, Example};
pub use encode::{AnchorData, Encoder, TokenizedDoc};
pub use epoch::{Batch, Batches, DataPosition, TrainData};
pub use source::{
    DocSplit, Document, SourceFormat, alpaca_prompt, detect_format, parse_documents, read_documents,
};

use anllm::sentence::SentenceSplitter;
use anllm::tokenizer::Tokenizer;
use anllm::{Error, Result, TokenId};

/// The seed of the authors' runs (spec §4.1).
pub const AUTHORS_SEED: u64 = 34;

/// Everything that decides which batches a run sees.
#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    /// How plain-text files are cut into documents.
    pub doc_split: DocSplit,
    /// What is inserted for the anchors.
    pub anchors: AnchorData,
    /// Whether the last sentence of a text gets an `<AC>` (AC only; see
    /// [`Encoder::with_final_sentence`]).
    pub final_sentence: FinalSentence,
    /// Most tokens in one example.
    pub block_size: usize,
    /// Truncated documents or packed blocks.
    pub block_mode: BlockMode,
    /// Pad id: pads a short final packed block and the shorter rows of a batch; without one a
    /// short final block is dropped.
    pub pad: Option<TokenId>,
    /// Examples per batch.
    pub batch_size: usize,
    /// Seed of the shuffle.
    pub seed: u64,
    /// Whether documents are shuffled at all (off: file order in every epoch).
    pub shuffle: bool,
    /// Share (0–1) of the chat documents whose prompt is pinned ([`TokenizedDoc::pin_prompt`]):
    /// trained as `generate --chat --pin-prompt` runs. A seeded choice per document; 0 pins none.
    pub pin_prompts: f64,
}

impl DataConfig {
    /// Blank-line documents, no anchors, the open final sentence, truncation, no pad, the
    /// authors' seed 34, shuffled.
    pub fn new(block_size: usize, batch_size: usize) -> Self {
        Self {
            doc_split: DocSplit::BlankLine,
            anchors: AnchorData::None,
            final_sentence: FinalSentence::Open,
            block_size,
            block_mode: BlockMode::Truncate,
            pad: None,
            batch_size,
            seed: AUTHORS_SEED,
            shuffle: true,
            pin_prompts: 0.0,
        }
    }

    /// The configuration of held-out data read beside training data of this one: in file
    /// order, and packed where training fits whole documents, so that eval losses compare
    /// across block modes.
    pub fn held_out(&self) -> Self {
        let block_mode = match self.block_mode {
            BlockMode::Fit => BlockMode::Pack,
            mode => mode,
        };
        Self {
            shuffle: false,
            block_mode,
            ..self.clone()
        }
    }

    /// Checks the sizes: a block holds an input and a target, a batch at least one row, and
    /// truncated rows of different lengths can share a batch only with a pad id, and whole
    /// documents fit into blocks only with one.
    pub fn validate(&self) -> Result<()> {
        if self.block_size < 2 {
            return Err(Error::config("block-size", "must be at least 2"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch-size", "must be at least 1"));
        }
        if self.block_mode == BlockMode::Truncate && self.batch_size > 1 && self.pad.is_none() {
            return Err(Error::config(
                "pad",
                "truncated documents in batches of more than one need a pad token",
            ));
        }
        if self.block_mode == BlockMode::Fit && self.pad.is_none() {
            return Err(Error::config(
                "pad",
                "--block-mode fit pads its rows and needs a pad token",
            ));
        }
        if !(0.0..=1.0).contains(&self.pin_prompts) {
            return Err(Error::config("pin-prompts", "must be a share in 0..=1"));
        }
        Ok(())
    }
}

impl TrainData {
    /// Reads, tokenizes and blocks the files at `paths` (documents numbered in file order).
    /// `splitter` is needed for [`AnchorData::Ac`].
    pub fn from_files(
        paths: &[impl AsRef<Path>],
        tokenizer: &Tokenizer,
        splitter: Option<&SentenceSplitter>,
        config: DataConfig,
    ) -> Result<Self> {
        config.validate()?;
        let encoder = Encoder::new(tokenizer, config.anchors, splitter)?
            .with_final_sentence(config.final_sentence);
        let mut docs = Vec::new();
        for path in paths {
            let documents = read_documents(path.as_ref(), config.doc_split)?;
            let encoded: Result<Vec<_>> = documents.par_iter().map(|d| encoder.encode(d)).collect();
            for (document, mut doc) in documents.iter().zip(encoded?) {
                let chat = matches!(document, Document::Chat { .. });
                if chat && pick(config.seed, docs.len() as u64, config.pin_prompts) {
                    doc.pin_prompt();
                }
                docs.push(doc);
            }
        }
        Self::new(docs, config)
    }
}

/// A seeded choice of document `index` with probability `share` (SplitMix64 of seed and index).
fn pick(seed: u64, index: u64, share: f64) -> bool {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index.wrapping_add(1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    share > 0.0 && ((z >> 11) as f64) < share * (1u64 << 53) as f64
}
