//! `GET /metrics`: Prometheus / OpenMetrics text from `prometheus-client`'s registry.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The server's metrics (cheap to clone: every metric is shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Requests being generated now.
    pub running: Gauge,
    /// Requests waiting for a slot.
    pub waiting: Gauge,
    /// Requests answered, by outcome.
    pub requests: Counter,
    /// Requests refused with 429.
    pub rejected: Counter,
    /// Requests cancelled because the client went away.
    pub cancelled: Counter,
    /// Time to first token, seconds.
    pub ttft: Histogram,
    /// Time between two generated tokens of one request, seconds.
    pub inter_token: Histogram,
    /// Prompt tokens of every request.
    pub prompt_tokens: Counter,
    /// Prompt tokens a session already held.
    pub cached_tokens: Counter,
    /// Tokens generated.
    pub generated_tokens: Counter,
    /// Requests naming a session that was found (RAM or disk).
    pub session_hits: Counter,
    /// Requests naming a session that had to start over (new, or its history diverged).
    pub session_misses: Counter,
    /// Bytes of K/V in RAM: stored sessions plus running requests.
    pub kv_bytes: Gauge,
    /// Sessions held in RAM.
    pub sessions_ram: Gauge,
    /// Sessions on disk only.
    pub sessions_disk: Gauge,
    /// Entries kept ÷ tokens seen over the sessions in RAM.
    pub retained_ratio: Gauge<f64, AtomicU64>,
    registry: std::sync::Arc<Registry>,
}

impl Metrics {
    /// Every metric registered under the prefix `anllm`.
    pub fn new() -> Self {
        let mut reg = Registry::with_prefix("anllm");
        let latency = || Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let m = Self {
            running: Gauge::default(),
            waiting: Gauge::default(),
            requests: Counter::default(),
            rejected: Counter::default(),
            cancelled: Counter::default(),
            ttft: latency(),
            inter_token: latency(),
            prompt_tokens: Counter::default(),
            cached_tokens: Counter::default(),
            generated_tokens: Counter::default(),
            session_hits: Counter::default(),
            session_misses: Counter::default(),
            kv_bytes: Gauge::default(),
            sessions_ram: Gauge::default(),
            sessions_disk: Gauge::default(),
            retained_ratio: Gauge::default(),
            registry: Default::default(),
        };
        let r = &mut reg;
        r.register(
            "requests_running",
            "Requests generating now",
            m.running.clone(),
        );
        r.register(
            "requests_waiting",
            "Requests waiting for a slot",
            m.waiting.clone(),
        );
        r.register(
            "requests",
            "Generation requests finished",
            m.requests.clone(),
        );
        r.register(
            "requests_rejected",
            "Requests refused with 429",
            m.rejected.clone(),
        );
        r.register(
            "requests_cancelled",
            "Requests cancelled by a disconnect",
            m.cancelled.clone(),
        );
        r.register(
            "time_to_first_token_seconds",
            "Time to first token",
            m.ttft.clone(),
        );
        r.register(
            "inter_token_seconds",
            "Time between tokens",
            m.inter_token.clone(),
        );
        r.register("prompt_tokens", "Prompt tokens", m.prompt_tokens.clone());
        r.register(
            "cached_tokens",
            "Prompt tokens a session already held",
            m.cached_tokens.clone(),
        );
        r.register(
            "generated_tokens",
            "Tokens generated",
            m.generated_tokens.clone(),
        );
        r.register(
            "session_hits",
            "Named sessions continued",
            m.session_hits.clone(),
        );
        r.register(
            "session_misses",
            "Named sessions started over",
            m.session_misses.clone(),
        );
        r.register("kv_bytes", "Bytes of K/V in RAM", m.kv_bytes.clone());
        r.register(
            "sessions_in_ram",
            "Sessions held in RAM",
            m.sessions_ram.clone(),
        );
        r.register(
            "sessions_on_disk",
            "Sessions on disk only",
            m.sessions_disk.clone(),
        );
        r.register(
            "retained_token_ratio",
            "KV entries kept / tokens seen",
            m.retained_ratio.clone(),
        );
        Self {
            registry: std::sync::Arc::new(reg),
            ..m
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
