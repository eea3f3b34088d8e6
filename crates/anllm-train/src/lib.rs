//! Training an AnLLM (spec §4): continued pre-training and SFT with the AnSAN mask.
//!
//! * [`data`]: documents from plain text, JSONL and Alpaca files, tokenized with anchors
//!   (`<AC>` inserted for AnLLM-AC), cut or packed into blocks, shuffled from a seed, and
//!   batched from a resumable [`data::DataPosition`].
//! * [`model`]: the differentiable Llama ([`model::TrainModel`]): HF-named [`candle_core::Var`]s,
//!   a masked forward over a [`model::TrainBatch`] and the weighted cross-entropy loss.
//! * [`optim`]: fused, in-place AdamW with global-norm gradient clipping.
//! * [`schedule`]: learning-rate warmup, then constant or cosine.
//! * [`batch`]: a batch of rows → inputs, shifted targets, loss weights, positions and the
//!   mask from [`anllm::mask::visible`], never crossing documents.
//! * [`setup`]: where a run starts (any checkpoint in f32, or random weights) and the
//!   vocabulary extension.
//! * [`trainer`]: one optimizer step (gradient accumulation, clipping, schedule), held-out
//!   loss, the unigram baseline.
//! * [`average`]: the weight average of a run's checkpoints (`anllm average`).
//! * [`checkpoint`]: atomic Hugging Face checkpoints with optimizer and trainer state.
//! * [`vocab`]: `[PAD]` and `<AC>` added to the tokenizer files, embedding and LM-head rows
//!   grown (`copy-period` or `mean` init of the new rows).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod average;
pub mod batch;
pub mod checkpoint;
pub mod data;
pub mod distill;
pub mod export;
pub mod model;
pub mod optim;
pub mod schedule;
pub mod setup;
pub mod trainer;
pub mod vocab;
