//! A server over a tiny seeded model (written to a temporary directory with a plain chat
//! template), driven through the router without a socket.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anllm::testutil::{HfLayout, TinySpec, write_hf_dir};
use anllm::{SessionConfig, WeightDtype, load_model};
use anllm_serve::{AppState, Loaded, ServeOptions, router};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use candle_core::Device;
use serde_json::Value;
use tower::ServiceExt;

/// A template with no special tokens (the tiny vocabulary has none).
pub const TEMPLATE: &str = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}\
{% if add_generation_prompt %}assistant:{% endif %}";

pub fn options() -> ServeOptions {
    ServeOptions {
        model_id: "tiny".into(),
        api_key: None,
        parallel: 4,
        max_queue: 16,
        session_dir: None,
        kv_budget_bytes: 64 << 20,
        max_sessions: 100,
        max_body_bytes: 1 << 20,
        timeout: Duration::from_secs(60),
        pin_prompts: false,
    }
}

/// The tiny model with the chat template, loaded from `dir`.
pub fn loaded(dir: &Path, session: SessionConfig) -> Loaded {
    write_hf_dir(dir, &TinySpec::gqa(), HfLayout::Safetensors).unwrap();
    std::fs::write(dir.join("chat_template.jinja"), TEMPLATE).unwrap();
    let model = load_model(dir, WeightDtype::F32, &Device::Cpu).unwrap();
    Loaded {
        model: model.llama,
        tokenizer: model.tokenizer,
        session,
        fingerprint: "tiny".into(),
    }
}

/// A started server with `opts`.
pub fn server(opts: ServeOptions) -> (Arc<AppState>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(opts);
    state
        .start(loaded(dir.path(), SessionConfig::causal(8)))
        .unwrap();
    (state, dir)
}

/// One request: (status, Retry-After header, body as JSON or as a string).
pub async fn call(
    state: &Arc<AppState>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router(Arc::clone(state))
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let retry = (res.headers().get("retry-after")).map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, retry, json)
}

/// POST a JSON body.
pub async fn post(state: &Arc<AppState>, uri: &str, body: Value) -> (StatusCode, Value) {
    let (status, _, json) = call(state, "POST", uri, &[], body.to_string()).await;
    (status, json)
}

/// The OpenAI error object's fields are all there and the message says something.
pub fn assert_error_shape(body: &Value) {
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    for key in ["type", "param", "code"] {
        assert!(e.get(key).is_some(), "missing {key}: {body}");
    }
}

/// The value of Prometheus sample `name` (no labels) in the exposition `text`.
pub fn metric_value(text: &str, name: &str) -> f64 {
    (text.lines())
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// `usage.prompt_tokens_details.cached_tokens`.
pub fn cached_tokens(usage: &Value) -> u64 {
    usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap()
}
