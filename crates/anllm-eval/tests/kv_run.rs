//! `anllm eval kv`'s cell runner on the tiny seeded model: the full cell against one plain
//! causal forward (no session, no policy), every budgeted cell holding its budget after the
//! compression, a budget as large as the context changing nothing, and query-aware cells.

use std::sync::Arc;

use anllm::PolicyConfig;
use anllm::policy::Budget;
use anllm::testutil::{ANCHOR, causal_logits, tiny_anchors, tiny_model};
use anllm::{SessionConfig, TokenId};
use anllm_eval::kv::run::{Cell, KvRunConfig, Prepared, budget_entries, run_item};
use anllm_eval::kv::{KvItem, KvTask};

fn prepared(question: bool) -> Prepared {
    let context: Vec<TokenId> = (0..40u32)
        .map(|i| {
            if i % 9 == 8 {
                ANCHOR[0]
            } else {
                20 + (i * 37) % 300
            }
        })
        .collect();
    Prepared {
        item: KvItem {
            task: KvTask::Passkey,
            length: 40,
            id: 0,
            context: String::new(),
            question: String::new(),
            answer_prefix: String::new(),
            answer: " 7".into(),
            depth: 0.5,
        },
        context_ids: context,
        question_ids: if question {
            vec![101, 102, 103]
        } else {
            Vec::new()
        },
        answer_ids: vec![201, 202, 203, 204],
    }
}

fn config() -> KvRunConfig {
    KvRunConfig {
        separators: tiny_anchors(),
        anchored: SessionConfig::anchored(tiny_anchors(), 16),
        max_new_tokens: 4,
        stop: Vec::new(),
        chunked: None,
    }
}

/// Sum of the gold answer's log-probabilities from one plain causal forward.
fn oracle_gold_ll(p: &Prepared) -> f64 {
    let all = [p.context_ids.as_slice(), &p.question_ids, &p.answer_ids].concat();
    let rows = causal_logits(&tiny_model().llama, &all);
    let first = p.context_ids.len() + p.question_ids.len() - 1;
    p.answer_ids
        .iter()
        .enumerate()
        .map(|(j, &gold)| {
            let row = &rows[first + j];
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
            f64::from(row[gold as usize] - lse)
        })
        .sum()
}

fn cells() -> Vec<Cell> {
    let mut cells = Vec::new();
    for name in ["streaming", "sepllm", "h2o", "tova", "snapkv", "knorm"] {
        for share in [0.25, 0.5] {
            let budget = Budget::Entries(budget_entries(share, 40));
            cells.push(Cell {
                policy: PolicyConfig::with_budget(name, budget).unwrap(),
                share: Some(share),
                query_aware: false,
            });
        }
    }
    cells.push(Cell {
        policy: PolicyConfig::Anchor,
        share: None,
        query_aware: false,
    });
    cells
}

#[test]
fn every_cell_holds_its_budget_and_the_full_cell_matches_a_plain_forward() {
    for question in [true, false] {
        let p = prepared(question);
        let model = tiny_model();
        let llama = Arc::clone(&model.llama);
        let records = run_item(&llama, &model.tokenizer, &p, &cells(), &config()).unwrap();
        assert_eq!(records.len(), 1 + cells().len());
        let full = &records[0];
        assert_eq!(full.policy, "full");
        assert_eq!((full.kv_entries, full.top1), (40, 1.0));
        assert!(full.kl.abs() < 1e-6, "{}", full.kl);
        let want = oracle_gold_ll(&p);
        assert!(
            (full.gold_ll - want).abs() < 1e-3,
            "{} vs {want}",
            full.gold_ll
        );
        assert_eq!(full.correct.is_some(), question);
        for r in &records[1..] {
            assert!(r.kl >= -1e-6 && (0.0..=1.0).contains(&r.top1), "{r:?}");
            assert!(r.gold_ll.is_finite() && r.gold_ll <= 0.0);
            match (r.policy.as_str(), r.share) {
                ("sepllm", Some(s)) => assert!(r.kv_entries >= budget_entries(s, 40)),
                ("anchor", None) => assert!(r.kv_entries < 40),
                (_, Some(s)) => assert_eq!(r.kv_entries, budget_entries(s, 40), "{r:?}"),
                _ => panic!("unexpected cell {r:?}"),
            }
        }
    }
}

#[test]
fn a_budget_as_large_as_the_context_changes_nothing() {
    let p = prepared(true);
    let model = tiny_model();
    let cells: Vec<Cell> = ["tova", "snapkv", "knorm", "h2o", "streaming"]
        .iter()
        .map(|name| Cell {
            policy: PolicyConfig::with_budget(name, Budget::Entries(100)).unwrap(),
            share: Some(1.0),
            query_aware: false,
        })
        .collect();
    let records = run_item(&model.llama, &model.tokenizer, &p, &cells, &config()).unwrap();
    for r in &records {
        assert_eq!(r.kv_entries, 40);
        assert!(r.kl.abs() < 1e-5 && r.top1 == 1.0, "{r:?}");
        assert!((r.gold_ll - records[0].gold_ll).abs() < 1e-4, "{r:?}");
        assert_eq!(r.generated, records[0].generated, "{}", r.policy);
    }
}

#[test]
fn a_chunked_prefill_holds_the_budget_during_the_prefill() {
    let p = prepared(true);
    let model = tiny_model();
    let budget = budget_entries(0.25, 40);
    let cells: Vec<Cell> = ["streaming", "tova", "knorm", "snapkv"]
        .iter()
        .map(|name| Cell {
            policy: PolicyConfig::with_budget(name, Budget::Entries(budget)).unwrap(),
            share: Some(0.25),
            query_aware: false,
        })
        .collect();
    let chunked = KvRunConfig {
        chunked: Some(8),
        ..config()
    };
    let one_shot = run_item(&model.llama, &model.tokenizer, &p, &cells, &config()).unwrap();
    let records = run_item(&model.llama, &model.tokenizer, &p, &cells, &chunked).unwrap();
    assert_eq!(records.len(), one_shot.len());
    // The full cell is the same run either way.
    assert_eq!(records[0].gold_ll, one_shot[0].gold_ll);
    let step = 8.max(p.question_ids.len() + p.answer_ids.len() - 1);
    for (r, o) in records[1..].iter().zip(&one_shot[1..]) {
        assert_eq!(r.kv_entries, budget, "{r:?}");
        // Chunked: never more than the budget plus one step, the prefill included.
        assert!(r.kv_peak_entries <= budget + step, "{r:?}");
        // One-shot reports the peak after the compression only (the prefill held all 40).
        assert!(o.kv_peak_entries <= budget + step, "{o:?}");
        // Sinks and the newest entries do not depend on how the prompt was cut.
        if r.policy == "streaming" {
            assert_eq!(r.kv_entries, o.kv_entries);
        }
    }
}

/// A query-aware cell compresses the context and the question to a share of both. The first
/// answer token is predicted by the question's last row, computed before the compression, so
/// it is the full cache's; with a budget that keeps everything, every row is.
#[test]
fn a_query_aware_cell_compresses_the_question_with_the_context() {
    let p = prepared(true);
    let model = tiny_model();
    let compressed = p.context_ids.len() + p.question_ids.len();
    let cell = |name: &str, budget: usize, share: f64| Cell {
        policy: PolicyConfig::with_budget(name, Budget::Entries(budget)).unwrap(),
        share: Some(share),
        query_aware: true,
    };
    let small = budget_entries(0.25, compressed);
    let cells = vec![cell("snapkv", small, 0.25), cell("tova", 100, 1.0)];
    let records = run_item(&model.llama, &model.tokenizer, &p, &cells, &config()).unwrap();
    let (full, snap, all) = (&records[0], &records[1], &records[2]);
    assert_eq!((snap.policy.as_str(), snap.query_aware), ("snapkv+q", true));
    assert_eq!((snap.context, snap.kv_entries), (compressed, small));
    // The question is not run after the compression: the peak is the budget plus the answer
    // step, never the question.
    assert_eq!(snap.kv_peak_entries, small + p.answer_ids.len() - 1);
    assert!(
        snap.correct.is_some(),
        "the item has a question: it is answered"
    );
    assert_eq!(all.kv_entries, compressed);
    assert!(all.kl.abs() < 1e-5 && all.top1 == 1.0, "{all:?}");
    assert!((all.gold_ll - full.gold_ll).abs() < 1e-4, "{all:?}");
    assert_eq!(all.generated, full.generated);
    assert_eq!(all.kv_peak_entries, compressed + p.answer_ids.len() - 1);
}
