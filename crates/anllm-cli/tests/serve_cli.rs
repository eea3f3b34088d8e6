//! `anllm serve` end to end on a tiny model: it binds the port it is given (0: a free one,
//! printed on stderr), answers `/health` and a completion over a real socket, and stops on
//! SIGTERM; a model that fails to load and flags that do not apply end it with a clean error.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anllm::testutil::TinySpec;
use common::{anllm, assert_clean_failure, hf_model, s};

fn request(port: u16, method: &str, path: &str, body: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serve_answers_health_and_a_completion_then_stops_on_sigterm() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let mut child = Command::new(env!("CARGO_BIN_EXE_anllm"))
        .args(["serve", "-m", s(&dir), "--port", "0", "--threads", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let port: u16 = (line.split("127.0.0.1:").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let start = Instant::now();
    while !request(port, "GET", "/health", "").starts_with("HTTP/1.1 200") {
        if let Some(status) = child.try_wait().unwrap() {
            let mut rest = String::new();
            stderr.read_to_string(&mut rest).unwrap();
            panic!("the server exited ({status:?}): {rest}");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Three tokens are asked for: the end-of-generation tokens are banned, or an unseeded
    // sample of the random tiny model would now and then end the answer early.
    let specials = anllm::tokenizer::Tokenizer::from_hf_dir(&dir)
        .unwrap()
        .specials()
        .clone();
    let ban: Vec<String> = (specials.eos.iter().chain(&specials.eot))
        .map(|id| format!("\"{id}\": -100"))
        .collect();
    assert!(
        !ban.is_empty(),
        "the tiny vocabulary has an end-of-generation token"
    );
    let body = format!(
        r#"{{"prompt": "hi", "max_tokens": 3, "logit_bias": {{{}}}}}"#,
        ban.join(", ")
    );
    let answer = request(port, "POST", "/v1/completions", &body);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"completion_tokens\":3"), "{answer}");
    // SAFETY-free SIGTERM through the `kill` command: a graceful shutdown exits 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn serve_with_a_truncated_model_or_flags_that_do_not_apply_fails_cleanly() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let weights = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    // The port is bound before the model loads: one line says so, the last is the error.
    let out = anllm(&["serve", "-m", s(&dir), "--port", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("anllm: error:") && last.contains("safetensors"),
        "{stderr}"
    );
    let out = anllm(&["serve", "-m", s(&dir), "--port", "0", "--pin", "0:4"]);
    assert_clean_failure(&out, "do not apply");
    let out = anllm(&["serve", "-m", s(&dir), "--parallel", "0"]);
    assert_clean_failure(&out, "--parallel");
}
