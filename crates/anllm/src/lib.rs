//! anllm: an engine for Anchor-based Large Language Models (AnLLM, Pang et al. 2024).
//!
//! This crate holds the pure core (tokens, configs, tokenizers, anchors, the visibility rule)
//! and the tensor code (our own Llama on candle, the KV cache and its policies). It has no
//! tokio, no clap and no HTTP.
//!
//! Glossary:
//! * *anchor*: a token that closes a segment (`.` for AnLLM-EP, `<AC>` for AnLLM-AC);
//! * *segment*: the paper's "sequence", the tokens up to and including their anchor;
//! * *open segment*: the segment not yet closed by an anchor;
//! * *cell*: the metadata of one cached K/V entry; *slot*: a cell's index in the cache;
//! * *pos*: absolute position in the stream;
//! * *policy*: the rule that chooses what the cache drops; *eviction*: the slots it drops;
//! * *session*: one token stream with its cache.
//!
//! The public surface: load a model ([`load_model`]), open a [`Session`] on an `Arc` of it
//! with a [`SessionConfig`] (anchors, [`MaskRule`], [`PolicyConfig`] or your own
//! [`KvPolicy`]), and [`generate()`] or [`score`](score::score) on it. A session continues: the
//! next turn prefills only its own tokens.
//!
//! ```
//! use std::sync::Arc;
//!
//! use anllm::{Flow, GenerateRequest, Sampling, Session, SessionConfig, TokenId, TokenSink};
//!
//! struct Print;
//! impl TokenSink for Print {
//!     fn token(&mut self, _id: TokenId, text: &str) -> anllm::Result<Flow> {
//!         print!("{text}");
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! # fn main() -> anllm::Result<()> {
//! // let model = anllm::load_model(path, anllm::WeightDtype::Auto, &candle_core::Device::Cpu)?;
//! # let model = anllm::testutil::tiny_model();
//! // AnLLM-EP: the `.` piece closes a segment; the cache keeps anchors + the open segment.
//! // let anchors = anllm::AnchorSet::from_spec(&anllm::AnchorSpec::Ep, &model.tokenizer)?;
//! # let anchors = anllm::testutil::tiny_anchors();
//! let cfg = SessionConfig::anchored(anchors, 128);
//! let mut session = Session::new(Arc::clone(&model.llama), cfg, 1024)?;
//! for turn in ["First turn.", " And a second one."] {
//!     let req = GenerateRequest {
//!         prompt: model.tokenizer.encode(turn, false)?,
//!         max_tokens: 8,
//!         sampling: Sampling::default(), // greedy
//!     };
//!     let stats = anllm::generate(&mut session, &model.tokenizer, &req, &mut Print)?;
//!     println!("\nprefilled {} (cached {}), kept {} of {} entries",
//!         stats.prompt_tokens, stats.cached_tokens, stats.cache.entries, stats.cache.tokens_seen);
//! }
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod anchor;
pub mod cache;
pub mod chat;
pub mod config;
pub mod error;
pub mod generate;
pub mod loader;
pub mod mask;
pub mod model;
pub mod policy;
pub mod prefetch;
pub mod sample;
pub mod score;
pub mod sentence;
pub mod session;
mod threads;
pub mod token;
pub mod tokenizer;
pub mod vexp;
pub mod weights;

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;

pub use anchor::{AnchorSet, AnchorSpec};
pub use cache::{Cell, KvCache, KvDtype};
pub use config::LlamaConfig;
pub use error::{Error, Result};
pub use generate::{Flow, GenerateRequest, GenerationStats, StopReason, TokenSink, generate};
pub use loader::{LoadedModel, load_model};
pub use mask::MaskRule;
pub use model::{AttentionStats, BatchItem, ForwardInput, Llama, OutputRows, Visibility};
pub use policy::{Eviction, KvPolicy, Observation, PolicyConfig};
pub use sample::{Penalties, Sampling};
pub use session::{CacheStats, PositionMode, Session, SessionConfig};
pub use threads::KeepWarm;
pub use token::{Pos, Role, SegmentId, TokenId};
pub use tokenizer::Tokenizer;
pub use weights::{WeightDtype, WeightSource};
