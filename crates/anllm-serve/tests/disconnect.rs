//! A client that disconnects mid-stream cancels its request at the next step (llama.cpp's
//! server regressed on this twice): the slot is freed, the cancel is counted, and the server
//! keeps answering. Runs on the fetched default model over a real socket, because the tiny
//! model finishes before a disconnect can be seen.

use std::time::{Duration, Instant};

use anllm::testutil::default_model;
use anllm::{SessionConfig, WeightDtype, load_model};
use anllm_serve::{AppState, Loaded};
use candle_core::Device;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

async fn http(addr: &str, method: &str, path: &str, body: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

async fn metric(addr: &str, name: &str) -> f64 {
    let mut s = http(addr, "GET", "/metrics", "").await;
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    common::metric_value(&text, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_stream_cancels_its_request() {
    let model = load_model(&default_model(), WeightDtype::Auto, &Device::Cpu).unwrap();
    let state = AppState::new(common::options());
    state
        .start(Loaded {
            model: model.llama,
            tokenizer: model.tokenizer,
            session: SessionConfig::causal(64),
            fingerprint: "default".into(),
        })
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(anllm_serve::serve(listener, state, std::future::pending()));
    let body =
        r#"{"prompt": "Once upon a time", "max_tokens": 4000, "temperature": 0, "stream": true}"#;
    let mut s = http(&addr, "POST", "/v1/completions", body).await;
    let mut buf = vec![0u8; 4096];
    let mut seen = String::new();
    while !seen.contains("data: {") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream ended before its first chunk: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(s);
    let start = Instant::now();
    while metric(&addr, "anllm_requests_cancelled_total").await < 1.0 {
        assert!(start.elapsed() < Duration::from_secs(20), "not cancelled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&addr, "anllm_requests_running").await, 0.0);
    let generated = metric(&addr, "anllm_generated_tokens_total").await;
    assert!(
        (1.0..4000.0).contains(&generated),
        "kept generating: {generated} tokens"
    );
    // The server still answers.
    let ok = r#"{"prompt": "Hello", "max_tokens": 2}"#;
    let mut s = http(&addr, "POST", "/v1/completions", ok).await;
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}
