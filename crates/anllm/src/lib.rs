//! anllm: an engine for Anchor-based Large Language Models (AnLLM, Pang et al. 2024).
//!
//! This crate holds the pure core (tokens, configs, tokenizers) and the tensor code (our own
//! Llama on candle, the KV cache). It has no tokio, no clap and no HTTP.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod error;
pub mod token;
pub mod tokenizer;

pub use error::{Error, Result};
pub use token::{Pos, TokenId};
pub mod cache;
pub mod config;
pub mod mask;
pub mod model;
pub mod weights;

pub use cache::KvCache;
pub use config::LlamaConfig;
pub use model::{ForwardInput, Llama, OutputRows, Visibility};
pub use weights::{WeightDtype, WeightSource};
pub mod chat;
pub mod generate;
pub mod loader;
pub mod sample;
pub mod score;

pub use loader::{LoadedModel, load_model};
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;
