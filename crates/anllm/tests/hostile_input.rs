//! Input a user controls (token ids, texts, JSON, model files, flags) never panics through the
//! library API: each case here panicked or aborted before, and now is an `Err` that says what is
//! wrong (or, where the input is legal, simply works). The last tests pin down inputs that were
//! already errors, so they stay that way.

use std::path::Path;

use anllm::anchor::AnchorSpec;
use anllm::config::LlamaConfig;
use anllm::sample::{Sampler, Sampling};
use anllm::score::{ScoreMode, score};
use anllm::sentence::{PunktParams, SentenceSplitter};
use anllm::testutil::{HfLayout, TinySpec, tiny_anchors, tiny_model, write_gguf, write_hf_dir};
use anllm::tokenizer::Tokenizer;
use anllm::{AnchorSet, Error, Session, SessionConfig, WeightDtype, load_model};
use candle_core::Device;
use serde_json::{Value, json};

/// The tiny model's vocabulary size: the first id past it.
const VOCAB: u32 = 384;

fn message<T: std::fmt::Debug>(result: anllm::Result<T>) -> String {
    result.expect_err("expected an error").to_string()
}

// ---- 1. ids that are only targets index the logits -------------------------------------------

#[test]
fn score_continuation_id_past_vocab_is_an_error() {
    let model = &tiny_model().llama;
    for mode in [ScoreMode::Cached, ScoreMode::MaskOnly] {
        // The last continuation id is only a target: the forward step never sees it.
        let cfg = SessionConfig::causal(4);
        let err = message(score(model, &[5, 6], &[7, VOCAB], &cfg, mode));
        assert!(
            err.contains(&VOCAB.to_string()) && err.contains("vocabulary"),
            "{err}"
        );
        let err = message(score(model, &[5, 6], &[u32::MAX], &cfg, mode));
        assert!(err.contains(&u32::MAX.to_string()), "{err}");
    }
}

#[test]
fn score_context_id_past_vocab_is_an_error() {
    let model = &tiny_model().llama;
    let cfg = SessionConfig::anchored(tiny_anchors(), 2);
    let err = message(score(model, &[5, VOCAB + 7], &[7], &cfg, ScoreMode::Cached));
    assert!(err.contains(&(VOCAB + 7).to_string()), "{err}");
}

// ---- 3. crafted GGUF headers ------------------------------------------------------------------

/// A valid tiny GGUF, as bytes.
fn tiny_gguf_bytes(dir: &Path) -> Vec<u8> {
    let path = dir.join("tiny.gguf");
    write_gguf(&path, &TinySpec::gqa()).unwrap();
    std::fs::read(path).unwrap()
}

/// Byte offset just past the GGUF string `s` (u64 length, then the bytes).
fn after_string(bytes: &[u8], s: &str) -> usize {
    let mut needle = (s.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(s.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("`{s}` not in the file"));
    at + needle.len()
}

/// The tensor info of `name`: (offset of its first dimension, number of dimensions, offset of
/// its data offset field).
fn tensor_info(bytes: &[u8], name: &str) -> (usize, usize, usize) {
    let at = after_string(bytes, name);
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let dims = at + 4;
    (dims, n_dims, dims + 8 * n_dims + 4)
}

/// Writes `bytes` as a GGUF file and loads it.
fn load_gguf(dir: &Path, bytes: &[u8]) -> anllm::Result<anllm::LoadedModel> {
    let path = dir.join("crafted.gguf");
    std::fs::write(&path, bytes).unwrap();
    load_model(&path, WeightDtype::Auto, &Device::Cpu)
}

#[test]
fn gguf_tensor_offset_near_u64_max_is_a_format_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = tiny_gguf_bytes(tmp.path());
    let (_, _, offset) = tensor_info(&bytes, "token_embd.weight");
    bytes[offset..offset + 8].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
    let err = load_gguf(tmp.path(), &bytes).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("token_embd.weight") && text.contains("overflows"),
        "{text}"
    );
}

#[test]
fn gguf_tensor_dims_overflowing_usize_is_a_format_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = tiny_gguf_bytes(tmp.path());
    let (dims, n_dims, _) = tensor_info(&bytes, "token_embd.weight");
    assert_eq!(n_dims, 2);
    // 2^33 × 2^33 elements: the product wraps to 0 in a usize.
    for d in 0..2 {
        let at = dims + 8 * d;
        bytes[at..at + 8].copy_from_slice(&(1u64 << 33).to_le_bytes());
    }
    let err = load_gguf(tmp.path(), &bytes).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(err.to_string().contains("element count"), "{err}");
}

#[test]
fn gguf_alignment_zero_is_a_format_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = tiny_gguf_bytes(tmp.path());
    let at = after_string(&bytes, "general.alignment");
    assert_eq!(bytes[at..at + 4], 4u32.to_le_bytes(), "a u32 value");
    bytes[at + 4..at + 8].copy_from_slice(&0u32.to_le_bytes());
    // candle's parser divides by the alignment.
    let err = load_gguf(tmp.path(), &bytes).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(err.to_string().contains("alignment"), "{err}");
}

// ---- 4. tokenizer.json with a huge id ---------------------------------------------------------

#[test]
fn hf_tokenizer_id_near_u32_max_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_hf_dir(tmp.path(), &TinySpec::gqa(), HfLayout::Safetensors).unwrap();
    let path = tmp.path().join("tokenizer.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["model"]["vocab"]["zzqq"] = json!(4_000_000_000u32);
    std::fs::write(&path, json.to_string()).unwrap();
    // Sizing the piece table by the largest id would allocate 4 billion entries.
    let err = Tokenizer::from_hf_dir(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Tokenizer { .. }), "{err:?}");
    assert!(err.to_string().contains("4000000000"), "{err}");
}

// ---- 6. config.json sizes, session sizes --------------------------------------------------------

#[test]
fn config_json_with_degenerate_sizes_is_an_error() {
    let base = TinySpec::gqa().config_json();
    let cases = [
        ("num_attention_heads", json!(0), "num_attention_heads"),
        ("num_key_value_heads", json!(0), "num_key_value_heads"),
        ("hidden_size", json!(30), "hidden_size"),
        ("head_dim", json!(0), "head_dim"),
        (
            "max_position_embeddings",
            json!(0),
            "max_position_embeddings",
        ),
        (
            "max_position_embeddings",
            json!(1u64 << 40),
            "max_position_embeddings",
        ),
        ("vocab_size", json!(1u64 << 62), "more parameters"),
        ("intermediate_size", json!(u64::MAX / 2), "more parameters"),
    ];
    for (field, value, named) in cases {
        let mut cfg = base.clone();
        cfg[field] = value.clone();
        let err = message(LlamaConfig::from_json(&cfg.to_string()));
        assert!(err.contains(named), "{field} = {value}: {err}");
    }
}

#[test]
fn session_new_with_huge_expected_tokens_is_clamped() {
    let model = &tiny_model().llama;
    // The cache used to be preallocated for `expected_tokens` entries (an abort).
    let mut session = Session::new(
        std::sync::Arc::clone(model),
        SessionConfig::causal(4),
        usize::MAX,
    )
    .unwrap();
    assert_eq!(session.prefill(&[5, 6, 7], 2).unwrap().dims(), &[1, 384]);
    let anchored = SessionConfig::anchored(tiny_anchors(), usize::MAX);
    let mut session = Session::new(std::sync::Arc::clone(model), anchored, usize::MAX).unwrap();
    assert_eq!(session.prefill(&[5, 6, 7], 0).unwrap().dims(), &[3, 384]);
}

// ---- inputs that were already errors, pinned down -----------------------------------------------

#[test]
fn session_prefill_with_no_tokens_is_an_error() {
    let model = &tiny_model().llama;
    let mut session =
        Session::new(std::sync::Arc::clone(model), SessionConfig::causal(4), 8).unwrap();
    let err = message(session.prefill(&[], 0));
    assert!(err.contains("rows_from"), "{err}");
    let err = message(session.forward(&[], anllm::OutputRows::Last));
    assert!(err.contains("0"), "{err}");
}

#[test]
fn tokenizer_decode_id_past_vocab_is_an_error() {
    let tok = &tiny_model().tokenizer;
    let err = message(tok.decode(&[5, VOCAB], false));
    assert!(err.contains("outside the vocabulary"), "{err}");
    let err = message(tok.decode(&[u32::MAX], true));
    assert!(err.contains(&u32::MAX.to_string()), "{err}");
}

#[test]
fn sampler_with_empty_or_nan_logits_is_an_error() {
    let sampling = Sampling {
        temperature: 0.8,
        ..Sampling::default()
    };
    let mut sampler = Sampler::new(sampling);
    assert!(message(sampler.sample(&[])).contains("empty"));
    assert!(sampler.sample(&[f32::NAN, 1.0, 2.0]).is_err());
    assert!(sampler.sample(&[f32::NEG_INFINITY; 4]).is_err());
    // Greedy picks something from any non-empty row.
    let mut greedy = Sampler::new(Sampling::default());
    assert!(greedy.sample(&[f32::NAN, f32::NAN]).unwrap() < 2);
}

#[test]
fn anchor_ids_spec_past_vocab_is_an_error() {
    let tok = &tiny_model().tokenizer;
    let spec: AnchorSpec = format!("ids:5,{VOCAB}").parse().unwrap();
    let err = message(AnchorSet::from_spec(&spec, tok));
    assert!(err.contains(&VOCAB.to_string()), "{err}");
    assert!("ids:99999999999".parse::<AnchorSpec>().is_err());
}

#[test]
fn sentence_spans_of_odd_unicode_text_are_char_boundaries() {
    let splitter = SentenceSplitter::new(PunktParams::english_minimal());
    let texts = [
        "é.",
        ".é",
        "日本.語! 「x」. ",
        "a.\u{301} B",
        "?!\u{1F600}. Z",
        "\u{a0}.\u{a0}.",
        "Dr. é. É.",
        "...",
        ". . .",
        "x.\"»",
        "«É». Ñ",
    ];
    for text in texts {
        for span in splitter.sentence_spans(text) {
            assert!(text.get(span.clone()).is_some(), "{text:?}: {span:?}");
        }
    }
}
