//! Hugging Face checkpoints in every layout (safetensors, sharded safetensors,
//! `pytorch_model.bin`, sharded `.bin`) and GGUF load to the same model: the AnLLM Llama-2
//! vocabularies (32001 / 32002 ids with `[PAD]` and `<AC>`), identical logits across layouts and
//! tied/untied heads, and GGUF's permuted Q/K rows with interleaved RoPE matching HF's halves.
//!
//! Every checkpoint is a tiny seeded random model written by `anllm::testutil`.

use std::path::Path;

use anllm::testutil::{
    HfLayout, TinySpec, anllm_llama2_spec, hf_tensors, max_abs_diff, write_gguf, write_gguf_typed,
    write_hf_dir, write_hf_dir_tensors,
};
use anllm::{LoadedModel, TokenId, WeightDtype, load_model};
use candle_core::Device;
use candle_core::quantized::GgmlDType;

/// A fixed token sequence (ids valid in every test vocabulary).
const TOKENS: [TokenId; 9] = [1, 300, 17, 259, 42, 333, 5, 260, 99];

fn load(path: &Path) -> LoadedModel {
    load_model(path, WeightDtype::F32, &Device::Cpu)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

/// Logits `[tokens, vocab]` of [`TOKENS`] in one causal step.
fn logits(model: &LoadedModel, tokens: &[TokenId]) -> Vec<Vec<f32>> {
    anllm::testutil::causal_logits(&model.llama, tokens)
}

fn assert_close(what: &str, a: &[Vec<f32>], b: &[Vec<f32>], tol: f32) {
    let diff = max_abs_diff(a, b);
    assert!(diff <= tol, "{what}: max |Δlogit| = {diff} > {tol}");
}

/// The logits are not degenerate (a broken model could be "equal" by being constant).
fn assert_informative(l: &[Vec<f32>]) {
    assert!(l.iter().flatten().all(|v| v.is_finite()));
    let (lo, hi) = l[0]
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(hi - lo > 0.1, "flat logits: {lo}..{hi}");
    assert!(
        max_abs_diff(&l[..1], &l[1..2]) > 1e-3,
        "rows do not depend on the input"
    );
}

fn check_anllm_vocab(vocab_size: usize) {
    for tie in [false, true] {
        let spec = TinySpec {
            tie_embeddings: tie,
            ..anllm_llama2_spec(vocab_size)
        };
        let tmp = tempfile::tempdir().unwrap();
        let mut reference: Option<Vec<Vec<f32>>> = None;
        for layout in HfLayout::ALL {
            let dir = tmp.path().join(format!("{layout:?}"));
            write_hf_dir(&dir, &spec, layout).unwrap();
            let model = load(&dir);
            let cfg = model.llama.config();
            assert_eq!(cfg.vocab_size, vocab_size, "{layout:?}");
            assert_eq!(cfg.tie_word_embeddings, tie, "{layout:?}");
            assert_eq!(model.info.format, "hf-dir");
            assert_eq!(model.info.rope_style, "half");
            let tok = &model.tokenizer;
            assert_eq!(tok.vocab_size(), vocab_size, "{layout:?}");
            assert_eq!(tok.token_id("[PAD]"), Some(32000), "{layout:?}");
            let ac = (vocab_size == 32002).then_some(32001);
            assert_eq!(tok.token_id("<AC>"), ac, "{layout:?}");
            assert_eq!(tok.specials().pad, Some(32000));
            assert_eq!(tok.specials().bos, Some(1));
            assert_eq!(tok.specials().eos, Some(2));
            assert!(tok.add_bos());
            let mut tokens = TOKENS.to_vec();
            tokens.push(32000);
            if vocab_size == 32002 {
                tokens.push(32001);
            }
            let l = logits(&model, &tokens);
            assert_eq!(l[0].len(), vocab_size);
            match &reference {
                None => {
                    assert_informative(&l);
                    reference = Some(l);
                }
                Some(r) => assert_close(&format!("{layout:?} vs safetensors"), r, &l, 1e-5),
            }
        }
    }
}

#[test]
fn hf_anllm_ep_vocab_32001_loads_in_every_layout() {
    check_anllm_vocab(32001);
}

#[test]
fn hf_anllm_ac_vocab_32002_loads_in_every_layout() {
    check_anllm_vocab(32002);
}

#[test]
fn hf_anllm_tokenizer_handles_added_tokens_in_text() {
    let tmp = tempfile::tempdir().unwrap();
    write_hf_dir(tmp.path(), &anllm_llama2_spec(32002), HfLayout::Safetensors).unwrap();
    let tok = load(tmp.path()).tokenizer;
    let ids = tok.encode("Hello world.<AC> Next", true).unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == 32001).count(), 1, "{ids:?}");
    assert!(
        tok.decode(&ids, false)
            .unwrap()
            .starts_with("Hello world.<AC>")
    );
    let plain = tok.encode("Hello world. Next", true).unwrap();
    assert_eq!(tok.decode(&plain, false).unwrap(), "Hello world. Next");
    let plain = tok.encode("a [PAD] b", false).unwrap();
    assert!(
        !plain.contains(&32000),
        "[PAD] matched without parse_special: {plain:?}"
    );
    assert!(tok.encode("a [PAD] b", true).unwrap().contains(&32000));
}

#[test]
fn hf_tied_head_equals_untied_head_with_embedding_copy() {
    let tied = TinySpec {
        tie_embeddings: true,
        ..TinySpec::gqa()
    };
    let untied = TinySpec {
        tie_embeddings: false,
        ..tied.clone()
    };
    let mut tensors = hf_tensors(&tied).unwrap();
    assert!(tensors.iter().all(|(n, _)| n != "lm_head.weight"));
    let embed = tensors[0].1.clone();
    tensors.push(("lm_head.weight".into(), embed));
    let tmp = tempfile::tempdir().unwrap();
    let reference = {
        let dir = tmp.path().join("tied");
        write_hf_dir(&dir, &tied, HfLayout::Safetensors).unwrap();
        logits(&load(&dir), &TOKENS)
    };
    assert_informative(&reference);
    for layout in HfLayout::ALL {
        let dir = tmp.path().join(format!("untied-{layout:?}"));
        write_hf_dir_tensors(&dir, &untied, layout, &tensors).unwrap();
        let model = load(&dir);
        assert!(!model.llama.config().tie_word_embeddings);
        assert_close(
            &format!("untied {layout:?}"),
            &reference,
            &logits(&model, &TOKENS),
            1e-5,
        );
    }
    // An untied head of its own gives other logits: the comparison above can fail.
    let dir = tmp.path().join("own-head");
    write_hf_dir(&dir, &untied, HfLayout::Safetensors).unwrap();
    assert!(max_abs_diff(&reference, &logits(&load(&dir), &TOKENS)) > 1e-2);
}

#[test]
fn hf_sharded_dirs_have_index_and_two_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = TinySpec::gqa();
    for (layout, index, shard) in [
        (
            HfLayout::ShardedSafetensors,
            "model.safetensors.index.json",
            "model-00002-of-00002.safetensors",
        ),
        (
            HfLayout::ShardedPytorchBin,
            "pytorch_model.bin.index.json",
            "pytorch_model-00002-of-00002.bin",
        ),
    ] {
        let dir = tmp.path().join(format!("{layout:?}"));
        write_hf_dir(&dir, &spec, layout).unwrap();
        let text = std::fs::read_to_string(dir.join(index)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let map = json["weight_map"].as_object().unwrap();
        assert_eq!(map.len(), hf_tensors(&spec).unwrap().len());
        assert_eq!(map["lm_head.weight"], shard);
        assert!(dir.join(shard).is_file());
    }
}

/// GGUF stores Q/K rows permuted for interleaved RoPE; our loader rotates `(2i, 2i+1)` pairs
/// there and `(i, i + d/2)` pairs for HF, so both give the same model.
#[test]
fn gguf_f32_matches_hf_safetensors() {
    for tie in [false, true] {
        let spec = TinySpec {
            tie_embeddings: tie,
            ..TinySpec::gqa()
        };
        let tmp = tempfile::tempdir().unwrap();
        write_hf_dir(tmp.path(), &spec, HfLayout::Safetensors).unwrap();
        let gguf = tmp.path().join("tiny.gguf");
        write_gguf(&gguf, &spec).unwrap();
        let hf = load(tmp.path());
        let model = load(&gguf);
        assert_eq!(model.info.format, "gguf");
        assert_eq!(model.info.rope_style, "interleaved");
        assert_eq!(model.tokenizer.kind(), "gpt2-bpe");
        assert_eq!(model.tokenizer.vocab_size(), spec.vocab);
        let mut cfg = model.llama.config().clone();
        cfg.rms_norm_eps = hf.llama.config().rms_norm_eps; // f32 in GGUF, f64 in JSON
        assert_eq!(&cfg, hf.llama.config());
        let reference = logits(&hf, &TOKENS);
        assert_informative(&reference);
        assert_close("gguf vs hf", &reference, &logits(&model, &TOKENS), 1e-5);
    }
}

/// Without the Q/K permutation the GGUF model differs: the test above does check RoPE.
#[test]
fn gguf_without_rope_permutation_differs() {
    let spec = TinySpec::gqa();
    let tmp = tempfile::tempdir().unwrap();
    write_hf_dir(tmp.path(), &spec, HfLayout::Safetensors).unwrap();
    let gguf = tmp.path().join("unpermuted.gguf");
    write_gguf_typed(&gguf, &spec, GgmlDType::F32, false).unwrap();
    let diff = max_abs_diff(
        &logits(&load(tmp.path()), &TOKENS),
        &logits(&load(&gguf), &TOKENS),
    );
    assert!(
        diff > 1e-2,
        "unpermuted Q/K gave the same logits (Δ = {diff})"
    );
}

#[test]
fn gguf_q8_0_is_close_to_f32() {
    let spec = TinySpec::gqa();
    let tmp = tempfile::tempdir().unwrap();
    let (f32_path, q8_path) = (tmp.path().join("f32.gguf"), tmp.path().join("q8.gguf"));
    write_gguf(&f32_path, &spec).unwrap();
    write_gguf_typed(&q8_path, &spec, GgmlDType::Q8_0, true).unwrap();
    let reference = logits(&load(&f32_path), &TOKENS);
    let q8 = load_model(&q8_path, WeightDtype::Auto, &Device::Cpu).unwrap();
    assert!(q8.info.compute.starts_with("quantized"));
    assert!(
        q8.info
            .storage
            .iter()
            .any(|(k, v)| k == "q_proj" && v == "Q8_0")
    );
    let l = logits(&q8, &TOKENS);
    let diff = max_abs_diff(&reference, &l);
    assert!(
        diff > 0.0 && diff < 0.25,
        "Q8_0 vs F32: max |Δlogit| = {diff}"
    );
}
