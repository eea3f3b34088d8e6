//! anllm's OpenAI-compatible HTTP server.
//!
//! `POST /v1/chat/completions` and `POST /v1/completions` (SSE streaming or not), `GET
//! /v1/models`, `GET /health`, `GET /metrics`, `POST /tokenize`, `POST /detokenize` and the
//! session routes `GET /v1/sessions`, `GET`/`DELETE /v1/sessions/{id}`.
//!
//! A conversation named by `X-Session-Id` (or a `session_id` body field) keeps its pruned
//! cache and its token history between requests: the next turn prefills only its new tokens
//! when its prompt continues the history exactly (see `engine::prompt`). Sessions live in
//! RAM under a byte budget and, with a session directory, are written to disk after every
//! turn and restored on demand, also after a restart (`store`).
//!
//! The HTTP side (axum on tokio) never computes: one engine thread owns the model
//! (`engine`), so the async runtime stays responsive while a step runs.

pub mod engine;
pub mod error;
pub mod metrics;
mod routes;
pub mod store;
pub mod text;
pub mod types;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anllm::tokenizer::Tokenizer;
use anllm::{Llama, SessionConfig};
use tokio::sync::mpsc;

pub use error::ApiError;
pub use routes::router;

use engine::{Job, Shared};
use metrics::Metrics;
use store::SessionStore;

/// How the server behaves (the flags of `anllm serve`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The id `/v1/models` reports and requests must name (or omit).
    pub model_id: String,
    /// Required as `Authorization: Bearer KEY` on every route but `/health` and `/metrics`.
    pub api_key: Option<String>,
    /// Requests generating at once.
    pub parallel: usize,
    /// Requests waiting for a slot before new ones get 429.
    pub max_queue: usize,
    /// Where sessions are written after each turn (the model fingerprint is appended).
    pub session_dir: Option<PathBuf>,
    /// K/V bytes that stored sessions may hold in RAM.
    pub kv_budget_bytes: usize,
    /// Sessions held in RAM at most.
    pub max_sessions: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest time to the response's headers (a stream may then run longer).
    pub timeout: Duration,
    /// Pin every request's new prompt tokens (`--pin-prompt`): they stay in the cache and
    /// visible to everything after them, while the answers' sentences are pruned (what
    /// `generate --chat --pin-prompt` does, turn after turn).
    pub pin_prompts: bool,
}

/// A loaded model, ready to serve.
pub struct Loaded {
    /// The network.
    pub model: Arc<Llama>,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// The configuration of every new session.
    pub session: SessionConfig,
    /// Names the model's sessions on disk (`store::fingerprint`).
    pub fingerprint: String,
}

/// Everything the handlers share.
pub struct AppState {
    opts: ServeOptions,
    metrics: Metrics,
    ready: OnceLock<Ready>,
}

struct Ready {
    jobs: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

impl AppState {
    /// A server that answers `/health` with 503 until [`AppState::start`] is called.
    pub fn new(opts: ServeOptions) -> Arc<Self> {
        Arc::new(Self {
            opts,
            metrics: Metrics::new(),
            ready: OnceLock::new(),
        })
    }

    /// Starts the engine on `loaded`: from now on requests are answered.
    pub fn start(&self, loaded: Loaded) -> std::io::Result<()> {
        let dir = (self.opts.session_dir.as_ref()).map(|d| d.join(&loaded.fingerprint));
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
        }
        let store = SessionStore::new(dir, self.opts.kv_budget_bytes, self.opts.max_sessions);
        let shared = Arc::new(Shared {
            model: loaded.model,
            tokenizer: Arc::new(loaded.tokenizer),
            session: loaded.session,
            store: Arc::new(Mutex::new(store)),
            metrics: self.metrics.clone(),
            parallel: self.opts.parallel.max(1),
            pin_prompts: self.opts.pin_prompts,
        });
        let jobs = engine::spawn(Arc::clone(&shared))?;
        let _ = self.ready.set(Ready { jobs, shared });
        Ok(())
    }

    fn ready(&self) -> Result<&Ready, ApiError> {
        self.ready.get().ok_or_else(ApiError::loading)
    }

    /// Queues `job`; 429 when the queue is full.
    fn submit(&self, job: Job) -> Result<(), ApiError> {
        let ready = self.ready()?;
        if self.metrics.waiting.get() >= self.opts.max_queue as i64 {
            self.metrics.rejected.inc();
            return Err(ApiError::overloaded(format!(
                "{} requests are already waiting; retry later",
                self.opts.max_queue
            )));
        }
        self.metrics.waiting.inc();
        ready.jobs.send(job).map_err(|_| {
            self.metrics.waiting.dec();
            ApiError::internal("the engine has stopped")
        })
    }
}

/// Serves `state` on `listener` until Ctrl-C, SIGTERM or `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            tokio::select! {
                () = shutdown_signal() => {},
                () = stop => {},
            }
        })
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
