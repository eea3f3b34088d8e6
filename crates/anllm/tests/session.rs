//! Sessions as a server uses them: they own an `Arc` of the model, continue across turns
//! (turn 2 prefills only its own tokens, and the result equals one session over the whole
//! stream), roll a failed step back, fork, pin cached tokens, and reset completely.

use std::sync::Arc;

use anllm::generate::{Flow, GenerateRequest, StopReason, TokenSink, generate};
use anllm::testutil::write_hf_dir;
use anllm::testutil::{
    ANCHOR, HfLayout, TOL_F32, TinySpec, max_abs_diff, tiny_anchors, tiny_model,
};
use anllm::{LoadedModel, OutputRows, Sampling, Session, SessionConfig, TokenId, WeightDtype};
use candle_core::Device;

fn prompt(n: u32, seed: u32) -> Vec<TokenId> {
    (0..n)
        .map(|i| match i % 5 {
            4 => ANCHOR[0],
            _ => 20 + (i * 31 + seed * 7) % 300,
        })
        .collect()
}

fn rows(t: candle_core::Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().unwrap()
}

/// A model of its own (fault injection must not touch the shared tiny model).
fn private_model() -> LoadedModel {
    let dir = tempfile::tempdir().unwrap();
    write_hf_dir(dir.path(), &TinySpec::gqa(), HfLayout::Safetensors).unwrap();
    anllm::load_model(dir.path(), WeightDtype::F32, &Device::Cpu).unwrap()
}

#[test]
fn a_failed_step_rolls_the_cache_back() {
    let model = private_model();
    let cfg = SessionConfig::anchored(tiny_anchors(), 4);
    let mut session = Session::new(Arc::clone(&model.llama), cfg.clone(), 8).unwrap();
    let first = prompt(11, 1);
    session.prefill(&first, 0).unwrap();
    let (before_cells, before_stats) = (session.cache().cells().clone(), session.stats());
    // Layer 0 has appended its K/V when the step fails; layer 1 has not.
    model.llama.inject_fault_after_layer(Some(0));
    let err = session
        .forward(&[40, 41, ANCHOR[1]], OutputRows::Last)
        .unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_eq!(session.cache().cells(), &before_cells);
    assert!(session.cache().is_consistent());
    assert_eq!(session.stats(), before_stats);
    assert_eq!(session.tokens(), first);
    // The session goes on as if the failed step never happened.
    model.llama.inject_fault_after_layer(None);
    let next = [40, 41, ANCHOR[1], 42];
    let got = rows(session.forward(&next, OutputRows::All).unwrap());
    let mut fresh = Session::new(Arc::clone(&model.llama), cfg, 8).unwrap();
    let want = rows(
        fresh
            .prefill(&[first.as_slice(), &next].concat(), first.len())
            .unwrap(),
    );
    assert!(max_abs_diff(&got, &want) <= TOL_F32);
}

#[test]
fn a_failed_prefill_keeps_its_pending_tokens() {
    let model = private_model();
    let cfg = SessionConfig::causal(4);
    let mut session = Session::new(Arc::clone(&model.llama), cfg, 8).unwrap();
    session.accept(33);
    model.llama.inject_fault_after_layer(Some(1));
    assert!(session.prefill(&[34, 35], 0).is_err());
    assert_eq!(session.pending(), &[33]);
    assert_eq!(session.cache().len(), 0);
}

#[test]
fn turn_two_prefills_only_its_tokens_and_equals_one_stream() {
    let llama = Arc::clone(&tiny_model().llama);
    let cfg = SessionConfig::anchored(tiny_anchors(), 5);
    let (turn1, turn2) = (prompt(13, 2), prompt(9, 3));
    let mut session = Session::new(Arc::clone(&llama), cfg.clone(), 8).unwrap();
    session.prefill(&turn1, turn1.len() - 1).unwrap();
    session.accept(77); // a sampled answer token: pending, run with turn 2
    let seen_before = session.stats().tokens_seen;
    let got = rows(session.prefill(&turn2, 0).unwrap());
    assert_eq!(session.stats().tokens_seen - seen_before, 1 + turn2.len());
    let whole = [turn1.as_slice(), &[77], &turn2].concat();
    let mut one = Session::new(llama, cfg, 8).unwrap();
    let want = rows(one.prefill(&whole, turn1.len() + 1).unwrap());
    assert!(max_abs_diff(&got, &want) <= TOL_F32);
    assert_eq!(session.cache().cells(), one.cache().cells());
    assert_eq!(session.tokens(), whole);
}

struct Collect(Vec<TokenId>);

impl TokenSink for Collect {
    fn token(&mut self, id: TokenId, _text: &str) -> anllm::Result<Flow> {
        self.0.push(id);
        Ok(Flow::Continue)
    }
}

#[test]
fn generate_continues_the_session_it_is_given() {
    let model = tiny_model();
    let cfg = SessionConfig::anchored(tiny_anchors(), 8);
    let mut session = Session::new(Arc::clone(&model.llama), cfg.clone(), 64).unwrap();
    let request = |prompt: Vec<TokenId>| GenerateRequest {
        prompt,
        max_tokens: 6,
        sampling: Sampling::default(),
    };
    let (turn1, turn2) = (prompt(12, 4), prompt(7, 5));
    let mut out1 = Collect(Vec::new());
    let s1 = generate(
        &mut session,
        &model.tokenizer,
        &request(turn1.clone()),
        &mut out1,
    )
    .unwrap();
    assert_eq!((s1.prompt_tokens, s1.cached_tokens), (12, 0));
    let mut out2 = Collect(Vec::new());
    let s2 = generate(
        &mut session,
        &model.tokenizer,
        &request(turn2.clone()),
        &mut out2,
    )
    .unwrap();
    // Turn 2 ran the last answer token (pending) and its own 7 tokens, nothing else.
    let answered = s1.generated_tokens;
    assert_eq!(s2.cached_tokens, 12 + answered - 1);
    assert_eq!(s2.prompt_tokens, 1 + 7);
    assert_eq!(s2.stop_reason, StopReason::Length);
    // The same answer as one greedy generation over the whole history in a fresh session.
    let history = [turn1.as_slice(), &out1.0, &turn2].concat();
    let mut fresh = Session::new(Arc::clone(&model.llama), cfg, 64).unwrap();
    let mut out3 = Collect(Vec::new());
    generate(&mut fresh, &model.tokenizer, &request(history), &mut out3).unwrap();
    assert_eq!(out2.0, out3.0);
}

/// Two turns of `max_tokens` each in one session; the generated ids of each turn.
fn two_turns(sampling: Sampling, max_tokens: usize) -> [Vec<TokenId>; 2] {
    let model = tiny_model();
    let cfg = SessionConfig::anchored(tiny_anchors(), 8);
    let mut session = Session::new(Arc::clone(&model.llama), cfg, 64).unwrap();
    [prompt(12, 4), prompt(7, 5)].map(|turn| {
        let req = GenerateRequest {
            prompt: turn,
            max_tokens,
            sampling: sampling.clone(),
        };
        let mut out = Collect(Vec::new());
        generate(&mut session, &model.tokenizer, &req, &mut out).unwrap();
        out.0
    })
}

/// A presence penalty far above any logit of the tiny model, over a window of the whole
/// stream, forbids every token already in it: no generated token repeats one of the prompts,
/// of the earlier turn's answer or of its own turn. Without it greedy decoding does repeat.
#[test]
fn generate_penalties_see_the_whole_stream_across_turns() {
    let seen_before = |outs: &[Vec<TokenId>; 2], turn: usize, i: usize| {
        let prompts = [prompt(12, 4), prompt(7, 5)];
        let mut stream: Vec<TokenId> = prompts[0].clone();
        if turn == 1 {
            stream.extend(&outs[0]);
            stream.extend(&prompts[1]);
        }
        stream.extend(&outs[turn][..i]);
        stream.contains(&outs[turn][i])
    };
    let repeats = |outs: &[Vec<TokenId>; 2]| {
        (0..2).any(|t| (0..outs[t].len()).any(|i| seen_before(outs, t, i)))
    };
    let plain = two_turns(Sampling::default(), 12);
    assert!(repeats(&plain), "greedy decoding should repeat: {plain:?}");
    let forbid = Sampling {
        penalties: anllm::Penalties {
            presence: 1e4,
            last_n: usize::MAX,
            ..anllm::Penalties::default()
        },
        ..Sampling::default()
    };
    let penalized = two_turns(forbid, 12);
    assert_eq!(penalized.each_ref().map(Vec::len), [12, 12]);
    assert!(
        !repeats(&penalized),
        "a seen token came back: {penalized:?}"
    );
}

#[test]
fn fork_copies_the_cache_and_goes_its_own_way() {
    let llama = Arc::clone(&tiny_model().llama);
    let mut base = Session::new(llama, SessionConfig::anchored(tiny_anchors(), 4), 8).unwrap();
    base.prefill(&prompt(10, 6), 0).unwrap();
    let mut fork = base.fork().unwrap();
    let a = rows(fork.forward(&[50], OutputRows::Last).unwrap());
    let b = rows(base.forward(&[50], OutputRows::Last).unwrap());
    assert_eq!(a, b);
    fork.forward(&[51, 52], OutputRows::Last).unwrap();
    assert_eq!(base.stats().tokens_seen, 11);
    assert_eq!(fork.stats().tokens_seen, 13);
}

#[test]
fn pin_keeps_tokens_that_are_already_cached() {
    let llama = Arc::clone(&tiny_model().llama);
    let mut session = Session::new(llama, SessionConfig::anchored(tiny_anchors(), 8), 8).unwrap();
    session.forward(&[30, 31, 32], OutputRows::Last).unwrap(); // open segment, all cached
    session.pin(1..3);
    session.forward(&[ANCHOR[0], 33], OutputRows::Last).unwrap();
    let kept: Vec<u32> = session
        .cache()
        .cells()
        .iter()
        .map(|(_, c)| c.pos.0)
        .collect();
    // Pinned 1 and 2 survive the close of their segment; 0 does not.
    assert_eq!(kept, [1, 2, 3, 4]);
}

#[test]
fn reset_forgets_the_stream_and_the_peak() {
    let llama = Arc::clone(&tiny_model().llama);
    let mut session = Session::new(llama, SessionConfig::causal(8), 8).unwrap();
    session.prefill(&prompt(20, 7), 0).unwrap();
    assert_eq!(session.stats().peak_entries, 20);
    session.reset();
    let stats = session.stats();
    assert_eq!(
        (stats.tokens_seen, stats.entries, stats.peak_entries),
        (0, 0, 0)
    );
    assert!(session.tokens().is_empty());
}

#[test]
fn model_clone_is_cheap_and_debug_is_short() {
    let llama = tiny_model().llama.as_ref().clone();
    let text = format!("{llama:?}");
    assert!(text.len() < 300, "{text}");
    assert!(text.contains("layers: 2"), "{text}");
}

#[test]
fn a_compressed_anchored_stream_outruns_the_context_and_an_absolute_one_does_not() {
    let model = &tiny_model().llama; // context 128
    let long = prompt(300, 9);
    let compressed = SessionConfig {
        positions: anllm::PositionMode::Compressed,
        ..SessionConfig::anchored(tiny_anchors(), 10)
    };
    let mut s = Session::new(Arc::clone(model), compressed, 16).unwrap();
    s.prefill(&long, long.len() - 1).unwrap();
    assert_eq!(s.cache().next_pos().0, 300);
    assert!(s.context_used() < 128, "kept {}", s.context_used());
    assert_eq!(s.context_used(), s.cache().len());
    let absolute = SessionConfig::anchored(tiny_anchors(), 10);
    let mut a = Session::new(Arc::clone(model), absolute, 16).unwrap();
    a.prefill(&long[..100], 99).unwrap();
    assert_eq!(a.context_used(), 100);
    assert!(a.prefill(&long[100..], 199).is_err());
}
