//! Scoring requests a user controls never panic: a continuation id past the model vocabulary
//! (only a target, so the forward step never checks it) indexed a row of logits before; now
//! every path gives an error that names the id.

use anllm::testutil::{tiny_anchors, tiny_model};
use anllm::{PolicyConfig, SessionConfig};
use anllm_eval::prompt::Request;
use anllm_eval::scoring::{score_each, score_shared};

/// The tiny model's vocabulary size: the first id past it.
const VOCAB: u32 = 384;

fn request(context: &[u32], continuation: &[u32]) -> Request {
    Request::new(context, continuation)
}

fn configs() -> [SessionConfig; 2] {
    [
        SessionConfig::causal(3),
        SessionConfig {
            policy: PolicyConfig::Anchor,
            ..SessionConfig::anchored(tiny_anchors(), 3)
        },
    ]
}

#[test]
fn score_shared_continuation_id_past_vocab_is_an_error() {
    let model = &tiny_model().llama;
    let ctx = [5, 6, 7, 8];
    // One shared context: the first continuation id indexes the context's last row; later
    // ones index the continuation's rows. Contexts that differ take the other path.
    let cases = [
        vec![request(&ctx, &[30]), request(&ctx, &[VOCAB])],
        vec![request(&ctx, &[30, 31]), request(&ctx, &[31, VOCAB + 5])],
        vec![request(&ctx, &[30]), request(&[5, 6, 9], &[31, u32::MAX])],
    ];
    for cfg in configs() {
        for requests in &cases {
            let err = score_shared(model, &cfg, requests).unwrap_err().to_string();
            let bad = requests[1].continuation.last().unwrap().to_string();
            assert!(err.contains(&bad) && err.contains("vocabulary"), "{err}");
        }
    }
}

#[test]
fn score_shared_context_id_past_vocab_is_an_error() {
    let model = &tiny_model().llama;
    let requests = [request(&[5, VOCAB], &[30]), request(&[5, VOCAB], &[31])];
    for cfg in configs() {
        let err = score_shared(model, &cfg, &requests)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&VOCAB.to_string()), "{err}");
    }
}

#[test]
fn score_each_continuation_id_past_vocab_is_an_error() {
    let model = &tiny_model().llama;
    let requests = [request(&[5, 6], &[30]), request(&[5, 6], &[31, VOCAB])];
    for cfg in configs() {
        let err = score_each(model, &cfg, &requests).unwrap_err().to_string();
        assert!(err.contains(&VOCAB.to_string()), "{err}");
    }
}

#[test]
fn score_shared_without_requests_is_an_error() {
    let model = &tiny_model().llama;
    let err = score_shared(model, &SessionConfig::causal(3), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one choice"), "{err}");
}
