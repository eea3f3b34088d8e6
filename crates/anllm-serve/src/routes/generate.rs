//! `POST /v1/chat/completions` and `POST /v1/completions`: request checks, then a [`Job`] for
//! the engine, answered by `respond`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use anllm::TokenId;
use anllm::chat::Message;
use tokio::sync::mpsc;

use super::params::params;
use super::respond::{Flavor, respond};
use super::{ApiJson, check_id, unknown_model};
use crate::AppState;
use crate::engine::{Job, PromptInput};
use crate::error::ApiError;
use crate::types::{ChatMessage, ChatRequest, CommonParams, CompletionRequest, Content, Prompt};

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
    let params = params(common, logprobs, state.ready()?.shared.model.config())?;
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
