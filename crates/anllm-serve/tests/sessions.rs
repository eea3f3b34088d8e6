//! Named sessions: a later turn prefills only its new tokens; a server started again on the
//! same session directory (what a restart after SIGKILL sees: every turn is on disk before its
//! answer ends) continues with the same greedy output as the server that never stopped; the
//! RAM budget spills to disk or answers 429; requests decoded together in one batch give what
//! they give alone; a server pinning prompts answers what a session pinned by hand answers, and
//! a request with repetition penalties what a session with the same penalties answers, and a
//! logit bias forces or bans a token.

mod common;

use std::sync::Arc;

use anllm::SessionConfig;
use anllm_serve::AppState;
use axum::http::StatusCode;
use common::{cached_tokens, call, loaded, options, post, server};
use serde_json::{Value, json};

/// One completion turn on session `id` with token ids (`return_token_ids`, as a client that
/// continues token for token does): (the conversation's ids after the turn, text, usage).
async fn turn(s: &Arc<AppState>, id: &str, prompt: &[u32]) -> (Vec<u32>, String, Value) {
    turn_with(s, id, prompt, json!({})).await
}

/// [`turn`] with more fields in the request body.
async fn turn_with(
    s: &Arc<AppState>,
    id: &str,
    prompt: &[u32],
    extra: Value,
) -> (Vec<u32>, String, Value) {
    let mut body = json!({
        "prompt": prompt, "max_tokens": 6, "temperature": 0, "session_id": id,
        "return_token_ids": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, json) = post(s, "/v1/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let mut all = ids(&json["prompt_token_ids"]);
    assert_eq!(all, prompt);
    all.extend(ids(&json["choices"][0]["token_ids"]));
    let text = json["choices"][0]["text"].as_str().unwrap().to_string();
    (all, text, json["usage"].clone())
}

/// The new tokens of three turns (10 is an anchor of the tiny anchored sessions).
fn prompts() -> [Vec<u32>; 3] {
    [vec![1, 40, 41, 42, 10], vec![43, 44, 10], vec![45, 46, 47]]
}

#[tokio::test]
async fn a_later_turn_prefills_only_its_new_tokens() {
    let (s, _dir) = server(options());
    let mut conversation = Vec::new();
    for (i, p) in prompts().iter().enumerate() {
        conversation.extend(p);
        let (all, _, usage) = turn(&s, "conv", &conversation).await;
        let cached = cached_tokens(&usage);
        match i {
            0 => assert_eq!(cached, 0),
            _ => assert!(cached > 0 && cached < usage["prompt_tokens"].as_u64().unwrap()),
        }
        conversation = all;
    }
    let (status, _, info) = call(&s, "GET", "/v1/sessions/conv", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["turns"], 3);
    assert_eq!(info["location"], "ram");
}

#[tokio::test]
async fn a_restarted_server_continues_from_disk_like_the_one_that_never_stopped() {
    let sessions = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.session_dir = Some(sessions.path().to_path_buf());
    let model_dir = tempfile::tempdir().unwrap();
    let anchored = || SessionConfig::anchored(anllm::testutil::tiny_anchors(), 8);
    let first = AppState::new(opts.clone());
    first.start(loaded(model_dir.path(), anchored())).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for p in &prompts()[..2] {
        a.extend(p);
        b.extend(p);
        a = turn(&first, "never-stopped", &a).await.0;
        b = turn(&first, "restarted", &b).await.0;
    }
    let p = &prompts()[2];
    a.extend(p);
    let (want, _, _) = turn(&first, "never-stopped", &a).await;
    // A new server on the same directory, as after a restart.
    let second_dir = tempfile::tempdir().unwrap();
    let second = AppState::new(opts);
    second.start(loaded(second_dir.path(), anchored())).unwrap();
    let (status, _, info) = call(&second, "GET", "/v1/sessions/restarted", &[], "").await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["location"], "disk");
    b.extend(p);
    let (got, _, usage) = turn(&second, "restarted", &b).await;
    assert!(cached_tokens(&usage) > 0);
    assert_eq!(got, want);
}

#[tokio::test]
async fn without_a_session_dir_a_full_budget_refuses_new_sessions_with_429_until_one_is_deleted() {
    let mut opts = options();
    opts.kv_budget_bytes = 1;
    let (s, _dir) = server(opts);
    let (mut first, _, _) = turn(&s, "first", &prompts()[0]).await;
    let body = json!({"prompt": "three", "max_tokens": 2, "session_id": "second"});
    let (status, retry, json) = call(&s, "POST", "/v1/completions", &[], body.to_string()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(json["error"]["type"], "rate_limit_error");
    // A conversation already held may continue past the budget.
    first.extend(&prompts()[1]);
    turn(&s, "first", &first).await;
    let (status, _, _) = call(&s, "DELETE", "/v1/sessions/first", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    turn(&s, "second", &prompts()[1]).await;
}

#[tokio::test]
async fn with_a_session_dir_the_budget_spills_sessions_to_disk() {
    let sessions = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.kv_budget_bytes = 1;
    opts.session_dir = Some(sessions.path().to_path_buf());
    let (s, _dir) = server(opts);
    let (mut first, _, _) = turn(&s, "first", &prompts()[0]).await;
    turn(&s, "second", &prompts()[1]).await;
    let (_, _, list) = call(&s, "GET", "/v1/sessions", &[], "").await;
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{list}");
    assert_eq!(data[0]["id"], "first");
    assert_eq!(data[0]["location"], "disk");
    // Restored from disk on demand.
    first.extend(&prompts()[2]);
    let (_, _, usage) = turn(&s, "first", &first).await;
    assert!(cached_tokens(&usage) > 0);
}

#[tokio::test]
async fn requests_decoded_together_answer_what_they_answer_alone() {
    let (s, _dir) = server(options());
    let prompts = [
        "alpha beta",
        "gamma delta epsilon",
        "zeta",
        "eta theta iota kappa",
    ];
    let body = |p: &str| json!({"prompt": p, "max_tokens": 12, "temperature": 0});
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(post(&s, "/v1/completions", body(p)).await.1);
    }
    let together = futures_util::future::join_all(
        prompts.iter().map(|p| post(&s, "/v1/completions", body(p))),
    )
    .await;
    for (a, (status, t)) in alone.iter().zip(&together) {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(a["choices"][0]["text"], t["choices"][0]["text"]);
        assert_eq!(a["usage"], t["usage"]);
    }
}

#[tokio::test]
async fn metrics_count_requests_tokens_sessions_and_hits() {
    let (s, _dir) = server(options());
    let (first, _, _) = turn(&s, "m", &prompts()[0]).await;
    let mut next = first.clone();
    next.extend(&prompts()[1]);
    let (_, _, usage) = turn(&s, "m", &next).await;
    let (status, _, text) = call(&s, "GET", "/metrics", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    let metric = |name: &str| common::metric_value(&text, name);
    assert_eq!(metric("anllm_requests_total"), 2.0);
    assert_eq!(metric("anllm_generated_tokens_total"), 12.0); // 2 × max_tokens 6
    assert_eq!(
        metric("anllm_cached_tokens_total"),
        cached_tokens(&usage) as f64
    );
    assert_eq!(metric("anllm_session_hits_total"), 1.0);
    assert_eq!(metric("anllm_session_misses_total"), 1.0);
    assert_eq!(metric("anllm_sessions_in_ram"), 1.0);
    assert!(metric("anllm_kv_bytes") > 0.0);
    assert!(text.contains("anllm_time_to_first_token_seconds_bucket"));
}

/// Greedy answers of `turns` on one library session pinned by hand (`pins`, as `generate
/// --pin-prompt` configures them): the ids of the whole conversation and the cache's entries.
fn by_hand(pins: Vec<std::ops::Range<u32>>, turns: &[Vec<u32>]) -> (Vec<u32>, usize) {
    by_hand_with(pins, turns, anllm::Sampling::default())
}

/// [`by_hand`] with `sampling`.
fn by_hand_with(
    pins: Vec<std::ops::Range<u32>>,
    turns: &[Vec<u32>],
    sampling: anllm::Sampling,
) -> (Vec<u32>, usize) {
    use anllm::generate::{Flow, GenerateRequest, TokenSink, generate};
    struct Ids(Vec<u32>);
    impl TokenSink for Ids {
        fn token(&mut self, id: u32, _: &str) -> anllm::Result<Flow> {
            self.0.push(id);
            Ok(Flow::Continue)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let model = loaded(dir.path(), SessionConfig::causal(8));
    let mut cfg = SessionConfig::anchored(anllm::testutil::tiny_anchors(), 8);
    cfg.pins = pins;
    let mut session = anllm::Session::new(model.model, cfg, 0).unwrap();
    let mut all = Vec::new();
    for prompt in turns {
        let req = GenerateRequest {
            prompt: prompt.clone(),
            max_tokens: 6,
            sampling: sampling.clone(),
        };
        let mut ids = Ids(Vec::new());
        generate(&mut session, &model.tokenizer, &req, &mut ids).unwrap();
        all.extend(prompt);
        all.extend(ids.0);
    }
    (all, session.stats().entries)
}

#[tokio::test]
async fn a_server_pinning_prompts_answers_what_a_session_pinned_by_hand_answers() {
    let mut opts = options();
    opts.pin_prompts = true;
    let dir = tempfile::tempdir().unwrap();
    let s = AppState::new(opts);
    let anchored = SessionConfig::anchored(anllm::testutil::tiny_anchors(), 8);
    s.start(loaded(dir.path(), anchored)).unwrap();
    let [p1, p2, _] = prompts();
    let first = turn(&s, "pinned", &p1).await.0;
    let second = turn(&s, "pinned", &[first.clone(), p2.clone()].concat())
        .await
        .0;
    // Each turn's new prompt tokens: 0..5 and, after the first answer, the second prompt.
    let (n1, n2) = (first.len() as u32, p2.len() as u32);
    let pins = vec![0..p1.len() as u32, n1..n1 + n2];
    let (want, entries) = by_hand(pins, &[p1.clone(), p2.clone()]);
    assert_eq!(second, want);
    let (status, _, info) = call(&s, "GET", "/v1/sessions/pinned", &[], "").await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["kv_entries"], entries, "{info}");
    let (_, unpinned) = by_hand(Vec::new(), &[p1, p2.clone()]);
    assert!(
        entries > unpinned,
        "pins keep more: {entries} vs {unpinned}"
    );
    // Another conversation on the same id starts the session over, and its old pins go.
    let other = turn(&s, "pinned", &p2).await.0;
    let (want, entries) = by_hand(std::iter::once(0..p2.len() as u32).collect(), &[p2]);
    assert_eq!(other, want);
    let (_, _, info) = call(&s, "GET", "/v1/sessions/pinned", &[], "").await;
    assert_eq!(info["kv_entries"], entries, "{info}");
}

/// OpenAI's penalties and llama-server's repeat fields reach the sampler with the window over
/// the whole conversation: two turns on one session answer what a library session with the same
/// penalties answers, and not what it answers without them.
#[tokio::test]
async fn a_request_with_penalties_answers_what_a_session_with_them_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = AppState::new(options());
    let anchored = SessionConfig::anchored(anllm::testutil::tiny_anchors(), 8);
    s.start(loaded(dir.path(), anchored)).unwrap();
    let fields = json!({
        "frequency_penalty": 1.0, "presence_penalty": 2.0, "repetition_penalty": 1.5,
        "repeat_last_n": -1,
    });
    let [p1, p2, _] = prompts();
    let first = turn_with(&s, "pen", &p1, fields.clone()).await.0;
    let second = turn_with(&s, "pen", &[first, p2.clone()].concat(), fields)
        .await
        .0;
    let penalized = anllm::Sampling {
        penalties: anllm::Penalties {
            repeat: 1.5,
            frequency: 1.0,
            presence: 2.0,
            last_n: usize::MAX,
        },
        ..anllm::Sampling::default()
    };
    let turns = [p1, p2];
    assert_eq!(second, by_hand_with(Vec::new(), &turns, penalized).0);
    assert_ne!(second, by_hand(Vec::new(), &turns).0);
}

/// OpenAI's `logit_bias` reaches the sampler: +100 on token 50 makes greedy decoding pick it
/// every time; -100 on the first token of the plain answer bans it.
#[tokio::test]
async fn logit_bias_forces_and_bans_tokens() {
    let (s, _dir) = server(options());
    let prompt = [1, 40, 41, 42];
    let plain = turn(&s, "plain", &prompt).await.0[4..].to_vec();
    let forced = turn_with(&s, "forced", &prompt, json!({"logit_bias": {"50": 100}})).await;
    assert_eq!(forced.0[4..], [50; 6]);
    let first = plain[0].to_string();
    let bias = json!({ "logit_bias": { first.clone(): -100 } });
    let banned = turn_with(&s, "banned", &prompt, bias).await.0[4..].to_vec();
    assert!(
        !banned.contains(&plain[0]),
        "{banned:?} has the banned {first}"
    );
}
