//! The policy test matrix: every built-in policy of `PolicyConfig::examples()` (and a policy of
//! the caller's, passed as a trait object) runs a chunked prefill plus 32 decode steps on the
//! tiny seeded model, with anchors, pads and a pinned span in the stream. After every step the
//! session invariants must hold: cells ordered, every layer holding one entry per cell, the
//! cache within the policy's bound, finite logits. Adding a policy to `examples()` adds it here.

use std::sync::{Arc, Mutex};

use anllm::policy::{Eviction, KvPolicy, Observation, PolicyConfig};
use anllm::testutil::{ANCHOR, PAD, tiny_anchors, tiny_model};
use anllm::{AttentionStats, MaskRule, OutputRows, Role, Session, SessionConfig, TokenId};

/// A stream with an anchor every few tokens and a pad: 40 prompt ids then 32 decode ids.
fn stream() -> Vec<TokenId> {
    (0..72u32)
        .map(|i| match i % 7 {
            6 => ANCHOR[(i as usize / 7) % 2],
            _ if i == 17 => PAD,
            _ => 20 + (i * 37) % 300,
        })
        .collect()
}

/// Most entries a policy may hold once so many tokens have been seen.
type Bound<'a> = &'a dyn Fn(usize) -> Option<usize>;

/// The session invariants after a step of `session` whose policy keeps at most `bound`.
fn check_step(session: &Session, bound: Bound, logits: &[f32], step: usize) {
    let cache = session.cache();
    let cells = cache.cells();
    cells
        .check_invariants()
        .unwrap_or_else(|e| panic!("step {step}: {e}"));
    assert!(cache.is_consistent(), "step {step}: layers out of step");
    // Per layer: a per-layer or per-head policy (tova_layer, snapkv_head, knorm_head) bounds
    // each layer's store (every KV head of it), and the cells are
    // then the union of what the layers hold; for the others every layer holds every cell.
    let layers = session.model().config().num_hidden_layers;
    if let Some(max) = bound(cells.next_pos().0 as usize) {
        for l in 0..layers {
            let n = cache.layer_len(l);
            assert!(n <= max, "step {step}: layer {l} holds {n} > {max}");
        }
    }
    assert!(logits.iter().all(|x| x.is_finite()), "step {step}: logits");
    let stats = session.stats();
    let held: usize = (0..layers).map(|l| cache.layer_len(l)).sum();
    assert_eq!(stats.entries, held.div_ceil(layers));
    assert_eq!(stats.kv_bytes, held * cache.bytes_per_entry() / layers);
    if !cache.is_ragged() {
        assert_eq!(stats.entries, cache.len());
    }
    assert!(stats.peak_entries >= stats.entries);
    assert_eq!(stats.tokens_seen, cells.next_pos().0 as usize);
}

/// Runs the whole stream through `session` (prefill of 40 in chunks of 6, then 32 decode
/// steps), checking the invariants after every step; returns the session's bound.
fn run_matrix_row(mut session: Session, bound: Bound) -> Session {
    let tokens = stream();
    for (step, chunk) in tokens[..40].chunks(6).enumerate() {
        let logits = session.forward(chunk, OutputRows::Last).unwrap();
        check_step(
            &session,
            bound,
            &logits.flatten_all().unwrap().to_vec1().unwrap(),
            step,
        );
    }
    for (step, &t) in tokens[40..].iter().enumerate() {
        let logits = session.forward(&[t], OutputRows::Last).unwrap();
        check_step(
            &session,
            bound,
            &logits.flatten_all().unwrap().to_vec1().unwrap(),
            step,
        );
    }
    assert_eq!(session.stats().tokens_seen, tokens.len());
    session
}

fn config(policy: PolicyConfig) -> SessionConfig {
    SessionConfig {
        pins: std::iter::once(2..4).collect(),
        ..SessionConfig::anchored(tiny_anchors(), 6).with_policy(policy)
    }
}

#[test]
fn every_builtin_policy_keeps_the_session_invariants_and_its_bound() {
    for policy in PolicyConfig::examples() {
        let built = policy.build();
        let bound = |seen| built.max_entries_at(seen);
        // Per-head keeping needs causal attention: those run without the anchor grid.
        let cfg = match policy.is_per_head() {
            true => SessionConfig {
                pins: std::iter::once(2..4).collect(),
                ..SessionConfig::causal(6).with_policy(policy)
            },
            false => config(policy),
        };
        let session = Session::new(Arc::clone(&tiny_model().llama), cfg, 8).unwrap();
        let session = run_matrix_row(session, &bound);
        let n = stream().len();
        let kept = session.cache().cells();
        match policy {
            PolicyConfig::Full => assert_eq!(kept.len(), stream().len()),
            // Semantic check: exactly anchors, the pinned span and the open segment remain.
            PolicyConfig::Anchor => {
                let open = kept.open_segment();
                for c in kept.as_slice() {
                    let pinned = (2..4).contains(&c.pos.0);
                    assert!(
                        c.role == Role::Anchor || pinned || c.segment == open,
                        "{c:?}"
                    );
                    assert_ne!(c.role, Role::Pad);
                }
            }
            PolicyConfig::Streaming { sinks, window } => {
                let pos: Vec<u32> = kept.as_slice().iter().map(|c| c.pos.0).collect();
                let n = stream().len() as u32;
                let want: Vec<u32> = (0..sinks as u32).chain(n - window as u32..n).collect();
                assert_eq!(pos, want, "{policy:?}");
            }
            // The stream is longer than the budget: exactly `budget` entries remain, the last
            // `recent` of the stream among them.
            PolicyConfig::H2o { budget, recent } => {
                let budget = budget.entries(n);
                assert_eq!(kept.len(), budget, "{policy:?}");
                let tail: Vec<u32> = kept.as_slice()[budget - recent..]
                    .iter()
                    .map(|c| c.pos.0)
                    .collect();
                let want: Vec<u32> = (n - recent..n).map(|p| p as u32).collect();
                assert_eq!(tail, want, "{policy:?}");
            }
            PolicyConfig::Tova { budget } | PolicyConfig::Knorm { budget } => {
                assert_eq!(kept.len(), budget.entries(n), "{policy:?}")
            }
            // Every layer (every KV head of it) holds exactly `budget` entries; the cells are
            // their union.
            PolicyConfig::TovaLayer { budget }
            | PolicyConfig::SnapkvHead { budget, .. }
            | PolicyConfig::KnormHead { budget } => {
                let cache = session.cache();
                let layers = session.model().config().num_hidden_layers;
                for l in 0..layers {
                    assert_eq!(cache.layer_len(l), budget.entries(n), "{policy:?}");
                }
                assert!(kept.len() >= budget.entries(n));
            }
            // Exactly `budget` entries, the newest `window` of the stream among them.
            PolicyConfig::Snapkv { budget, window } => {
                let budget = budget.entries(n);
                assert_eq!(kept.len(), budget, "{policy:?}");
                let window = window.min(budget - 1);
                let tail: Vec<u32> = kept.as_slice()[budget - window..]
                    .iter()
                    .map(|c| c.pos.0)
                    .collect();
                let want: Vec<u32> = (n - window..n).map(|p| p as u32).collect();
                assert_eq!(tail, want, "{policy:?}");
            }
            // Exactly the sinks, every anchor (separator) of the stream and the last `window`.
            PolicyConfig::Sepllm { sinks, window } => {
                let tokens = stream();
                let pos: Vec<u32> = kept.as_slice().iter().map(|c| c.pos.0).collect();
                let want: Vec<u32> = (0..n)
                    .filter(|&i| i < sinks || i >= n - window || ANCHOR.contains(&tokens[i]))
                    .map(|i| i as u32)
                    .collect();
                assert_eq!(pos, want, "{policy:?}");
                assert!(policy.build().max_entries().is_none());
            }
        }
    }
}

#[test]
fn every_builtin_policy_keeps_its_bound_under_the_causal_rule_with_separators() {
    // SepLLM's setting: plain causal attention, the anchor set only marking separators. Every
    // key is visible, so attention-scored policies see mass on every entry.
    for policy in PolicyConfig::examples() {
        let built = policy.build();
        let bound = |seen| built.max_entries_at(seen);
        let cfg = SessionConfig {
            anchors: tiny_anchors(),
            rule: MaskRule::Causal,
            ..SessionConfig::causal(6).with_policy(policy)
        };
        // Per-head keeping refuses an anchor set (its grid may hide pads from some heads'
        // entries): a clear error, checked in tests/per_layer.rs; the first matrix runs them.
        if policy.is_per_head() {
            assert!(Session::new(Arc::clone(&tiny_model().llama), cfg, 8).is_err());
            continue;
        }
        let session = Session::new(Arc::clone(&tiny_model().llama), cfg, 8).unwrap();
        // Entries held per layer (the mean over layers; the cell count for shared policies).
        let kept = run_matrix_row(session, &bound).stats().entries;
        if let Some(max) = bound(stream().len()) {
            assert_eq!(kept, max, "{policy:?}");
        }
    }
}

/// What a policy saw of one step: cells, appended slots, attention.
type Seen = (usize, std::ops::Range<usize>, AttentionStats);

/// A caller's policy: records every observation and keeps the 5 entries on which the step put
/// the most attention.
#[derive(Debug, Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl KvPolicy for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn plan(&mut self, obs: &Observation<'_>) -> Eviction {
        let stats = obs.attention.expect("attention requested").clone();
        let total = stats.total();
        self.seen
            .lock()
            .unwrap()
            .push((obs.cells.len(), obs.appended.clone(), stats));
        let mut slots: Vec<usize> = (0..total.len()).collect();
        slots.sort_by(|&a, &b| total[b].total_cmp(&total[a]));
        Eviction::from_slots(slots.into_iter().skip(5))
    }

    fn fork(&self) -> Box<dyn KvPolicy> {
        Box::new(self.clone())
    }

    fn needs_attention(&self) -> bool {
        true
    }

    fn max_entries(&self) -> Option<usize> {
        Some(5)
    }
}

#[test]
fn a_callers_policy_sees_attention_mass_that_sums_per_query_and_head() {
    let recorder = Recorder::default();
    let cfg = config(PolicyConfig::Full);
    let llama = Arc::clone(&tiny_model().llama);
    let heads = llama.config().num_attention_heads;
    let layers = llama.config().num_hidden_layers;
    let session = Session::with_policy(llama, cfg, Box::new(recorder.clone()), 8).unwrap();
    assert_eq!(session.policy_name(), "recorder");
    run_matrix_row(session, &|_| Some(5));
    let seen = recorder.seen.lock().unwrap();
    assert_eq!(seen.len(), 7 + 32);
    for (cells, appended, stats) in seen.iter() {
        assert_eq!(stats.num_layers(), layers);
        assert_eq!(stats.heads(), heads);
        assert_eq!(stats.queries(), appended.len());
        assert_eq!(appended.end, *cells);
        for l in 0..layers {
            let mass = stats.layer(l).unwrap();
            assert_eq!(mass.len(), *cells);
            // Every query row of every head distributes a mass of 1 over the keys it sees.
            let sum: f32 = mass.iter().sum();
            let want = (appended.len() * heads) as f32;
            assert!(
                (sum - want).abs() < 1e-3 * want,
                "layer {l}: {sum} vs {want}"
            );
            assert!(mass.iter().all(|m| *m >= 0.0));
        }
    }
}

#[test]
fn attention_mass_is_zero_on_keys_the_mask_hides() {
    // t t A t: the last token cannot see slots 0 and 1 (closed segment); pads nowhere.
    let recorder = Recorder::default();
    let cfg = SessionConfig::anchored(tiny_anchors(), 4).with_policy(PolicyConfig::Full);
    let llama = Arc::clone(&tiny_model().llama);
    let mut session = Session::with_policy(llama, cfg, Box::new(recorder.clone()), 8).unwrap();
    session
        .forward(&[30, 31, ANCHOR[0]], OutputRows::Last)
        .unwrap();
    session.forward(&[32], OutputRows::Last).unwrap();
    let seen = recorder.seen.lock().unwrap();
    let (_, _, stats) = &seen[1];
    for l in 0..stats.num_layers() {
        let mass = stats.layer(l).unwrap();
        assert!(mass.len() >= 3, "{mass:?}");
        // The recorder kept the 5 largest: the first step's 3 entries and the new one remain.
        assert_eq!(&mass[..2], &[0.0, 0.0], "layer {l}");
        assert!(mass[2] > 0.0 && mass[3] > 0.0);
    }
}
