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
pub mod sample;
pub mod score;
pub mod sentence;
pub mod session;
pub mod token;
pub mod tokenizer;
pub mod weights;

#[cfg(any(test, feature = "testutil"))]
pub mod testutil;

pub use anchor::{AnchorSet, AnchorSpec};
pub use cache::{Cell, KvCache};
pub use config::LlamaConfig;
pub use error::{Error, Result};
pub use loader::{LoadedModel, load_model};
pub use mask::MaskRule;
pub use model::{ForwardInput, Llama, OutputRows, Visibility};
pub use policy::PolicyKind;
pub use session::{CacheStats, PositionMode, Session, SessionConfig};
pub use token::{Pos, Role, SegmentId, TokenId};
pub use weights::{WeightDtype, WeightSource};
