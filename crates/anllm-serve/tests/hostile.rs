//! Hostile and malformed requests get the right 4xx with an OpenAI error body, and the server
//! keeps answering afterwards.

mod common;

use axum::http::StatusCode;
use common::{assert_error_shape, call, options, post, server};
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_get_400_and_the_server_stays_up() {
    let (s, _dir) = server(options());
    let bad = [
        ("{not json", "JSON"),
        (r#"{"prompt": "a", "max_tokens": "ten"}"#, "invalid type"),
        (r#"{"prompt": 5}"#, "did not match"),
        (r#"{"messages": "hi"}"#, ""),
    ];
    for (body, says) in bad {
        for uri in ["/v1/completions", "/v1/chat/completions"] {
            let (status, _, json) = call(&s, "POST", uri, &[], body.to_string()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body}: {json}");
            assert_error_shape(&json);
            if uri == "/v1/completions" {
                assert!(
                    json["error"]["message"].as_str().unwrap().contains(says),
                    "{json}"
                );
            }
        }
    }
    let (status, json) = post(
        &s,
        "/v1/completions",
        json!({"prompt": "ok", "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn out_of_range_fields_get_400_naming_the_field() {
    let (s, _dir) = server(options());
    let cases = [
        (json!({"prompt": "a", "max_tokens": -1}), "max_tokens"),
        (json!({"prompt": "a", "max_tokens": 0}), "max_tokens"),
        (
            json!({"prompt": "a", "max_tokens": 1_000_000_000_000i64}),
            "max_tokens",
        ),
        (
            json!({"prompt": "a", "max_completion_tokens": 100_000}),
            "max_completion_tokens",
        ),
        (json!({"prompt": "a", "temperature": 2.5}), "temperature"),
        (json!({"prompt": "a", "top_p": 0}), "top_p"),
        (
            json!({"prompt": "a", "frequency_penalty": 2.5}),
            "frequency_penalty",
        ),
        (
            json!({"prompt": "a", "presence_penalty": -3}),
            "presence_penalty",
        ),
        (
            json!({"prompt": "a", "repeat_penalty": 0}),
            "repeat_penalty",
        ),
        (
            json!({"prompt": "a", "repetition_penalty": -1}),
            "repeat_penalty",
        ),
        (json!({"prompt": "a", "repeat_last_n": -2}), "repeat_last_n"),
        (json!({"prompt": "a", "logit_bias": {"x": 1}}), "logit_bias"),
        (
            json!({"prompt": "a", "logit_bias": {"5": 101}}),
            "logit_bias",
        ),
        (
            json!({"prompt": "a", "logit_bias": {"99999": 1}}),
            "logit_bias",
        ),
        (json!({"prompt": "a", "n": 2}), "n"),
        (json!({"prompt": "a", "logprobs": 50}), "logprobs"),
        (json!({"prompt": "a", "echo": true}), "echo"),
        (json!({"prompt": [1, 2, 99999]}), "prompt"),
        (json!({"prompt": ["a", "b"]}), "prompt"),
        (json!({"prompt": "a", "session_id": "../etc"}), "session_id"),
    ];
    for (body, param) in cases {
        let (status, json) = post(&s, "/v1/completions", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert_error_shape(&json);
        assert_eq!(json["error"]["param"], param, "{body}: {json}");
    }
    let chat = json!({"messages": [{"role": "tool", "content": "x"}]});
    let (status, json) = post(&s, "/v1/chat/completions", chat).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
}

#[tokio::test]
async fn a_prompt_past_the_context_is_context_length_exceeded() {
    let (s, _dir) = server(options());
    let long = "word ".repeat(500); // the tiny model's context is 128 tokens
    let (status, json) = post(&s, "/v1/completions", json!({"prompt": long})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"]["code"], "context_length_exceeded");
    let stream = json!({"prompt": long, "stream": true});
    let (status, json) = post(&s, "/v1/completions", stream).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a refused stream still gets its status: {json}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let (s, _dir) = server(options());
    let huge = json!({"prompt": "x".repeat(10 << 20)}).to_string();
    let (status, _, json) = call(&s, "POST", "/v1/completions", &[], huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert_error_shape(&json);
}

#[tokio::test]
async fn unknown_models_sessions_and_routes_are_404() {
    let (s, _dir) = server(options());
    let (status, json) = post(
        &s,
        "/v1/completions",
        json!({"prompt": "a", "model": "gpt-9"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"]["code"], "model_not_found");
    for method in ["GET", "DELETE"] {
        let (status, _, json) = call(&s, method, "/v1/sessions/nobody", &[], "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(json["error"]["code"], "session_not_found");
    }
    let (status, _, json) = call(&s, "GET", "/v2/nothing", &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&json);
}

#[tokio::test]
async fn a_missing_or_wrong_api_key_is_401_except_on_health() {
    let mut opts = options();
    opts.api_key = Some("sekret".into());
    let (s, _dir) = server(opts);
    let body = json!({"prompt": "a", "max_tokens": 1}).to_string();
    for headers in [
        vec![],
        vec![("authorization", "Bearer nope")],
        vec![("authorization", "sekret")],
    ] {
        let (status, _, json) = call(&s, "POST", "/v1/completions", &headers, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert_error_shape(&json);
    }
    let ok = [("authorization", "Bearer sekret")];
    let (status, _, _) = call(&s, "POST", "/v1/completions", &ok, body).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&s, "GET", "/health", &[], "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn health_is_503_until_the_model_is_loaded() {
    let state = anllm_serve::AppState::new(options());
    let (status, _, json) = call(&state, "GET", "/health", &[], "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error_shape(&json);
    let (status, _, _) = call(&state, "POST", "/v1/completions", &[], r#"{"prompt":"a"}"#).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
