//! Sessions saved to disk and restored (what a server does across restarts): the restored
//! session holds the same cells, history, pending token and statistics, and continues with
//! bit-identical logits to the session that never stopped (f32 and f16 caches, and caches whose
//! layers or KV heads hold different entries); a restore onto another model, a
//! damaged file or a missing directory is an error, not a panic.

use std::sync::Arc;

use anllm::policy::Budget;
use anllm::testutil::{ANCHOR, HfLayout, TinySpec, tiny_anchors, tiny_model, write_hf_dir};
use anllm::{
    KeepWarm, KvDtype, OutputRows, PolicyConfig, Session, SessionConfig, TokenId, WeightDtype,
};
use candle_core::Device;

fn stream(n: u32, seed: u32) -> Vec<TokenId> {
    (0..n)
        .map(|i| match i % 6 {
            5 => ANCHOR[0],
            _ => 20 + (i * 29 + seed * 11) % 300,
        })
        .collect()
}

fn configs() -> Vec<SessionConfig> {
    let mut pinned = SessionConfig::anchored(tiny_anchors(), 4);
    pinned.pins.push(2..5);
    // ep-nodigit's rule with 77 as a digit: the pending 77 makes the next anchor ordinary.
    let after_digit = SessionConfig::anchored(tiny_anchors().with_not_after([77]), 4);
    // ep-list's: that anchor id is a pinned mark, which the restored session keeps pinning.
    let marks = tiny_anchors().with_not_after([77]).with_pinned_marks(true);
    let list_marks = SessionConfig::anchored(marks, 4);
    // A local window: the restored policy must keep what the saved rule's window shows.
    let windowed = SessionConfig {
        rule: anllm::MaskRule::ansan_window(3),
        ..SessionConfig::anchored(tiny_anchors(), 4)
    };
    vec![
        SessionConfig::causal(5),
        pinned,
        after_digit,
        list_marks,
        windowed,
        SessionConfig {
            policy: PolicyConfig::Streaming {
                sinks: 2,
                window: 6,
            },
            ..SessionConfig::causal(3)
        },
        // Layers, then KV heads, that hold different entries: the lanes are saved too.
        SessionConfig::causal(5).with_policy(PolicyConfig::TovaLayer {
            budget: Budget::Entries(6),
        }),
        SessionConfig::causal(5).with_policy(PolicyConfig::SnapkvHead {
            budget: Budget::Entries(8),
            window: 2,
        }),
        SessionConfig::causal(5).with_policy(PolicyConfig::KnormHead {
            budget: Budget::Entries(7),
        }),
    ]
}

#[test]
fn a_restored_session_continues_exactly_like_the_one_that_never_stopped() {
    let f16 = Arc::new(
        tiny_model()
            .llama
            .as_ref()
            .clone()
            .with_kv_dtype(KvDtype::F16),
    );
    for (model, cfg) in (configs().into_iter())
        .map(|c| (&tiny_model().llama, c))
        .chain(std::iter::once((&f16, SessionConfig::causal(5))))
    {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("session");
        let mut live = Session::new(Arc::clone(model), cfg.clone(), 16).unwrap();
        live.prefill(&stream(23, 1), 0).unwrap();
        live.accept(77); // a sampled token, not run yet
        let ragged = ["tova_layer", "snapkv_head", "knorm_head"].contains(&cfg.policy.name());
        assert_eq!(live.cache().is_ragged(), ragged, "{cfg:?}");
        live.save(&dir).unwrap();
        // Saving twice replaces the directory.
        live.save(&dir).unwrap();
        let mut back = Session::restore(Arc::clone(model), &dir, KeepWarm::Off).unwrap();
        assert_eq!(back.cache().cells(), live.cache().cells(), "{cfg:?}");
        assert_eq!(back.cache().lanes(), live.cache().lanes(), "{cfg:?}");
        assert_eq!(back.tokens(), live.tokens());
        assert_eq!(back.pending(), live.pending());
        // Everything but the reserved capacity, a runtime detail (the restore reserves exactly).
        let (mut got, want) = (back.stats(), live.stats());
        got.allocated_kv_bytes = want.allocated_kv_bytes;
        assert_eq!(got, want);
        assert_eq!(back.config().pins, cfg.pins);
        assert_eq!(back.config().anchors, cfg.anchors);
        for step in [vec![ANCHOR[0]], stream(7, 2), vec![ANCHOR[0]], stream(4, 3)] {
            let a = live.forward(&step, OutputRows::All).unwrap();
            let b = back.forward(&step, OutputRows::All).unwrap();
            let (a, b): (Vec<Vec<f32>>, Vec<Vec<f32>>) =
                (a.to_vec2().unwrap(), b.to_vec2().unwrap());
            assert_eq!(a, b, "{cfg:?}: logits differ after the restore");
            assert_eq!(back.cache().cells(), live.cache().cells());
            assert_eq!(back.cache().lanes(), live.cache().lanes());
        }
    }
}

#[test]
fn an_anchored_session_saves_only_its_pruned_cache() {
    let model = &tiny_model().llama;
    let tmp = tempfile::tempdir().unwrap();
    let (full_dir, anch_dir) = (tmp.path().join("full"), tmp.path().join("anchored"));
    let tokens = stream(120, 4);
    let mut full = Session::new(Arc::clone(model), SessionConfig::causal(16), 128).unwrap();
    full.prefill(&tokens, 0).unwrap();
    full.save(&full_dir).unwrap();
    let cfg = SessionConfig::anchored(tiny_anchors(), 16);
    let mut anchored = Session::new(Arc::clone(model), cfg, 128).unwrap();
    anchored.prefill(&tokens, 0).unwrap();
    anchored.save(&anch_dir).unwrap();
    let size = |d: &std::path::Path| std::fs::metadata(d.join("kv.safetensors")).unwrap().len();
    let (kept, seen) = (anchored.cache().len() as u64, tokens.len() as u64);
    assert!(kept < seen / 4, "kept {kept} of {seen}");
    // The K/V file scales with the kept entries (headers aside).
    assert!(
        size(&anch_dir) * seen < size(&full_dir) * (kept + 4),
        "{} vs {}",
        size(&anch_dir),
        size(&full_dir)
    );
}

#[test]
fn restoring_onto_another_model_or_from_damaged_files_is_an_error() {
    let model = &tiny_model().llama;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let mut live = Session::new(Arc::clone(model), SessionConfig::causal(4), 16).unwrap();
    live.prefill(&stream(9, 5), 0).unwrap();
    live.save(&dir).unwrap();
    // Another configuration.
    let other_dir = tmp.path().join("other");
    write_hf_dir(
        &other_dir,
        &TinySpec {
            vocab: 400,
            ..TinySpec::gqa()
        },
        HfLayout::Safetensors,
    )
    .unwrap();
    let other = anllm::load_model(&other_dir, WeightDtype::F32, &Device::Cpu).unwrap();
    let err = Session::restore(Arc::clone(&other.llama), &dir, KeepWarm::Off).unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");
    // Missing directory.
    assert!(Session::restore(Arc::clone(model), &tmp.path().join("none"), KeepWarm::Off).is_err());
    // A truncated K/V file.
    let kv = dir.join("kv.safetensors");
    let bytes = std::fs::read(&kv).unwrap();
    std::fs::write(&kv, &bytes[..bytes.len() / 2]).unwrap();
    assert!(Session::restore(Arc::clone(model), &dir, KeepWarm::Off).is_err());
    // Cells that break the invariants (a token after its segment's anchor).
    live.save(&dir).unwrap();
    let state = dir.join("session.json");
    let text = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, text.replace("\"next_pos\":9", "\"next_pos\":2")).unwrap();
    assert!(Session::restore(Arc::clone(model), &dir, KeepWarm::Off).is_err());
    // Not JSON.
    std::fs::write(&state, "{").unwrap();
    assert!(Session::restore(Arc::clone(model), &dir, KeepWarm::Off).is_err());
}

#[test]
fn a_shrunk_session_reserves_less_and_continues_identically() {
    let model = &tiny_model().llama;
    let cfg = SessionConfig::anchored(tiny_anchors(), 4);
    let mut live = Session::new(Arc::clone(model), cfg, 16).unwrap();
    live.prefill(&stream(90, 4), 0).unwrap();
    let mut shrunk = live.fork().unwrap();
    let before = shrunk.stats().allocated_kv_bytes;
    shrunk.shrink_to_fit(2).unwrap();
    let after = shrunk.stats();
    assert!(after.allocated_kv_bytes < before, "{before} -> {after:?}");
    assert_eq!(
        after.allocated_kv_bytes,
        (after.entries + 2) * after.kv_bytes / after.entries
    );
    for step in [stream(9, 5), vec![ANCHOR[0]], stream(3, 6)] {
        let a = live.forward(&step, OutputRows::All).unwrap();
        let b = shrunk.forward(&step, OutputRows::All).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (
            a.flatten_all().unwrap().to_vec1().unwrap(),
            b.flatten_all().unwrap().to_vec1().unwrap(),
        );
        assert_eq!(a, b);
    }
}

#[test]
fn damaged_lanes_are_an_error() {
    let model = &tiny_model().llama;
    let cfg = SessionConfig::causal(5).with_policy(PolicyConfig::KnormHead {
        budget: Budget::Entries(7),
    });
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("session");
    let mut live = Session::new(Arc::clone(model), cfg, 16).unwrap();
    live.prefill(&stream(23, 1), 0).unwrap();
    live.save(&dir).unwrap();
    let state = dir.join("session.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    // A cell past the end, then a lane shorter than its layer's other head.
    json["lanes"][0][0] = 999.into();
    std::fs::write(&state, json.to_string()).unwrap();
    let err = Session::restore(Arc::clone(model), &dir, KeepWarm::Off).unwrap_err();
    assert!(err.to_string().contains("lanes"), "{err}");
    json["lanes"][0][0] = 0.into();
    json["lanes"][1].as_array_mut().unwrap().pop();
    std::fs::write(&state, json.to_string()).unwrap();
    assert!(Session::restore(Arc::clone(model), &dir, KeepWarm::Off).is_err());
}
