//! Turning the engine's events into OpenAI responses: one JSON object, or SSE chunks ending
//! with `data: [DONE]`. The handler waits for the first event, so a request refused by the
//! engine (context too long, KV budget full, session busy) gets its status even when it asked
//! for a stream; a failure after that is sent as a `data: {"error": …}` event before closing.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::engine::{Event, LogprobEntry};
use crate::error::ApiError;
use crate::types::{TokenLogprob, TopLogprob, Usage};

/// Which endpoint's shapes to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `chat.completion` / `chat.completion.chunk`.
    Chat,
    /// `text_completion`.
    Completion,
}

/// What every chunk of one response repeats.
struct Meta {
    id: String,
    created: u64,
    model: String,
    flavor: Flavor,
}

/// Builds the response once the engine has accepted or refused the request.
pub async fn respond(
    mut rx: mpsc::UnboundedReceiver<Event>,
    flavor: Flavor,
    stream: bool,
    include_usage: bool,
    model: String,
) -> Result<Response, ApiError> {
    match rx.recv().await {
        Some(Event::Started { .. }) => {}
        Some(Event::Error(e)) => return Err(e),
        _ => return Err(ApiError::internal("the engine dropped the request")),
    }
    let meta = Meta {
        id: new_id(flavor),
        created: unix_now(),
        model,
        flavor,
    };
    match stream {
        true => Ok(sse(rx, meta, include_usage).into_response()),
        false => collect(rx, meta).await.map(IntoResponse::into_response),
    }
}

fn new_id(flavor: Flavor) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let prefix = match flavor {
        Flavor::Chat => "chatcmpl",
        Flavor::Completion => "cmpl",
    };
    format!("{prefix}-{:x}{n:04x}", unix_now())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Log-probabilities gathered for one response (or one chunk).
#[derive(Default)]
struct Logprobs {
    entries: Vec<LogprobEntry>,
    /// Completion text length before each entry (completions' `text_offset`).
    offsets: Vec<usize>,
}

impl Logprobs {
    fn push(&mut self, entry: LogprobEntry, offset: usize) {
        self.entries.push(entry);
        self.offsets.push(offset);
    }

    fn to_json(&self, flavor: Flavor) -> Value {
        if self.entries.is_empty() {
            return Value::Null;
        }
        match flavor {
            Flavor::Chat => {
                let content: Vec<TokenLogprob> = (self.entries.iter())
                    .map(|e| TokenLogprob {
                        token: e.token.clone(),
                        logprob: e.logprob,
                        bytes: e.token.as_bytes().to_vec(),
                        top_logprobs: (e.top.iter())
                            .map(|(t, lp)| TopLogprob {
                                token: t.clone(),
                                logprob: *lp,
                                bytes: t.as_bytes().to_vec(),
                            })
                            .collect(),
                    })
                    .collect();
                json!({"content": content})
            }
            Flavor::Completion => json!({
                "tokens": self.entries.iter().map(|e| &e.token).collect::<Vec<_>>(),
                "token_logprobs": self.entries.iter().map(|e| e.logprob).collect::<Vec<_>>(),
                "top_logprobs": (self.entries.iter())
                    .map(|e| {
                        let top = e.top.iter().map(|(t, lp)| (t.clone(), json!(lp)));
                        Value::Object(top.collect())
                    })
                    .collect::<Vec<_>>(),
                "text_offset": self.offsets,
            }),
        }
    }
}

async fn collect(
    mut rx: mpsc::UnboundedReceiver<Event>,
    meta: Meta,
) -> Result<Json<Value>, ApiError> {
    let mut text = String::new();
    let mut lps = Logprobs::default();
    loop {
        match rx.recv().await {
            Some(Event::Token { text: t, logprob }) => {
                if let Some(lp) = logprob {
                    lps.push(lp, text.len());
                }
                text.push_str(&t);
            }
            Some(Event::Done {
                finish,
                usage,
                token_ids,
            }) => {
                let mut choice = match meta.flavor {
                    Flavor::Chat => json!({
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": lps.to_json(meta.flavor),
                        "finish_reason": finish.as_str(),
                    }),
                    Flavor::Completion => json!({
                        "index": 0,
                        "text": text,
                        "logprobs": lps.to_json(meta.flavor),
                        "finish_reason": finish.as_str(),
                    }),
                };
                let mut body = json!({
                    "id": meta.id,
                    "object": match meta.flavor {
                        Flavor::Chat => "chat.completion",
                        Flavor::Completion => "text_completion",
                    },
                    "created": meta.created,
                    "model": meta.model,
                    "usage": usage,
                });
                if let Some(ids) = token_ids {
                    choice["token_ids"] = json!(ids.output);
                    body["prompt_token_ids"] = json!(ids.prompt);
                }
                body["choices"] = json!([choice]);
                return Ok(Json(body));
            }
            Some(Event::Error(e)) => return Err(e),
            Some(Event::Started { .. }) => {}
            None => return Err(ApiError::internal("the engine dropped the request")),
        }
    }
}

/// The state of one SSE response.
struct Chunks {
    rx: mpsc::UnboundedReceiver<Event>,
    meta: Meta,
    include_usage: bool,
    sent: usize,
    done: bool,
}

impl Chunks {
    fn chunk(&self, delta: Value, logprobs: Value, finish: Option<&str>) -> SseEvent {
        let choice = match self.meta.flavor {
            Flavor::Chat => json!({
                "index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish,
            }),
            Flavor::Completion => json!({
                "index": 0,
                "text": delta.get("content").cloned().unwrap_or(json!("")),
                "logprobs": logprobs,
                "finish_reason": finish,
            }),
        };
        self.event(vec![choice], None)
    }

    fn event(&self, choices: Vec<Value>, usage: Option<Usage>) -> SseEvent {
        let mut body = json!({
            "id": self.meta.id,
            "object": match self.meta.flavor {
                Flavor::Chat => "chat.completion.chunk",
                Flavor::Completion => "text_completion",
            },
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": choices,
        });
        if self.include_usage {
            body["usage"] = json!(usage);
        }
        SseEvent::default().data(body.to_string())
    }

    /// The SSE events for one engine event.
    fn translate(&mut self, event: Option<Event>) -> Vec<SseEvent> {
        match event {
            Some(Event::Token { text, logprob }) => {
                let mut lps = Logprobs::default();
                if let Some(lp) = logprob {
                    lps.push(lp, self.sent);
                }
                if text.is_empty() && lps.entries.is_empty() {
                    return Vec::new();
                }
                self.sent += text.len();
                vec![self.chunk(
                    json!({"content": text}),
                    lps.to_json(self.meta.flavor),
                    None,
                )]
            }
            Some(Event::Done { finish, usage, .. }) => {
                self.done = true;
                let mut out = vec![self.chunk(json!({}), Value::Null, Some(finish.as_str()))];
                if self.include_usage {
                    out.push(self.event(Vec::new(), Some(usage)));
                }
                out.push(SseEvent::default().data("[DONE]"));
                out
            }
            Some(Event::Started { .. }) => Vec::new(),
            Some(Event::Error(e)) => {
                self.done = true;
                vec![SseEvent::default().data(e.body().to_string())]
            }
            None => {
                self.done = true;
                let e = ApiError::internal("the engine dropped the request");
                vec![SseEvent::default().data(e.body().to_string())]
            }
        }
    }
}

fn sse(
    rx: mpsc::UnboundedReceiver<Event>,
    meta: Meta,
    include_usage: bool,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let chunks = Chunks {
        rx,
        meta,
        include_usage,
        sent: 0,
        done: false,
    };
    let role = chunks.chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
        None,
    );
    let first = match chunks.meta.flavor {
        Flavor::Chat => vec![role],
        Flavor::Completion => Vec::new(),
    };
    let rest = stream::unfold(chunks, |mut c| async move {
        if c.done {
            return None;
        }
        let event = c.rx.recv().await;
        let out = c.translate(event);
        Some((out, c))
    });
    let events = stream::iter(vec![first])
        .chain(rest)
        .flat_map(|batch| stream::iter(batch.into_iter().map(Ok)));
    Sse::new(events).keep_alive(KeepAlive::default())
}
