//! Sessions stepped together by one batched forward (`Session::forward_batch`, what the server
//! does each round) give the logits, cells and history of the same sessions stepped alone:
//! causal and anchored (pruned) sessions, decode rows and prefill chunks mixed in one batch.
//! The oracle is the single-sequence path, itself checked against HF transformers in
//! `golden_hf.rs`.

use std::sync::Arc;

use anllm::testutil::{ANCHOR, tiny_anchors, tiny_model};
use anllm::{OutputRows, PolicyConfig, Session, SessionConfig, TokenId};

fn stream(n: u32, seed: u32) -> Vec<TokenId> {
    (0..n)
        .map(|i| match i % 5 {
            4 => ANCHOR[0],
            _ => 20 + (i * 31 + seed * 13) % 300,
        })
        .collect()
}

fn sessions() -> Vec<Session> {
    let model = &tiny_model().llama;
    let cfgs = [
        SessionConfig::causal(4),
        SessionConfig::anchored(tiny_anchors(), 4),
        SessionConfig::causal(8).with_policy(PolicyConfig::Streaming {
            sinks: 2,
            window: 5,
        }),
    ];
    cfgs.into_iter()
        .enumerate()
        .map(|(i, cfg)| {
            let mut s = Session::new(Arc::clone(model), cfg, 16).unwrap();
            s.prefill(&stream(9 + 4 * i as u32, i as u32), 0).unwrap();
            s.accept(40 + i as TokenId); // a sampled token, pending
            s
        })
        .collect()
}

fn max_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    let (a, b): (Vec<f32>, Vec<f32>) = (
        a.flatten_all().unwrap().to_vec1().unwrap(),
        b.flatten_all().unwrap().to_vec1().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn batched_steps_equal_sessions_stepped_alone() {
    let mut batched = sessions();
    let mut alone: Vec<Session> = batched.iter().map(|s| s.fork().unwrap()).collect();
    // Decode rounds (pending token only), then a round mixing a prefill chunk and anchors.
    let rounds: Vec<Vec<Vec<TokenId>>> = vec![
        vec![vec![], vec![], vec![]],
        vec![vec![55], vec![ANCHOR[0]], vec![]],
        vec![stream(6, 7), vec![], vec![61, ANCHOR[0]]],
        vec![vec![], vec![], vec![]],
    ];
    for (r, round) in rounds.iter().enumerate() {
        let mut batch: Vec<(&mut Session, &[TokenId])> = batched
            .iter_mut()
            .zip(round)
            .map(|(s, t)| (s, t.as_slice()))
            .collect();
        let got = Session::forward_batch(&mut batch).unwrap();
        for (i, (s, tokens)) in alone.iter_mut().zip(round).enumerate() {
            let want = s.forward(tokens, OutputRows::Last).unwrap();
            let got = got[i].as_ref().unwrap();
            // f32 sums over differently stacked rows: the same math, so only rounding differs.
            assert!(max_diff(got, &want) < 1e-4, "round {r}, session {i}");
            assert_eq!(
                batched[i].cache().cells(),
                s.cache().cells(),
                "round {r}, session {i}"
            );
            assert_eq!(batched[i].tokens(), s.tokens());
            batched[i].accept(90 + r as TokenId);
            s.accept(90 + r as TokenId);
        }
    }
    // The anchored session pruned its closed segments in both.
    assert!(alone[1].stats().reduction > 0.0);
}

#[test]
fn a_batch_on_two_models_is_refused_and_changes_nothing() {
    let mut a = sessions().remove(0);
    let other = Arc::new((*tiny_model().llama).clone());
    let mut b = Session::new(other, SessionConfig::causal(4), 16).unwrap();
    b.accept(3);
    let before = (a.tokens(), b.tokens());
    let mut batch: Vec<(&mut Session, &[TokenId])> = vec![(&mut a, &[]), (&mut b, &[])];
    assert!(Session::forward_batch(&mut batch).is_err());
    assert_eq!((a.tokens(), b.tokens()), before);
    assert_eq!(a.pending().len(), 1);
}
