//! `GET /v1/models` says how the server runs the model: its context, anchor ids, rule (as the
//! JSON the CLI's `score --json` and `eval qa` write) and local window.

mod common;

use anllm::{MaskRule, SessionConfig};
use anllm_serve::AppState;
use axum::http::StatusCode;
use common::{call, loaded, options};
use serde_json::json;

#[tokio::test]
async fn the_model_card_names_the_anchors_rule_and_window() {
    let dir = tempfile::tempdir().unwrap();
    let s = AppState::new(options());
    let cfg = SessionConfig::anchored(anllm::testutil::tiny_anchors(), 8)
        .with_rule(MaskRule::AnSanWindow(3));
    let anchor_ids = cfg.anchors.ids().to_vec();
    s.start(loaded(dir.path(), cfg)).unwrap();
    let (status, _, body) = call(&s, "GET", "/v1/models", &[], "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let meta = &body["data"][0]["meta"];
    assert_eq!(meta["mask_rule"], json!({"an_san_window": 3}), "{body}");
    assert_eq!(meta["anchor_window"], 3, "{body}");
    assert_eq!(meta["anchors"], json!(anchor_ids), "{body}");
    let (status, _, one) = call(&s, "GET", "/v1/models/tiny", &[], "").await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["meta"], *meta);
}
