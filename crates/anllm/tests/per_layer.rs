//! Per-layer keeping (`tova_layer`) and per-head keeping (`snapkv_head`, `knorm_head`),
//! kvpress's granularities: layers (or the KV heads of a layer) end up holding different
//! entries, every layer and head stays within the budget after every step, the memory counted
//! is what they hold, and on a model with one layer (and, per head, one KV head) each is exactly
//! its shared-set twin (the oracle: with one lane, one set per lane is one set for the model).

use std::sync::Arc;

use anllm::cache::LayerCells;
use anllm::policy::Budget;
use anllm::testutil::{HfLayout, TinySpec, tiny_anchors, tiny_model, write_hf_dir};
use anllm::{
    Llama, OutputRows, PolicyConfig, Session, SessionConfig, TokenId, WeightDtype, load_model,
};
use candle_core::Device;

fn stream(n: u32) -> Vec<TokenId> {
    (0..n).map(|i| 20 + (i * 53 + 7) % 300).collect()
}

/// A seeded tiny GQA model of one layer with `kv_heads` KV heads, loaded from an HF directory.
fn one_layer_model(kv_heads: Option<usize>) -> Arc<Llama> {
    let dir = tempfile::tempdir().unwrap();
    let gqa = TinySpec::gqa();
    let spec = TinySpec {
        layers: 1,
        kv_heads: kv_heads.unwrap_or(gqa.kv_heads),
        ..gqa
    };
    write_hf_dir(dir.path(), &spec, HfLayout::Safetensors).unwrap();
    load_model(dir.path(), WeightDtype::F32, &Device::Cpu)
        .unwrap()
        .llama
}

/// Prefills 24 tokens in chunks of 5, then decodes 12, checking the bound after every step.
fn run(model: Arc<Llama>, cfg: SessionConfig, budget: usize) -> (Session, Vec<Vec<f32>>) {
    let mut s = Session::new(model, cfg, 8).unwrap();
    let tokens = stream(36);
    let mut rows = Vec::new();
    for chunk in tokens[..24].chunks(5) {
        rows.extend(
            s.forward(chunk, OutputRows::All)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
        );
        check(&s, budget);
    }
    for &t in &tokens[24..] {
        rows.extend(
            s.forward(&[t], OutputRows::Last)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
        );
        check(&s, budget);
    }
    (s, rows)
}

fn check(s: &Session, budget: usize) {
    let c = s.cache();
    assert!(c.is_consistent());
    let layers = s.model().config().num_hidden_layers;
    let kv_heads = s.model().config().kv_heads();
    for l in 0..layers {
        assert!(
            c.layer_len(l) <= budget,
            "layer {l}: {} > {budget}",
            c.layer_len(l)
        );
        if let Some(lanes) = c.lanes() {
            for h in 0..kv_heads {
                assert_eq!(lanes.of(l, h).len(), c.layer_len(l), "lane {l}.{h}");
            }
        }
    }
    // Bytes are what the heads hold (every head of a layer holds the same count).
    let held: usize = (0..layers).map(|l| c.layer_len(l)).sum();
    assert_eq!(s.stats().kv_bytes, held * c.bytes_per_entry() / layers);
    assert!(s.stats().entries <= budget);
}

#[test]
fn per_layer_tova_keeps_every_layer_within_budget_and_layers_differ() {
    let budget = 6;
    let policy = PolicyConfig::TovaLayer {
        budget: Budget::Entries(budget),
    };
    let model = Arc::clone(&tiny_model().llama);
    let (s, _) = run(model, SessionConfig::causal(5).with_policy(policy), budget);
    let held = s
        .cache()
        .lanes()
        .expect("two layers that keep different entries");
    assert_ne!(held.of(0, 0), held.of(1, 0));
    // Per layer, every KV head holds the same cells.
    for l in 0..2 {
        assert_eq!(held.of(l, 0), held.of(l, 1));
    }
    // The cells are the union of what the layers hold.
    let union: std::collections::BTreeSet<u32> = held.all().iter().flatten().copied().collect();
    assert_eq!(union.len(), s.cache().len());
}

#[test]
fn per_layer_tova_under_an_anchor_grid_narrows_the_grid_per_layer() {
    // Anchors mark segments and the AnSAN grid applies; the per-layer cache still runs.
    let budget = 7;
    let cfg = SessionConfig::anchored(tiny_anchors(), 5).with_policy(PolicyConfig::TovaLayer {
        budget: Budget::Entries(budget),
    });
    run(Arc::clone(&tiny_model().llama), cfg, budget);
}

#[test]
fn on_a_one_layer_model_per_layer_tova_is_tova() {
    let model = one_layer_model(None);
    let budget = 5;
    let run_with = |policy| {
        let cfg = SessionConfig::causal(5).with_policy(policy);
        run(Arc::clone(&model), cfg, budget)
    };
    let b = Budget::Entries(budget);
    let (shared, want) = run_with(PolicyConfig::Tova { budget: b });
    let (layered, got) = run_with(PolicyConfig::TovaLayer { budget: b });
    assert_eq!(got, want, "logits differ");
    assert_eq!(layered.cache().cells(), shared.cache().cells());
    assert!(!layered.cache().is_ragged());
}

fn policies(budget: usize) -> [(PolicyConfig, PolicyConfig); 2] {
    let b = Budget::Entries(budget);
    [
        (
            PolicyConfig::Snapkv {
                budget: b,
                window: 2,
            },
            PolicyConfig::SnapkvHead {
                budget: b,
                window: 2,
            },
        ),
        (
            PolicyConfig::Knorm { budget: b },
            PolicyConfig::KnormHead { budget: b },
        ),
    ]
}

#[test]
fn per_head_policies_keep_every_head_within_budget_and_heads_differ() {
    let budget = 6;
    for (_, policy) in policies(budget) {
        let model = Arc::clone(&tiny_model().llama);
        let (s, _) = run(model, SessionConfig::causal(5).with_policy(policy), budget);
        let c = s.cache();
        let lanes = c.lanes().expect("heads that keep different entries");
        assert_eq!(lanes.kv_heads(), 2);
        let per_head = (0..2).any(|l| matches!(c.layer_cells(l), LayerCells::PerHead(_)));
        assert!(per_head, "{policy:?}: no layer whose heads differ");
        // The cells are the union of what the lanes hold.
        let union: std::collections::BTreeSet<u32> =
            lanes.all().iter().flatten().copied().collect();
        assert_eq!(union.len(), c.len(), "{policy:?}");
    }
}

#[test]
fn on_a_one_lane_model_per_head_policies_are_the_shared_ones() {
    let model = one_layer_model(Some(1));
    let budget = 5;
    for (shared, per_head) in policies(budget) {
        let (a, want) = run(
            Arc::clone(&model),
            SessionConfig::causal(5).with_policy(shared),
            budget,
        );
        let (b, got) = run(
            Arc::clone(&model),
            SessionConfig::causal(5).with_policy(per_head),
            budget,
        );
        assert_eq!(got, want, "{per_head:?}: logits differ");
        assert_eq!(b.cache().cells(), a.cache().cells());
        assert!(!b.cache().is_ragged());
    }
}

#[test]
fn a_per_head_policy_under_the_ansan_grid_is_a_clear_error() {
    let cfg = SessionConfig::anchored(tiny_anchors(), 5).with_policy(PolicyConfig::KnormHead {
        budget: Budget::Entries(4),
    });
    let err = Session::new(Arc::clone(&tiny_model().llama), cfg, 8).unwrap_err();
    assert!(err.to_string().contains("per KV head"), "{err}");
}
