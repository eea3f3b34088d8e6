//! The tokenizer against reference vectors: llama.cpp's `test-tokenizer-0` cases for the
//! `llama-spm` and `gpt-2` vocabularies, and HF transformers' ids for SmolLM2.
//!
//! Assets come from `scripts/fetch-assets.sh` (into `$ANLLM_HOME`, default `~/.cache/anllm`);
//! the SmolLM2 golden file from the repository's `tests/golden/` (made by
//! `benches/golden_hf.sh`, see `tests/golden/README.md`). Both are found through
//! `anllm::testutil`; a missing one fails the test.

use std::fs::File;
use std::time::Instant;

use anllm::TokenId;
use anllm::testutil::{default_model, gguf_tokenizer, golden, llama_cpp_cases};
use anllm::tokenizer::Tokenizer;
use candle_core::quantized::gguf_file::Content;

/// The default model's tokenizer (SmolLM2).
fn smollm() -> Tokenizer {
    gguf_tokenizer("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// One reference case and what went wrong with it, if anything.
struct Outcome {
    text: String,
    failure: Option<String>,
}

/// Prints `N/N cases pass` and each failure, then asserts that all passed.
fn report(suite: &str, outcomes: &[Outcome]) {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    println!(
        "{suite}: {}/{} cases pass",
        outcomes.len() - failed.len(),
        outcomes.len()
    );
    for o in &failed {
        println!(
            "  FAIL {:?}\n    {}",
            o.text,
            o.failure.as_deref().unwrap_or_default()
        );
    }
    assert!(
        failed.is_empty(),
        "{suite}: {} of {} cases fail",
        failed.len(),
        outcomes.len()
    );
}

fn compare_ids(expected: &[TokenId], got: &[TokenId]) -> Option<String> {
    (expected != got).then(|| format!("expected {expected:?}\n    got      {got:?}"))
}

/// llama.cpp's `test-tokenizer-0` on `ggml-vocab-<name>.gguf` (no BOS, parse_special = false).
fn llama_cpp_vectors(name: &str, kind: &str) {
    let tokenizer = gguf_tokenizer(&format!("vocab/ggml-vocab-{name}.gguf"));
    assert_eq!(tokenizer.kind(), kind);

    let outcomes: Vec<Outcome> = llama_cpp_cases(name)
        .into_iter()
        .map(|(text, expected)| {
            let failure = match tokenizer.encode(&text, false) {
                Ok(got) => compare_ids(&expected, &got),
                Err(e) => Some(format!("error: {e}")),
            };
            Outcome { text, failure }
        })
        .collect();
    report(&format!("llama.cpp ggml-vocab-{name}"), &outcomes);
}

#[test]
fn llama_spm_vectors() {
    llama_cpp_vectors("llama-spm", "llama-spm");
}

#[test]
fn gpt2_vectors() {
    llama_cpp_vectors("gpt-2", "gpt2-bpe");
}

/// HF transformers' ids and decoded text for SmolLM2 (`add_special_tokens=False`; HF always
/// matches added special tokens, so `parse_special = true`).
#[test]
fn smollm2_golden() {
    let golden = golden("smollm2-tokens.json");
    let tokenizer = smollm();
    assert_eq!(tokenizer.kind(), "gpt2-bpe");

    let cases = golden["cases"].as_array().unwrap();
    let outcomes: Vec<Outcome> = cases
        .iter()
        .map(|case| {
            let text = case["text"].as_str().unwrap();
            let expected: Vec<TokenId> = case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as TokenId)
                .collect();
            let roundtrip = case["roundtrip"].as_str().unwrap();
            let failure = match tokenizer.encode(text, true) {
                Err(e) => Some(format!("encode error: {e}")),
                Ok(got) => compare_ids(&expected, &got).or_else(|| {
                    match tokenizer.decode(&expected, false) {
                        Err(e) => Some(format!("decode error: {e}")),
                        Ok(decoded) => (decoded != roundtrip).then(|| {
                            format!("decode expected {roundtrip:?}\n    got           {decoded:?}")
                        }),
                    }
                }),
            };
            Outcome {
                text: text.to_owned(),
                failure,
            }
        })
        .collect();
    assert_eq!(outcomes.len(), 28, "the golden file should hold 28 cases");
    report("SmolLM2 golden (HF transformers)", &outcomes);
}

#[test]
fn smollm2_parse_special_and_metadata() {
    let path = default_model();
    let started = Instant::now();
    let content = Content::read(&mut File::open(path).unwrap()).unwrap();
    let read = started.elapsed();
    let tokenizer = Tokenizer::from_gguf(&content).unwrap();
    println!(
        "SmolLM2 tokenizer: GGUF metadata read in {read:?}, Tokenizer::from_gguf in {:?}",
        started.elapsed() - read
    );

    let im_start = tokenizer.token_id("<|im_start|>").unwrap();
    let im_end = tokenizer.token_id("<|im_end|>").unwrap();
    let ids = tokenizer
        .encode("<|im_start|>user\nHello<|im_end|>", true)
        .unwrap();
    assert_eq!(ids.first(), Some(&im_start));
    assert_eq!(ids.last(), Some(&im_end));
    assert_eq!(
        tokenizer.decode(&ids, false).unwrap(),
        "<|im_start|>user\nHello<|im_end|>"
    );
    assert_eq!(tokenizer.decode(&ids, true).unwrap(), "user\nHello");

    // As text, the control-token string is cut into ordinary pieces.
    let plain = tokenizer.encode("<|im_start|>user", false).unwrap();
    assert!(!plain.contains(&im_start), "{plain:?}");
    assert_eq!(tokenizer.decode(&plain, true).unwrap(), "<|im_start|>user");

    let specials = tokenizer.specials();
    assert_eq!(specials.bos, Some(im_start));
    assert_eq!(specials.eos, Some(im_end));
    assert!(specials.is_end_of_generation(im_end));
    assert!(
        specials
            .eot
            .contains(&tokenizer.token_id("<|endoftext|>").unwrap())
    );
    assert!(!tokenizer.add_bos());
    assert!(tokenizer.chat_template().unwrap().contains("<|im_start|>"));
    assert_eq!(tokenizer.vocab_size(), 49152);
    assert_eq!(tokenizer.piece(905), Some("Ġworld"));

    let text = "The capital of France is Paris. It's 3.14 o'clock, isn't it? ".repeat(2000);
    let started = Instant::now();
    let ids = tokenizer.encode(&text, false).unwrap();
    let took = started.elapsed();
    println!(
        "SmolLM2 encode: {} bytes -> {} tokens in {took:?} ({:.1} MB/s)",
        text.len(),
        ids.len(),
        text.len() as f64 / took.as_secs_f64() / 1e6
    );
    assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
}

#[test]
fn spm_byte_fallback_decodes() {
    let tokenizer = gguf_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
    assert!(tokenizer.add_bos());
    assert_eq!(tokenizer.piece(13), Some("<0x0A>"));
    assert_eq!(tokenizer.token_id("<s>"), tokenizer.specials().bos);

    let text = "🦙 llamas\nsay Cửa Việt";
    let ids = tokenizer.encode(text, false).unwrap();
    assert!(
        ids.contains(&243) && ids.contains(&13),
        "byte pieces expected: {ids:?}"
    );
    assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);

    // The four bytes of 🦙 (F0 9F A6 99) are joined into one character; a cut sequence is lossy.
    assert_eq!(
        tokenizer.decode(&[243, 162, 169, 156], false).unwrap(),
        "🦙"
    );
    assert_eq!(
        tokenizer.decode(&[15043, 243, 162], false).unwrap(),
        "Hello\u{FFFD}"
    );

    // BOS is a control token: kept as text unless skipped.
    let with_bos = [1, 15043, 3186];
    assert_eq!(tokenizer.decode(&with_bos, true).unwrap(), "Hello world");
    assert_eq!(
        tokenizer.decode(&with_bos, false).unwrap(),
        "<s> Hello world"
    );
    assert_eq!(tokenizer.encode("<s>Hello", true).unwrap(), [1, 15043]);
    let plain = tokenizer.encode("<s>Hello", false).unwrap();
    assert!(!plain.contains(&1), "{plain:?}");
    assert_eq!(tokenizer.decode(&plain, false).unwrap(), "<s>Hello");
    assert!(tokenizer.decode(&[32000], false).is_err());
}

#[test]
fn hf_dir_added_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let added = |id: u32, content: &str, special: bool| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": !special, "special": special})
    };
    let tokenizer_json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [added(0, "<unk>", true), added(1, "<s>", true), added(2, "</s>", true),
            added(5, "[PAD]", true), added(6, "<AC>", false)],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "unk_token": "<unk>",
            "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "hello": 3, "world": 4}},
    });
    let config = serde_json::json!({
        "add_bos_token": true, "bos_token": "<s>", "eos_token": {"content": "</s>"},
        "unk_token": "<unk>", "pad_token": "[PAD]", "chat_template": "{{ messages }}",
    });
    std::fs::write(
        dir.path().join("tokenizer.json"),
        tokenizer_json.to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();

    let tokenizer = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(tokenizer.kind(), "hf-json");
    assert_eq!(tokenizer.token_id("[PAD]"), Some(5));
    assert_eq!(tokenizer.token_id("<AC>"), Some(6));
    assert_eq!(tokenizer.piece(6), Some("<AC>"));
    assert_eq!(tokenizer.vocab_size(), 7);
    let s = tokenizer.specials();
    assert_eq!(
        (s.bos, s.eos, s.unk, s.pad),
        (Some(1), Some(2), Some(0), Some(5))
    );
    assert!(tokenizer.add_bos());
    assert_eq!(tokenizer.chat_template(), Some("{{ messages }}"));

    // `<AC>` is a normal added token: matched either way; `[PAD]` only with parse_special.
    assert_eq!(
        tokenizer.encode("hello <AC> world", false).unwrap(),
        [3, 6, 4]
    );
    assert_eq!(tokenizer.encode("hello [PAD]", true).unwrap(), [3, 5]);
    assert!(!tokenizer.encode("hello [PAD]", false).unwrap().contains(&5));
    assert_eq!(
        tokenizer.decode(&[1, 3, 6, 4], true).unwrap(),
        "hello <AC> world"
    );
    assert!(tokenizer.decode(&[99], false).is_err());
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tokenizer>();
}
