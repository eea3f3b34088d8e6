//! Evaluation scoring on the tiny seeded model: sharing the context's work (with and without
//! anchor pruning) gives the log-likelihoods of one masked forward per request, and a task run's
//! C⇓ bookkeeping matches the cache it measured.

use anllm::testutil::{ANCHOR, tiny_anchors, tiny_model};
use anllm::{AnchorSet, MaskRule, PolicyConfig, SessionConfig};
use anllm_eval::prompt::{FewShot, Request};
use anllm_eval::qa::{EvalMode, QaConfig, TaskData, run_task};
use anllm_eval::scoring::{score_each, score_shared};
use anllm_eval::tasks::{Choice, Doc, Task};

fn request(context: &[u32], continuation: &[u32]) -> Request {
    Request::new(context, continuation)
}

fn assert_close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-3, "{a:?} vs {b:?}");
    }
}

#[test]
fn shared_scoring_equals_one_forward_per_request() {
    let model = &tiny_model().llama;
    let a = ANCHOR[0];
    let shared_ctx = [5, 6, a, 7, 8, 9, a, 20, 21];
    let same = vec![
        request(&shared_ctx, &[30]),
        request(&shared_ctx, &[31, a, 32, 33]),
        request(&shared_ctx, &[40, 41, 42]),
    ];
    // WinoGrande-like: contexts differ after a common prefix; one context is a prefix of another.
    let differ = vec![
        request(&[5, 6, a, 7, 8, 50], &[60, 61, a]),
        request(&[5, 6, a, 7, 8, 51, 52], &[60, 61, a]),
        request(&[5, 6, a, 7], &[8, 50]),
    ];
    for chunk in [1, 3, 64] {
        let anchored = SessionConfig::anchored(tiny_anchors(), chunk);
        let causal = SessionConfig::causal(chunk);
        for requests in [&same, &differ] {
            let mask = score_each(model, &anchored, requests).unwrap();
            let pruned = SessionConfig {
                policy: PolicyConfig::Anchor,
                ..anchored.clone()
            };
            let (cached, stats) = score_shared(model, &pruned, requests).unwrap();
            assert_close(&cached, &mask);
            let full = SessionConfig {
                policy: PolicyConfig::Full,
                ..anchored.clone()
            };
            assert_close(&score_shared(model, &full, requests).unwrap().0, &mask);
            assert!(stats.entries <= stats.tokens_seen);

            let each = score_each(model, &causal, requests).unwrap();
            assert_close(&score_shared(model, &causal, requests).unwrap().0, &each);
        }
    }
}

#[test]
fn the_pruned_prefix_keeps_anchors_and_the_open_segment() {
    let model = &tiny_model().llama;
    let a = ANCHOR[0];
    let ctx = [5, 6, a, 7, 8, 9, a, 20, 21];
    let cfg = SessionConfig::anchored(tiny_anchors(), 4);
    let (_, stats) =
        score_shared(model, &cfg, &[request(&ctx, &[30]), request(&ctx, &[31])]).unwrap();
    assert_eq!(stats.tokens_seen, 9);
    assert_eq!(stats.entries, 4); // A2, A6, t7, t8
    assert!((stats.reduction - (1.0 - 4.0 / 9.0)).abs() < 1e-12);
}

/// A doc whose context is `text` and whose choices are `choices`, in the tiny vocabulary.
fn doc(text: &str, choices: &[&str], gold: usize) -> Doc {
    Doc {
        text: text.into(),
        target: format!(" {}", choices[gold]),
        choices: choices
            .iter()
            .map(|c| Choice {
                context: text.into(),
                continuation: format!(" {c}"),
            })
            .collect(),
        gold,
    }
}

#[test]
fn a_task_run_in_cache_mode_agrees_with_mask_and_counts_reduction() {
    let loaded = tiny_model();
    let tok = &loaded.tokenizer;
    let dot = tok.token_id(".").expect("a `.` piece");
    let anchors = AnchorSet::new([dot], None);
    let pool = vec![
        doc("It is red. Is it hot?", &["yes", "no"], 0),
        doc("Birds fly. Fish swim. Do cats fly?", &["yes", "no"], 1),
        doc("Snow is cold. Is snow hot?", &["yes", "no"], 1),
    ];
    let data = TaskData {
        task: Task::Boolq,
        docs: vec![
            doc("The sky is blue. Is the sky blue?", &["yes", "no"], 0),
            doc("A dog barks. Cats meow. Do dogs meow?", &["yes", "no"], 1),
        ],
        shots: FewShot {
            pool,
            k: 2,
            seed: 7,
        },
    };
    let cfg = QaConfig {
        mode: EvalMode::Cache,
        anchored: SessionConfig {
            rule: MaskRule::AnSan,
            ..SessionConfig::anchored(anchors, 5)
        },
        insert: None,
        speedup_items: usize::MAX,
    };
    let mut calls = 0;
    let (summary, records) =
        run_task(&loaded.llama, tok, &data, &cfg, None, &mut || calls += 1).unwrap();
    assert_eq!((calls, summary.items, records.len()), (2, 2, 2));
    assert_eq!(summary.timed_items, 2);
    assert_eq!(summary.mask_agreement, Some(1.0));
    assert!(summary.mask_max_diff.unwrap() < 1e-3);
    assert!(summary.speedup.is_some() && summary.full_vs_anchor_cache.is_some());
    for r in &records {
        let cache = r.cache.as_ref().unwrap();
        // The whole context was prefilled with pruning: what it kept is what C⇓ counts.
        assert_eq!(cache.tokens_seen, r.context_tokens);
        assert_eq!(cache.entries, r.context_kept);
        assert!(r.demo_tokens > 0 && r.demo_kept < r.demo_tokens);
        assert!(r.context.as_str().unwrap().contains("\n\n"));
    }
    let seen: usize = records.iter().map(|r| r.context_tokens).sum();
    let kept: usize = records.iter().map(|r| r.context_kept).sum();
    let expected = 1.0 - kept as f64 / seen as f64;
    assert!((summary.c_context.ratio_of_sums().unwrap() - expected).abs() < 1e-12);
}
