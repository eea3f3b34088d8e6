use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::{Value as Json, json};

use super::*;
use anllm::testutil::{TinySpec, llama_tokenizer_json, write_gguf};
use anllm::tokenizer::Tokenizer;

/// The files of a synthetic 400-id Llama tokenizer (ids 0..400, no `[PAD]` / `<AC>`).
fn llama_files() -> Vec<(String, Vec<u8>)> {
    let config = json!({"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>",
                        "unk_token": "<unk>", "added_tokens_decoder": {}});
    vec![
        (
            TOKENIZER_JSON.into(),
            llama_tokenizer_json(400).unwrap().to_string().into_bytes(),
        ),
        (
            TOKENIZER_CONFIG_JSON.into(),
            config.to_string().into_bytes(),
        ),
    ]
}

fn file_json(files: &[(String, Vec<u8>)], name: &str) -> Json {
    let (_, bytes) = files.iter().find(|(n, _)| n == name).unwrap();
    serde_json::from_slice(bytes).unwrap()
}

fn load(files: &[(String, Vec<u8>)]) -> Tokenizer {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    Tokenizer::from_hf_dir(dir.path()).unwrap()
}

#[test]
fn tokens_are_appended_then_reused() {
    let mut files = llama_files();
    let ids = extend_tokenizer(&mut files, &[PAD_TOKEN, AC_TOKEN]).unwrap();
    assert_eq!(ids, [400, 401]);
    let n_added = file_json(&files, TOKENIZER_JSON)["added_tokens"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(n_added, 5);

    // Again, plus an existing control token and a plain piece: no new id, no duplicate entry.
    let again = extend_tokenizer(&mut files, &[AC_TOKEN, PAD_TOKEN, "<s>", "a"]).unwrap();
    let a = llama_tokenizer_json(400).unwrap()["model"]["vocab"]["a"]
        .as_u64()
        .unwrap() as TokenId;
    assert_eq!(again, [401, 400, 1, a]);
    let added = file_json(&files, TOKENIZER_JSON)["added_tokens"].clone();
    let contents: Vec<&str> = added
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["<unk>", "<s>", "</s>", "a", "[PAD]", "<AC>"]);

    let config = file_json(&files, TOKENIZER_CONFIG_JSON);
    assert_eq!(config["pad_token"], PAD_TOKEN);
    assert_eq!(config["added_tokens_decoder"]["401"]["content"], AC_TOKEN);
}

#[test]
fn extended_files_load() {
    let mut files = llama_files();
    extend_tokenizer(&mut files, &[PAD_TOKEN, AC_TOKEN]).unwrap();
    let tokenizer = load(&files);
    assert_eq!(tokenizer.token_id(AC_TOKEN), Some(401));
    assert_eq!(tokenizer.specials().pad, Some(400));
    assert_eq!(tokenizer.vocab_size(), 402);
    let ids = tokenizer.encode("a<AC>b", true).unwrap();
    assert!(ids.contains(&401), "{ids:?}");
    assert_eq!(tokenizer.specials().bos, Some(1));
}

#[test]
fn only_ac_leaves_pad_alone() {
    let mut files = llama_files();
    assert_eq!(extend_tokenizer(&mut files, &[AC_TOKEN]).unwrap(), [400]);
    assert!(
        file_json(&files, TOKENIZER_CONFIG_JSON)
            .get("pad_token")
            .is_none()
    );
    assert_eq!(load(&files).specials().pad, None);
}

/// A GGUF BPE tokenizer written as HF files, then extended.
#[test]
fn gguf_export_extends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path, &TinySpec::gqa()).unwrap();
    let source = gguf_tokenizer(&path);
    let mut files = source.to_hf_files().unwrap();
    assert!(
        !files
            .iter()
            .any(|(n, _)| n == SPECIAL_TOKENS_MAP_JSON || n.contains("generation"))
    );
    let ids = extend_tokenizer(&mut files, &[PAD_TOKEN, AC_TOKEN]).unwrap();
    assert_eq!(ids, [384, 385]);
    let tokenizer = load(&files);
    assert_eq!(tokenizer.specials().pad, Some(384));
    assert_eq!(tokenizer.specials().eos, source.specials().eos);
    let text = "hello world. and more";
    let ac = tokenizer.encode("hello world.<AC> and more", true).unwrap();
    assert!(ac.contains(&385), "{ac:?}");
    assert_eq!(
        tokenizer.encode(text, true).unwrap(),
        source.encode(text, true).unwrap()
    );
}

fn gguf_tokenizer(path: &Path) -> Tokenizer {
    let mut file = std::fs::File::open(path).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    Tokenizer::from_gguf(&content).unwrap()
}

#[test]
fn missing_tokenizer_json_is_an_error() {
    let mut files = vec![(TOKENIZER_CONFIG_JSON.to_owned(), b"{}".to_vec())];
    assert!(extend_tokenizer(&mut files, &[AC_TOKEN]).is_err());
}

/// Rows `[0, 0]`, `[2, 4]`, `[4, 2]`: period row 1, mean `[2, 2]`.
fn matrix() -> Tensor {
    Tensor::new(&[[0f32, 0.], [2., 4.], [4., 2.]], &Device::Cpu).unwrap()
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().unwrap()
}

#[test]
fn both_inits_give_the_expected_rows() {
    let copied = resize_rows(&matrix(), 5, NewRowInit::CopyPeriod, 1).unwrap();
    assert_eq!(
        rows(&copied),
        [[0., 0.], [2., 4.], [4., 2.], [2., 4.], [2., 4.]]
    );
    let mean = resize_rows(&matrix(), 4, NewRowInit::Mean, 99).unwrap();
    assert_eq!(rows(&mean), [[0., 0.], [2., 4.], [4., 2.], [2., 2.]]);
    let same = resize_rows(&matrix(), 3, NewRowInit::Mean, 0).unwrap();
    assert_eq!(rows(&same), rows(&matrix()));
}

#[test]
fn bad_resizes_are_errors() {
    assert!(resize_rows(&matrix(), 2, NewRowInit::Mean, 0).is_err());
    assert!(resize_rows(&matrix(), 4, NewRowInit::CopyPeriod, 3).is_err());
    let vector = Tensor::new(&[1f32, 2.], &Device::Cpu).unwrap();
    assert!(resize_rows(&vector, 4, NewRowInit::Mean, 0).is_err());
}

#[test]
fn init_parses() {
    assert_eq!(
        "copy-period".parse::<NewRowInit>().unwrap(),
        NewRowInit::CopyPeriod
    );
    assert_eq!("mean".parse::<NewRowInit>().unwrap(), NewRowInit::Mean);
    assert!("random".parse::<NewRowInit>().is_err());
    assert_eq!(NewRowInit::Mean.to_string(), "mean");
    assert_eq!(NewRowInit::default(), NewRowInit::CopyPeriod);
}

fn config(tied: bool) -> LlamaConfig {
    serde_json::from_value(json!({
        "vocab_size": 3, "hidden_size": 2, "intermediate_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 1, "tie_word_embeddings": tied,
    }))
    .unwrap()
}

#[test]
fn tied_model_grows_only_the_embedding() {
    let mut tensors = HashMap::from([(EMBED_TOKENS.to_owned(), matrix())]);
    let mut cfg = config(true);
    extend_model_tensors(&mut tensors, &mut cfg, 5, NewRowInit::CopyPeriod, 1).unwrap();
    assert_eq!(cfg.vocab_size, 5);
    assert_eq!(tensors[EMBED_TOKENS].dims(), [5, 2]);
    assert!(!tensors.contains_key(LM_HEAD));
}

#[test]
fn untied_model_grows_both() {
    let head = (matrix() * 10.0).unwrap();
    let mut tensors = HashMap::from([
        (EMBED_TOKENS.to_owned(), matrix()),
        (LM_HEAD.to_owned(), head),
    ]);
    let mut cfg = config(false);
    extend_model_tensors(&mut tensors, &mut cfg, 4, NewRowInit::CopyPeriod, 2).unwrap();
    assert_eq!(cfg.vocab_size, 4);
    assert_eq!(rows(&tensors[EMBED_TOKENS])[3], [4., 2.]);
    assert_eq!(rows(&tensors[LM_HEAD])[3], [40., 20.]);
}

#[test]
fn mismatches_are_errors_and_change_nothing() {
    // Untied without an LM head.
    let mut tensors = HashMap::from([(EMBED_TOKENS.to_owned(), matrix())]);
    let mut cfg = config(false);
    assert!(extend_model_tensors(&mut tensors, &mut cfg, 5, NewRowInit::Mean, 1).is_err());
    assert_eq!(
        (cfg.vocab_size, tensors[EMBED_TOKENS].dims()),
        (3, &[3, 2][..])
    );

    // An LM head with other rows than the config.
    let short = matrix().narrow(0, 0, 2).unwrap();
    tensors.insert(LM_HEAD.to_owned(), short);
    assert!(extend_model_tensors(&mut tensors, &mut cfg, 5, NewRowInit::Mean, 1).is_err());
    assert_eq!(tensors[EMBED_TOKENS].dims(), [3, 2]);

    // No embedding at all; an embedding that disagrees with vocab_size.
    let mut empty = HashMap::new();
    assert!(extend_model_tensors(&mut empty, &mut cfg, 5, NewRowInit::Mean, 1).is_err());
    let mut cfg = config(true);
    cfg.vocab_size = 7;
    let mut tensors = HashMap::from([(EMBED_TOKENS.to_owned(), matrix())]);
    assert!(extend_model_tensors(&mut tensors, &mut cfg, 9, NewRowInit::Mean, 1).is_err());
    assert_eq!(cfg.vocab_size, 7);
}
