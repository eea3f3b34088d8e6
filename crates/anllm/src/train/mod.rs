//! Training an AnLLM (spec §4): continued pre-training and SFT with the AnSAN mask.
//!
//! * [`data`]: documents from plain text, JSONL and Alpaca files, tokenized with anchors
//!   (`<AC>` inserted for AnLLM-AC), cut or packed into blocks, shuffled from a seed, and
//!   batched from a resumable [`data::DataPosition`].

pub mod data;
