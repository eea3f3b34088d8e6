//! Synthetic vocabularies: a Llama-style SentencePiece-BPE `tokenizer.json` (byte fallback,
//! `▁` word marks) and a GPT-2 byte-level BPE vocabulary for GGUF metadata.
//!
//! Pieces beyond the alphabet are made by merging pairs of existing pieces in a fixed order, so
//! every merge is valid and the vocabulary has exactly the requested size.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::{Error, Result};

/// Size of the Llama-2 SentencePiece vocabulary before AnLLM's added tokens.
pub const LLAMA2_BASE_VOCAB: usize = 32_000;

/// Tokens AnLLM adds after the Llama-2 vocabulary: `(content, special)`.
const ANLLM_ADDED: [(&str, bool); 2] = [("[PAD]", true), ("<AC>", false)];

/// `<unk>`, `<s>`, `</s>`.
const LLAMA_CONTROL: [&str; 3] = ["<unk>", "<s>", "</s>"];

/// Characters that become single-character pieces (word mark first).
const ALPHABET: &str =
    "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()\"";

/// `n_new` new pieces made by merging pairs of `alphabet` and earlier new pieces, with the merges
/// that make them (`left right`, rank order). A right part never starts with `word_mark`.
fn grow(alphabet: &[String], n_new: usize, word_mark: char) -> Result<(Vec<String>, Vec<String>)> {
    let mut pool: Vec<String> = alphabet.to_vec();
    let mut seen: HashSet<String> = pool.iter().cloned().collect();
    let mut merges = Vec::with_capacity(n_new);
    let mut n = 0;
    while pool.len() - alphabet.len() < n_new {
        if n >= pool.len() {
            return Err(Error::config("vocab", "synthetic vocabulary cannot grow"));
        }
        for i in 0..=n {
            let pairs = if i == n {
                vec![(n, n)]
            } else {
                vec![(i, n), (n, i)]
            };
            for (a, b) in pairs {
                if pool[b].starts_with(word_mark) || pool.len() - alphabet.len() == n_new {
                    continue;
                }
                let merged = format!("{}{}", pool[a], pool[b]);
                if seen.insert(merged.clone()) {
                    merges.push(format!("{} {}", pool[a], pool[b]));
                    pool.push(merged);
                }
            }
        }
        n += 1;
    }
    Ok((pool.split_off(alphabet.len()), merges))
}

/// The model vocabulary size and added tokens of a synthetic Llama tokenizer with `vocab` ids.
fn llama_layout(vocab: usize) -> Result<(usize, &'static [(&'static str, bool)])> {
    let min = LLAMA_CONTROL.len() + 256 + 2;
    if vocab < min || vocab > LLAMA2_BASE_VOCAB + ANLLM_ADDED.len() {
        return Err(Error::config(
            "vocab",
            format!("synthetic Llama tokenizer needs {min}..=32002 ids, got {vocab}"),
        ));
    }
    Ok(match vocab.checked_sub(LLAMA2_BASE_VOCAB) {
        Some(extra) if extra > 0 => (LLAMA2_BASE_VOCAB, &ANLLM_ADDED[..extra]),
        _ => (vocab, &[]),
    })
}

/// Llama pieces: control tokens, `<0xXX>` bytes, alphabet, merged pieces; and the merges.
fn llama_pieces(n_model: usize) -> Result<(Vec<String>, Vec<String>)> {
    let mut pieces: Vec<String> = LLAMA_CONTROL.iter().map(|s| s.to_string()).collect();
    pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    let room = n_model - pieces.len();
    let alphabet: Vec<String> = ALPHABET.chars().take(room).map(String::from).collect();
    let (grown, merges) = grow(&alphabet, room - alphabet.len(), '▁')?;
    pieces.extend(alphabet);
    pieces.extend(grown);
    Ok((pieces, merges))
}

fn added_token(id: usize, content: &str, special: bool) -> Value {
    json!({
        "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
        "normalized": false, "special": special,
    })
}

/// A Llama-2 style `tokenizer.json` with `vocab` ids: with 32001 / 32002 ids, the 32000-piece
/// base plus `[PAD]` (special) and `<AC>` (not special) as in AnLLM-EP / AnLLM-AC.
pub fn llama_tokenizer_json(vocab: usize) -> Result<Value> {
    let (n_model, added) = llama_layout(vocab)?;
    let (pieces, merges) = llama_pieces(n_model)?;
    let vocab_map: serde_json::Map<String, Value> = pieces
        .iter()
        .enumerate()
        .map(|(id, p)| (p.clone(), json!(id)))
        .collect();
    let mut added_tokens: Vec<Value> = (0..)
        .zip(LLAMA_CONTROL)
        .map(|(id, p)| added_token(id, p, true))
        .collect();
    for (i, (content, special)) in added.iter().enumerate() {
        added_tokens.push(added_token(n_model + i, content, *special));
    }
    let bos = json!({"SpecialToken": {"id": "<s>", "type_id": 0}});
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]},
        "pre_tokenizer": null,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab_map, "merges": merges,
        },
    }))
}

/// `tokenizer_config.json` of the synthetic Llama tokenizer.
pub fn llama_tokenizer_config(vocab: usize) -> Result<Value> {
    let (n_model, added) = llama_layout(vocab)?;
    let mut decoder = serde_json::Map::new();
    for (id, p) in LLAMA_CONTROL.iter().enumerate() {
        decoder.insert(id.to_string(), added_token(id, p, true));
    }
    for (i, (content, special)) in added.iter().enumerate() {
        decoder.insert(
            (n_model + i).to_string(),
            added_token(n_model + i, content, *special),
        );
    }
    let pad = added.first().map(|(p, _)| *p);
    Ok(json!({
        "add_bos_token": true,
        "add_eos_token": false,
        "added_tokens_decoder": decoder,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": pad,
        "clean_up_tokenization_spaces": false,
        "legacy": false,
        "model_max_length": 1_000_000_000_000_000_000u64,
        "tokenizer_class": "LlamaTokenizer",
    }))
}

/// `special_tokens_map.json` of the synthetic Llama tokenizer.
pub fn llama_special_tokens_map(vocab: usize) -> Result<Value> {
    let (_, added) = llama_layout(vocab)?;
    let token = |t: &str| {
        json!({"content": t, "lstrip": false, "normalized": false, "rstrip": false,
               "single_word": false})
    };
    let mut map = json!({"bos_token": token("<s>"), "eos_token": token("</s>"),
                         "unk_token": token("<unk>")});
    if let (Some((pad, _)), Some(obj)) = (added.first(), map.as_object_mut()) {
        obj.insert("pad_token".into(), token(pad));
    }
    Ok(map)
}

/// GPT-2's printable stand-in for each byte (`bytes_to_unicode`).
fn byte_chars() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut extra = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap_or('?')
            }
        })
        .collect()
}

/// A GPT-2 byte-level BPE vocabulary of exactly `n` tokens for GGUF metadata: tokens, token
/// types (`<|endoftext|>` = id 0 is control, the rest normal) and merges.
pub fn gpt2_vocab(n: usize) -> Result<(Vec<String>, Vec<i32>, Vec<String>)> {
    if n < 257 + 2 {
        return Err(Error::config(
            "vocab",
            "GGUF gpt2 vocabulary needs at least 259 ids",
        ));
    }
    let chars = byte_chars();
    let mut tokens = vec!["<|endoftext|>".to_string()];
    tokens.extend(chars.iter().map(|c| c.to_string()));
    let space = chars[usize::from(b' ')];
    let alphabet: Vec<String> = std::iter::once(space)
        .chain('a'..='z')
        .chain('A'..='Z')
        .map(String::from)
        .collect();
    let (grown, merges) = grow(&alphabet, n - tokens.len(), space)?;
    tokens.extend(grown);
    let mut types = vec![1; tokens.len()];
    types[0] = 3;
    Ok((tokens, types, merges))
}
