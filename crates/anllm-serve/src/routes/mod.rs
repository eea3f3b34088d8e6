//! The router: authentication, body limits, CORS, tracing, and the small routes (health,
//! models, metrics, tokenize, sessions). Generation lives in `generate`, responses in `respond`.

mod generate;
mod params;
mod respond;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::error::ApiError;
use crate::{AppState, store};

/// The server's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(generate::chat))
        .route("/v1/completions", post(generate::completions))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/sessions", get(list_sessions))
        .route("/v1/sessions/{id}", get(get_session).delete(delete_session))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), auth));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(protected)
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            state.opts.max_body_bytes,
        ))
        .layer(RequestBodyLimitLayer::new(state.opts.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.opts.timeout,
        ))
        .layer(CorsLayer::permissive())
        // 503 while loading is expected: failures are debug lines, not errors.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(state)
}

/// A JSON body whose rejections are OpenAI-style errors.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let mut err = ApiError::bad_body(e.body_text());
            err.status = e.status();
            err
        })?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            ApiError::bad_body(format!("the body is not valid JSON for this route: {e}"))
        })
    }
}

async fn auth(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(key) = &state.opts.api_key {
        let given = (headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::not_found("unknown_url", "no such route")
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.ready() {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render();
    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

fn model_card(state: &AppState) -> Result<Value, ApiError> {
    let ready = state.ready()?;
    let cfg = ready.shared.model.config();
    let session = &ready.shared.session;
    Ok(json!({
        "id": state.opts.model_id,
        "object": "model",
        "created": 0,
        "owned_by": "anllm",
        "meta": {
            "context_length": cfg.max_position_embeddings,
            "anchors": session.anchors.ids(),
            "kv_policy": format!("{:?}", session.policy),
            "mask_rule": session.rule,
            "anchor_window": session.rule.window(),
            "position_mode": format!("{:?}", session.positions),
        },
    }))
}

async fn models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"object": "list", "data": [model_card(&state)?]}),
    ))
}

async fn model(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id != state.opts.model_id {
        return Err(unknown_model(&id));
    }
    Ok(Json(model_card(&state)?))
}

fn unknown_model(id: &str) -> ApiError {
    ApiError::not_found(
        "model_not_found",
        format!("the model {id:?} does not exist"),
    )
}

#[derive(Deserialize)]
struct TokenizeRequest {
    content: String,
    #[serde(default)]
    add_special: bool,
    #[serde(default)]
    parse_special: bool,
    #[serde(default)]
    with_pieces: bool,
}

async fn tokenize(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Json<Value>, ApiError> {
    let tok = &state.ready()?.shared.tokenizer;
    let mut ids = tok.encode(&req.content, req.parse_special)?;
    if req.add_special
        && tok.add_bos()
        && let Some(bos) = tok.specials().bos
    {
        ids.insert(0, bos);
    }
    if !req.with_pieces {
        return Ok(Json(json!({"tokens": ids})));
    }
    let pieces = (ids.iter())
        .map(|&id| json!({"id": id, "piece": tok.decode(&[id], false).unwrap_or_default()}))
        .collect::<Vec<_>>();
    Ok(Json(json!({"tokens": pieces})))
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    tokens: Vec<i64>,
}

async fn detokenize(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<DetokenizeRequest>,
) -> Result<Json<Value>, ApiError> {
    let ready = state.ready()?;
    let ids = generate::token_ids(
        &req.tokens,
        ready.shared.model.config().vocab_size,
        "tokens",
    )?;
    let text = ready.shared.tokenizer.decode(&ids, false)?;
    Ok(Json(json!({"content": text})))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    match store::valid_id(id) {
        true => Ok(()),
        false => Err(ApiError::invalid(
            "session_id",
            "a session id is 1-128 characters of letters, digits, '_', '-' and '.'",
        )),
    }
}

fn session_not_found(id: &str) -> ApiError {
    ApiError::not_found("session_not_found", format!("no session {id:?}"))
}

async fn list_sessions(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let store = state.ready()?.shared.store.lock().map_err(|_| poisoned())?;
    Ok(Json(json!({"object": "list", "data": store.list()})))
}

async fn get_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_id(&id)?;
    let store = state.ready()?.shared.store.lock().map_err(|_| poisoned())?;
    let info = store.info(&id).ok_or_else(|| session_not_found(&id))?;
    Ok(Json(json!(info)))
}

async fn delete_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_id(&id)?;
    let mut store = state.ready()?.shared.store.lock().map_err(|_| poisoned())?;
    match store.delete(&id) {
        true => Ok(Json(
            json!({"id": id, "object": "session.deleted", "deleted": true}),
        )),
        false => Err(session_not_found(&id)),
    }
}

fn poisoned() -> ApiError {
    ApiError::internal("the session store is poisoned")
}
