//! `Tokenizer::to_hf_files`: the written `tokenizer.json` and `tokenizer_config.json`, loaded
//! with `Tokenizer::from_hf_dir`, give the same ids, roles and BOS flag as the source tokenizer.
//!
//! Needs the fetched assets (`scripts/fetch-assets.sh`): the default model (SmolLM2 GGUF, its
//! golden ids and the corpus) and llama.cpp's vocabulary test vectors. A missing asset fails.

use std::path::Path;

use anllm::TokenId;
use anllm::testutil::{asset, gguf_tokenizer, golden, llama_cpp_cases};
use anllm::tokenizer::Tokenizer;

/// Writes `source`'s HF files into a temporary directory and loads them back.
fn exported(source: &Tokenizer) -> Tokenizer {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &source.to_hf_files().unwrap());
    let loaded = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(loaded.kind(), "hf-json");
    loaded
}

fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Roles, BOS flag, chat template and vocabulary size agree.
fn assert_same_metadata(source: &Tokenizer, loaded: &Tokenizer) {
    assert_eq!(loaded.specials(), source.specials());
    assert_eq!(loaded.add_bos(), source.add_bos());
    assert_eq!(loaded.chat_template(), source.chat_template());
    assert_eq!(loaded.vocab_size(), source.vocab_size());
}

/// Compares both tokenizers on `texts` with `parse_special`; returns the failures.
fn mismatches<'a>(
    source: &Tokenizer,
    loaded: &Tokenizer,
    texts: impl IntoIterator<Item = &'a str>,
    parse_special: bool,
) -> (usize, Vec<String>) {
    let mut count = 0;
    let mut failures = Vec::new();
    for text in texts {
        count += 1;
        let want = source.encode(text, parse_special).unwrap();
        let got = loaded.encode(text, parse_special).unwrap();
        if want != got {
            let short: String = text.chars().take(120).collect();
            failures.push(format!("{short:?}\n    gguf {want:?}\n    hf   {got:?}"));
        }
    }
    (count, failures)
}

fn report(suite: &str, (count, failures): (usize, Vec<String>)) {
    println!("{suite}: {}/{count} identical", count - failures.len());
    for f in failures.iter().take(20) {
        println!("  FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{suite}: {} of {count} differ",
        failures.len()
    );
}

fn ids(v: &serde_json::Value) -> Vec<TokenId> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as TokenId)
        .collect()
}

#[test]
fn smollm2_export_matches_gguf() {
    let source = gguf_tokenizer("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let loaded = exported(&source);
    assert_same_metadata(&source, &loaded);
    assert_eq!(
        loaded.token_id("<|im_start|>"),
        source.token_id("<|im_start|>")
    );

    let golden = golden("smollm2-tokens.json");
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 28, "the golden file should hold 28 cases");
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected = ids(&case["ids"]);
        assert_eq!(loaded.encode(text, true).unwrap(), expected, "{text:?}");
        assert_eq!(
            loaded.decode(&expected, false).unwrap(),
            source.decode(&expected, false).unwrap(),
            "decode {text:?}"
        );
    }
    report(
        "SmolLM2 golden, parse_special",
        mismatches(&source, &loaded, texts.iter().copied(), true),
    );
    report(
        "SmolLM2 golden, as text",
        mismatches(&source, &loaded, texts.iter().copied(), false),
    );

    for name in ["heldout.txt", "train.txt"] {
        let text = std::fs::read_to_string(asset(&format!("corpus/{name}"))).unwrap();
        report(
            &format!("SmolLM2 corpus/{name} lines"),
            mismatches(&source, &loaded, text.lines(), false),
        );
    }
    let heldout = std::fs::read_to_string(asset("corpus/heldout.txt")).unwrap();
    report(
        "SmolLM2 corpus/heldout.txt whole",
        mismatches(&source, &loaded, [heldout.as_str()], false),
    );
    // Token ends agree, except that HF rounds a token ending inside a multi-byte character up
    // to the character's end ("日本語", emoji); sentence boundaries never fall there.
    for line in heldout.lines() {
        let want = source.encode_with_offsets(line).unwrap();
        assert_eq!(loaded.encode_with_offsets(line).unwrap(), want, "{line:?}");
    }
}

/// llama.cpp's reference vectors of `ggml-vocab-<name>.gguf` through the exported files.
fn llama_cpp_vectors(name: &str) {
    let source = gguf_tokenizer(&format!("vocab/ggml-vocab-{name}.gguf"));
    let loaded = exported(&source);
    assert_same_metadata(&source, &loaded);

    let cases = llama_cpp_cases(name);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = loaded.encode(text, false).unwrap();
            (&got != want).then(|| format!("{text:?}\n    want {want:?}\n    got  {got:?}"))
        })
        .collect();
    report(
        &format!("ggml-vocab-{name} exported"),
        (cases.len(), failures),
    );
    report(
        &format!("ggml-vocab-{name} exported, parse_special"),
        mismatches(
            &source,
            &loaded,
            cases.iter().map(|(t, _)| t.as_str()),
            true,
        ),
    );
    let golden = golden("smollm2-tokens.json");
    let tricky = golden["cases"].as_array().unwrap().iter();
    report(
        &format!("ggml-vocab-{name} exported, SmolLM2 golden texts"),
        mismatches(
            &source,
            &loaded,
            tricky.map(|c| c["text"].as_str().unwrap()),
            true,
        ),
    );
    let heldout = std::fs::read_to_string(asset("corpus/heldout.txt")).unwrap();
    report(
        &format!("ggml-vocab-{name} exported, corpus/heldout.txt lines"),
        mismatches(&source, &loaded, heldout.lines(), false),
    );
}

#[test]
fn llama_spm_export_vectors() {
    llama_cpp_vectors("llama-spm");
}

#[test]
fn gpt2_export_vectors() {
    llama_cpp_vectors("gpt-2");
}

/// An HF directory written back gives the same tokenizer.
#[test]
fn hf_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let tokenizer_json = anllm::testutil::llama_tokenizer_json(400).unwrap();
    let config = serde_json::json!({
        "add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "chat_template": "{{ messages }}",
    });
    std::fs::write(
        dir.path().join("tokenizer.json"),
        tokenizer_json.to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let source = Tokenizer::from_hf_dir(dir.path()).unwrap();
    let loaded = exported(&source);
    assert_same_metadata(&source, &loaded);
    let texts = ["Hello world", " two  spaces", "<s>ok</s>", "ünï 🙂", ""];
    report("HF round trip", mismatches(&source, &loaded, texts, true));
}
