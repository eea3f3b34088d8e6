//! The engine: one OS thread that owns the model's compute. Requests arrive as [`Job`]s on a
//! channel; up to `parallel` of them run at once as [`Slot`]s, each advanced by one step
//! (a prefill chunk or one decoded token) per round, so a new request joins at the next round
//! (continuous batching; the decode steps of a round run as one batched forward). Events go
//! back to the HTTP handler on an unbounded channel; when its receiver is gone (the client
//! disconnected) the slot is cancelled at the next round and its session kept.

mod prompt;
mod slot;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anllm::chat::Message;
use anllm::sample::Sampling;
use anllm::tokenizer::Tokenizer;
use anllm::{Llama, SessionConfig, TokenId};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::SessionStore;
use crate::types::Usage;
use slot::Slot;

/// What to continue the conversation with.
#[derive(Debug, Clone)]
pub enum PromptInput {
    /// Chat messages, rendered by the model's template.
    Chat(Vec<Message>),
    /// Raw text (BOS by the model's preference on a fresh session).
    Text(String),
    /// Token ids.
    Tokens(Vec<TokenId>),
}

/// Sampling and stopping of one request.
#[derive(Debug, Clone)]
pub struct GenParams {
    /// Most tokens to generate (None: until EOS or the context is full).
    pub max_tokens: Option<usize>,
    /// Sampling knobs.
    pub sampling: Sampling,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Return log-probabilities with this many alternatives.
    pub logprobs: Option<usize>,
    /// Return the prompt's and the answer's token ids (to continue a session token for token).
    pub token_ids: bool,
}

/// The token ids of a finished request (`return_token_ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIds {
    /// The whole conversation's prompt, as the session holds it.
    pub prompt: Vec<TokenId>,
    /// Every generated token, the end-of-turn token included.
    pub output: Vec<TokenId>,
}

/// One generation request.
#[derive(Debug)]
pub struct Job {
    /// The prompt.
    pub prompt: PromptInput,
    /// The session to continue, if any.
    pub session_id: Option<String>,
    /// Sampling and stopping.
    pub params: GenParams,
    /// Where the events go.
    pub events: mpsc::UnboundedSender<Event>,
    /// When the request arrived (time to first token counts from here).
    pub received: Instant,
}

/// Log-probability of one generated token.
#[derive(Debug, Clone, PartialEq)]
pub struct LogprobEntry {
    /// The token's text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// The best alternatives and theirs.
    pub top: Vec<(String, f32)>,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// EOS or a stop string.
    Stop,
    /// `max_tokens` or the context.
    Length,
}

impl Finish {
    /// The OpenAI `finish_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// What the engine tells the handler.
#[derive(Debug, Clone)]
pub enum Event {
    /// The prompt is accepted (sent before the prefill).
    Started {
        /// Tokens of the whole rendered prompt.
        prompt_tokens: usize,
        /// Of those, tokens the session already held.
        cached_tokens: usize,
    },
    /// New text (possibly empty while held back) and the token's log-probability.
    Token {
        /// Text to append.
        text: String,
        /// Present when asked for.
        logprob: Option<LogprobEntry>,
    },
    /// The end.
    Done {
        /// Why.
        finish: Finish,
        /// Token counts.
        usage: Usage,
        /// The token ids, when asked for.
        token_ids: Option<TokenIds>,
    },
    /// A failure (before `Started`: the request's error status; after: a mid-stream error).
    Error(ApiError),
}

/// What the engine thread shares with the handlers.
pub struct Shared {
    /// The model.
    pub model: Arc<Llama>,
    /// Its tokenizer.
    pub tokenizer: Arc<Tokenizer>,
    /// The configuration of every new session (anchors, policy, positions).
    pub session: SessionConfig,
    /// Named sessions.
    pub store: Arc<Mutex<SessionStore>>,
    /// Metrics.
    pub metrics: Metrics,
    /// Requests generating at once.
    pub parallel: usize,
    /// Whether each request's new prompt tokens are pinned ([`crate::ServeOptions`]).
    pub pin_prompts: bool,
}

/// Starts the engine thread; jobs sent to the returned channel are answered until it closes.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<mpsc::UnboundedSender<Job>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("anllm-engine".into())
        .spawn(move || run(shared, rx))?;
    Ok(tx)
}

fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut active: Vec<Slot> = Vec::new();
    let mut gauges_at = Instant::now();
    loop {
        if active.is_empty() && waiting.is_empty() {
            match rx.blocking_recv() {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while let Ok(job) = rx.try_recv() {
            waiting.push_back(job);
        }
        let before = active.len();
        while active.len() < shared.parallel
            && let Some(job) = waiting.pop_front()
        {
            shared.metrics.waiting.dec();
            if let Some(slot) = Slot::start(&shared, job) {
                active.push(slot);
            }
        }
        let admitted = active.len();
        slot::step_all(&shared, &mut active);
        active = (active.into_iter())
            .filter_map(|slot| slot.finish_or_keep(&shared))
            .collect();
        // The store's gauges walk every session: not on every decode step.
        let changed = admitted != before || active.len() != admitted;
        if changed || gauges_at.elapsed() >= GAUGE_PERIOD {
            update_gauges(&shared, &active);
            gauges_at = Instant::now();
        }
    }
}

/// Longest time between two updates of the gauges while requests run.
const GAUGE_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

fn update_gauges(shared: &Shared, active: &[Slot]) {
    let m = &shared.metrics;
    m.running.set(active.len() as i64);
    let Ok(store) = shared.store.lock() else {
        return;
    };
    let running: usize = active.iter().map(Slot::allocated_kv_bytes).sum();
    m.kv_bytes.set((store.ram_bytes() + running) as i64);
    m.sessions_ram.set(store.ram_sessions() as i64);
    m.sessions_disk.set(store.disk_sessions() as i64);
    let (seen, kept) = store.retained();
    m.retained_ratio.set(if seen == 0 {
        1.0
    } else {
        kept as f64 / seen as f64
    });
}
