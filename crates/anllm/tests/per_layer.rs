//! Per-layer keeping (`tova_layer`, kvpress's granularity): layers end up holding different
//! entries, each layer stays within the budget after every step, the memory counted is what
//! the layers hold, and on a one-layer model it is exactly the shared-set `tova` (the oracle:
//! with one layer, one set per layer is one set for the model).

use std::sync::Arc;

use anllm::policy::Budget;
use anllm::testutil::{HfLayout, TinySpec, tiny_anchors, tiny_model, write_hf_dir};
use anllm::{
    Llama, OutputRows, PolicyConfig, Session, SessionConfig, TokenId, WeightDtype, load_model,
};
use candle_core::Device;

fn stream(n: u32) -> Vec<TokenId> {
    (0..n).map(|i| 20 + (i * 53 + 7) % 300).collect()
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
    for l in 0..layers {
        assert!(
            c.layer_len(l) <= budget,
            "layer {l}: {} > {budget}",
            c.layer_len(l)
        );
    }
    // Bytes are what the layers hold, not cells × a full entry.
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
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec {
        layers: 1,
        ..TinySpec::gqa()
    };
    write_hf_dir(dir.path(), &spec, HfLayout::Safetensors).unwrap();
    let model = load_model(dir.path(), WeightDtype::F32, &Device::Cpu)
        .unwrap()
        .llama;
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
