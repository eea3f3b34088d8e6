//! Translation (spec §3.6 "Src Cach", §6.4, §7.3; the paper's Table 2): German–English sentence
//! pairs, the authors' Alpaca-style translation prompt, generation with anchors and an optional
//! pinned source, and the scores sacrebleu computes.
//!
//! * [`data`]: source/reference pairs from the Ding dictionary (Debian `trans-de-en`) or a
//!   TSV / JSONL file, and the fixed seeded test / training split;
//! * [`prompt`]: the authors' prompt and the byte span of the source in it;
//! * [`run`]: one translation with its cache statistics, and the run over a test set;
//! * [`bleu`], [`chrf`]: corpus BLEU (13a tokenization, exponential smoothing) and chrF, exactly
//!   as sacrebleu's defaults compute them.

pub mod bleu;
pub mod chrf;
pub mod data;
pub mod prompt;
pub mod run;
