//! `POST /v1/chat/completions` and `POST /v1/completions`: request checks, then a [`Job`] for
//! the engine, answered by `respond`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use anllm::TokenId;
use anllm::chat::Message;
use anllm::sample::{Penalties, Sampling};
use tokio::sync::mpsc;

use super::respond::{Flavor, respond};
use super::{ApiJson, check_id, unknown_model};
use crate::AppState;
use crate::engine::{GenParams, Job, PromptInput};
use crate::error::ApiError;
use crate::types::{
    ChatMessage, ChatRequest, CommonParams, CompletionRequest, Content, Prompt, StopField,
};

/// The chat route.
pub async fn chat(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::invalid("tools", "tool calling is not supported"));
    }
    let top = match (req.logprobs, req.top_logprobs) {
        (_, Some(k)) if !(0..=20).contains(&k) => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "must be between 0 and 20",
            ));
        }
        (false, Some(k)) if k > 0 => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "needs \"logprobs\": true",
            ));
        }
        (true, k) => Some(k.unwrap_or(0) as usize),
        (false, _) => None,
    };
    let messages = messages(&req.messages)?;
    let flavor = Flavor::Chat;
    run(
        &state,
        &headers,
        &req.common,
        PromptInput::Chat(messages),
        top,
        flavor,
    )
    .await
}

/// The completions route.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    if req.echo {
        return Err(ApiError::invalid("echo", "echo is not supported"));
    }
    if req.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid("suffix", "suffix is not supported"));
    }
    if req.best_of.is_some_and(|b| b != 1) {
        return Err(ApiError::invalid(
            "best_of",
            "only best_of = 1 is supported",
        ));
    }
    let top = match req.logprobs {
        Some(k) if !(0..=20).contains(&k) => {
            return Err(ApiError::invalid("logprobs", "must be between 0 and 20"));
        }
        k => k.map(|k| k as usize),
    };
    let vocab = state.ready()?.shared.model.config().vocab_size;
    let prompt = match req.prompt {
        Prompt::Text(text) => PromptInput::Text(text),
        Prompt::Texts(mut texts) if texts.len() == 1 => PromptInput::Text(texts.remove(0)),
        Prompt::Texts(_) => {
            return Err(ApiError::invalid(
                "prompt",
                "exactly one prompt is supported",
            ));
        }
        Prompt::Tokens(ids) => PromptInput::Tokens(token_ids(&ids, vocab, "prompt")?),
    };
    run(
        &state,
        &headers,
        &req.common,
        prompt,
        top,
        Flavor::Completion,
    )
    .await
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    common: &CommonParams,
    prompt: PromptInput,
    logprobs: Option<usize>,
    flavor: Flavor,
) -> Result<Response, ApiError> {
    if let Some(model) = &common.model
        && model != &state.opts.model_id
    {
        return Err(unknown_model(model));
    }
    let ctx = state.ready()?.shared.model.config().max_position_embeddings;
    let params = params(common, logprobs, ctx)?;
    let session_id = session_id(headers, common)?;
    let (tx, rx) = mpsc::unbounded_channel();
    state.submit(Job {
        prompt,
        session_id,
        params,
        events: tx,
        received: std::time::Instant::now(),
    })?;
    let include_usage = common
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let model = state.opts.model_id.clone();
    respond(rx, flavor, common.stream, include_usage, model).await
}

fn messages(messages: &[ChatMessage]) -> Result<Vec<Message>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "at least one message is needed",
        ));
    }
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "developer" => "system",
            r @ ("system" | "user" | "assistant") => r,
            other => {
                return Err(ApiError::invalid(
                    &format!("messages[{i}].role"),
                    format!("role {other:?} is not supported (system, developer, user, assistant)"),
                ));
            }
        };
        out.push(Message {
            role: role.to_string(),
            content: content(m.content.as_ref(), i)?,
        });
    }
    Ok(out)
}

fn content(content: Option<&Content>, i: usize) -> Result<String, ApiError> {
    match content {
        None => Ok(String::new()),
        Some(Content::Text(t)) => Ok(t.clone()),
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::invalid(
                            &format!("messages[{i}].content"),
                            "only text content parts are supported",
                        ));
                    }
                }
            }
            Ok(text)
        }
    }
}

/// Token ids from JSON integers, each checked against the vocabulary.
pub fn token_ids(ids: &[i64], vocab: usize, param: &str) -> Result<Vec<TokenId>, ApiError> {
    ids.iter()
        .map(|&id| match usize::try_from(id) {
            Ok(u) if u < vocab => Ok(u as TokenId),
            _ => Err(ApiError::invalid(
                param,
                format!("token id {id} is outside the vocabulary (0..{vocab})"),
            )),
        })
        .collect()
}

fn session_id(headers: &HeaderMap, common: &CommonParams) -> Result<Option<String>, ApiError> {
    let header = headers.get("x-session-id").map(|v| {
        v.to_str()
            .map(str::to_string)
            .map_err(|_| ApiError::invalid("X-Session-Id", "the header is not ASCII"))
    });
    let id = match header {
        Some(h) => Some(h?),
        None => common.session_id.clone(),
    };
    if let Some(id) = &id {
        check_id(id)?;
    }
    Ok(id)
}

fn params(c: &CommonParams, logprobs: Option<usize>, ctx: usize) -> Result<GenParams, ApiError> {
    if c.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n", "only n = 1 is supported"));
    }
    let (max, field) = match (c.max_completion_tokens, c.max_tokens) {
        (Some(m), _) => (Some(m), "max_completion_tokens"),
        (None, m) => (m, "max_tokens"),
    };
    if let Some(m) = max
        && !(1..=ctx as i64).contains(&m)
    {
        return Err(ApiError::invalid(
            field,
            format!("must be between 1 and the context length {ctx}, got {m}"),
        ));
    }
    let temperature = c.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid("temperature", "must be between 0 and 2"));
    }
    let top_p = c.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid("top_p", "must be in (0, 1]"));
    }
    let top_k = match c.top_k {
        Some(k) if k < 0 => return Err(ApiError::invalid("top_k", "must be at least 0")),
        k => k.unwrap_or(0) as usize,
    };
    let stop = match &c.stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s.clone()],
        Some(StopField::Many(v)) if v.len() <= 16 => v.clone(),
        Some(StopField::Many(_)) => {
            return Err(ApiError::invalid("stop", "at most 16 stop strings"));
        }
    };
    let seed = match c.seed {
        Some(s) => s as u64,
        None => random_seed(),
    };
    Ok(GenParams {
        max_tokens: max.map(|m| m as usize),
        sampling: Sampling {
            temperature: temperature as f32,
            top_k,
            top_p: top_p as f32,
            seed,
            penalties: penalties(c)?,
        },
        stop,
        logprobs,
        token_ids: c.return_token_ids,
    })
}

/// The repetition penalties: OpenAI's ranges for frequency and presence, llama-server's
/// window (64 tokens by default, -1 for all).
fn penalties(c: &CommonParams) -> Result<Penalties, ApiError> {
    let openai = |v: Option<f64>, field: &'static str| match v {
        Some(x) if !(-2.0..=2.0).contains(&x) => {
            Err(ApiError::invalid(field, "must be between -2 and 2"))
        }
        x => Ok(x.unwrap_or(0.0) as f32),
    };
    let repeat = c.repeat_penalty.unwrap_or(1.0) as f32;
    if !(repeat > 0.0 && repeat.is_finite()) {
        return Err(ApiError::invalid("repeat_penalty", "must be a number > 0"));
    }
    let last_n = match c.repeat_last_n {
        None => Penalties::default().last_n,
        Some(-1) => usize::MAX,
        Some(n) if n < -1 => {
            return Err(ApiError::invalid("repeat_last_n", "must be -1 or more"));
        }
        Some(n) => n as usize,
    };
    Ok(Penalties {
        repeat,
        frequency: openai(c.frequency_penalty, "frequency_penalty")?,
        presence: openai(c.presence_penalty, "presence_penalty")?,
        last_n,
    })
}

/// A seed for a request without one (OpenAI's default is not reproducible).
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ 0x9e37_79b9_7f4a_7c15
}
