//! The `anllm` binary's good runs on tiny models written by `anllm::testutil`: `generate`,
//! `score` and `inspect` print the JSON that plain library calls predict, and runs are
//! reproducible.

mod common;

use std::path::Path;

use anllm::testutil::{TinySpec, write_gguf_typed};
use anllm::{LoadedModel, TokenId, WeightDtype, load_model};
use candle_core::Device;
use candle_core::quantized::GgmlDType;
use common::{anllm, hf_model, last_json, s};
use serde_json::Value;

// The oracles below compute, with plain library calls and no code of the CLI's (no Session,
// sampler, generate loop or scorer), what `generate` and `score` must print.

fn load(path: &Path) -> LoadedModel {
    load_model(path, WeightDtype::Auto, &Device::Cpu).unwrap()
}

/// Logit rows of one causal forward pass over `tokens` from an empty cache.
fn full_forward(model: &LoadedModel, tokens: &[TokenId]) -> Vec<Vec<f32>> {
    anllm::testutil::causal_logits(&model.llama, tokens)
}

/// Index of the first largest value.
fn first_argmax(row: &[f32]) -> TokenId {
    let best = row
        .iter()
        .enumerate()
        .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
    best as TokenId
}

/// Natural-log softmax of one logit row, in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    row.iter().map(|&x| x as f64 - max - sum.ln()).collect()
}

/// `text` as the CLI's prompt: tokenized with special-token parsing off, BOS first when the
/// tokenizer asks for one.
fn prompt_ids(model: &LoadedModel, text: &str) -> Vec<TokenId> {
    let tok = &model.tokenizer;
    let mut ids = tok.encode(text, false).unwrap();
    if tok.add_bos()
        && let Some(bos) = tok.specials().bos
    {
        ids.insert(0, bos);
    }
    ids
}

/// `n` greedy tokens after `prompt`, each the argmax of the last row of a full forward pass
/// over the prompt and the tokens so far. Asserts that none ends generation, so that the CLI
/// must generate exactly `n`.
fn oracle_greedy(model: &LoadedModel, prompt: &[TokenId], n: usize) -> Vec<TokenId> {
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let next = first_argmax(full_forward(model, &seq).last().unwrap());
        assert!(
            !model.tokenizer.specials().is_end_of_generation(next),
            "the oracle reached an end-of-generation token: pick another prompt"
        );
        seq.push(next);
    }
    seq.split_off(prompt.len())
}

/// Checks `generate --json` output against the oracle: the text of `n` greedy tokens after
/// `prompt`, exactly `n` tokens generated, and the statistics of a full cache holding every
/// token but the last generated one (which is never fed back), each entry the K and V of every
/// layer as `spec` sizes them, in `kv_dtype` ("f32" or "f16").
fn assert_generate_matches_oracle(
    json: &Value,
    (model_path, spec): (&Path, &TinySpec),
    (prompt, kv_dtype): (&str, &str),
    n: usize,
) {
    let model = load(model_path);
    let prompt = prompt_ids(&model, prompt);
    let want = oracle_greedy(&model, &prompt, n);
    // Text is streamed only once its bytes form whole characters: a last token that ends
    // inside a UTF-8 sequence (a byte piece) is counted but never printed.
    let text = model.tokenizer.decode(&want, true).unwrap();
    let printed = text.trim_end_matches('\u{FFFD}');
    assert_eq!(json["text"], printed, "oracle ids {want:?}\n{json}");
    let stats = &json["stats"];
    assert_eq!(stats["generated_tokens"], n, "{json}");
    assert_eq!(stats["prompt_tokens"], prompt.len(), "{json}");
    assert_eq!(stats["stop_reason"], "length", "{json}");
    let elem = match kv_dtype {
        "f16" => size_of::<u16>(),
        _ => size_of::<f32>(),
    };
    let per_entry = spec.layers * 2 * spec.kv_heads * spec.head_dim() * elem;
    let seen = prompt.len() + n - 1;
    let cache = &stats["cache"];
    assert_eq!(cache["tokens_seen"], seen, "{json}");
    assert_eq!(cache["entries"], seen, "{json}");
    assert_eq!(cache["peak_entries"], seen, "{json}");
    assert_eq!(cache["kv_bytes"], seen * per_entry, "{json}");
    assert_eq!(cache["peak_kv_bytes"], seen * per_entry, "{json}");
    assert_eq!(cache["full_kv_bytes"], seen * per_entry, "{json}");
    assert_eq!(cache["reduction"], 0.0, "{json}");
    assert_eq!(cache["kv_dtype"], kv_dtype, "{json}");
}

/// Each `continuation` token's log-probability after `context`, from the log-softmax of one full
/// forward pass over both, and whether every one is the argmax of its row.
fn oracle_logprobs(
    model: &LoadedModel,
    context: &[TokenId],
    continuation: &[TokenId],
) -> (Vec<f64>, bool) {
    let rows = full_forward(model, &[context, continuation].concat());
    // Row i predicts token i + 1: the continuation comes from the rows before each of its ids.
    let predicting = &rows[context.len() - 1..rows.len() - 1];
    let want: Vec<f64> = predicting
        .iter()
        .zip(continuation)
        .map(|(row, &id)| log_softmax(row)[id as usize])
        .collect();
    let greedy = predicting
        .iter()
        .zip(continuation)
        .all(|(row, &id)| first_argmax(row) == id);
    (want, greedy)
}

#[test]
fn cli_generate_json_matches_library_greedy_and_cache_stats() {
    let spec = TinySpec::gqa();
    let (_tmp, dir) = hf_model(&spec);
    let args = [
        "generate",
        "-m",
        s(&dir),
        "-p",
        "hello world",
        "--max-tokens",
        "5",
        "--temperature",
        "0",
        "--json",
    ];
    let json = last_json(&anllm(&args));
    // Dense weights: an f32 cache by default.
    assert_generate_matches_oracle(&json, (&dir, &spec), ("hello world", "f32"), 5);
}

#[test]
fn cli_generate_on_q8_gguf_matches_library_greedy() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("q8.gguf");
    let spec = TinySpec::gqa();
    write_gguf_typed(&path, &spec, GgmlDType::Q8_0, true).unwrap();
    let out = anllm(&[
        "generate",
        "-m",
        s(&path),
        "-p",
        "hello world",
        "-n",
        "3",
        "--json",
    ]);
    // The default temperature is 0: greedy, on the file's quantized weights (dtype auto), with
    // the default f16 cache of a quantized model.
    let json = last_json(&out);
    assert_generate_matches_oracle(&json, (&path, &spec), ("hello world", "f16"), 3);
    let inspect = last_json(&anllm(&["inspect", "-m", s(&path), "--json"]));
    assert_eq!(inspect["format"], "gguf");
    assert_eq!(inspect["storage"]["q_proj"], "Q8_0");
    assert_eq!(inspect["rope_style"], "interleaved");
}

#[test]
fn cli_score_json_matches_library_logprobs() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let args = [
        "score",
        "-m",
        s(&dir),
        "--context",
        "hello",
        "--continuation",
        " world",
        "--json",
    ];
    let json = last_json(&anllm(&args));
    // Oracle: lm-eval's tokenization (each part on its own, no BOS before a non-empty
    // context) and the log-softmax of one full forward pass over context + continuation.
    let model = load(&dir);
    let tok = &model.tokenizer;
    let context = tok.encode("hello", false).unwrap();
    let continuation = tok.encode(" world", false).unwrap();
    let (want, greedy) = oracle_logprobs(&model, &context, &continuation);
    assert_eq!(json["context_ids"], serde_json::json!(context), "{json}");
    assert_eq!(
        json["continuation_ids"],
        serde_json::json!(continuation),
        "{json}"
    );
    assert_eq!(json["tokens"], continuation.len(), "{json}");
    assert_eq!(json["is_greedy"], greedy, "{json}");
    let got: Vec<f64> = json["token_logprobs"]
        .as_array()
        .expect("token_logprobs")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "{json}");
    // Same f32 forward pass, the CLI through its cached scorer: 1e-4 is the f32 equivalence
    // tolerance of the library's own cached-vs-full tests (TOL_F32).
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 1e-4,
            "token logprob {g} vs oracle {w}\n{json}"
        );
    }
    let total: f64 = want.iter().sum();
    let logprob = json["logprob"].as_f64().expect("logprob");
    assert!(
        (logprob - total).abs() <= 1e-4,
        "{logprob} vs oracle {total}"
    );
}

#[test]
fn cli_inspect_json_counts_parameters() {
    for tie in [false, true] {
        let spec = TinySpec {
            tie_embeddings: tie,
            ..TinySpec::gqa()
        };
        let (_tmp, dir) = hf_model(&spec);
        let json = last_json(&anllm(&["inspect", "-m", s(&dir), "--json"]));
        let expected = spec.config().unwrap().parameter_count();
        let stored: usize = anllm::testutil::hf_tensors(&spec)
            .unwrap()
            .iter()
            .map(|(_, t)| t.elem_count())
            .sum();
        assert_eq!(expected, stored, "parameter_count vs the tensors written");
        assert_eq!(json["parameters"].as_u64(), Some(expected as u64), "{json}");
        assert_eq!(json["format"], "hf-dir");
        assert_eq!(json["vocab_size"].as_u64(), Some(spec.vocab as u64));
        assert_eq!(json["config"]["tie_word_embeddings"], tie);
    }
}

#[test]
fn cli_greedy_generation_is_deterministic() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let args = [
        "generate",
        "-m",
        s(&dir),
        "-p",
        "once upon a time",
        "-n",
        "8",
        "--json",
    ];
    let (a, b) = (last_json(&anllm(&args)), last_json(&anllm(&args)));
    assert_eq!(a["text"], b["text"]);
    assert_eq!(
        a["stats"]["generated_tokens"],
        b["stats"]["generated_tokens"]
    );
}

/// `anllm generate -m DIR ARGS… --json`: the last stdout line as JSON.
fn generate_json(dir: &Path, args: &[&str]) -> Value {
    let base = ["generate", "-m", s(dir), "--json"];
    last_json(&anllm(&[&base[..], args].concat()))
}

#[test]
fn cli_sampling_with_seed_is_reproducible() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let run = |seed: &str| {
        let args = [
            "-p",
            "once upon a time",
            "-n",
            "12",
            "--temperature",
            "1.5",
            "--seed",
            seed,
        ];
        generate_json(&dir, &args)["text"].clone()
    };
    assert_eq!(run("7"), run("7"));
    let texts: std::collections::HashSet<String> = ["1", "2", "3", "4"]
        .iter()
        .map(|seed| run(seed).to_string())
        .collect();
    assert!(
        texts.len() > 1,
        "every seed sampled the same text: {texts:?}"
    );
}

/// `--logit-bias 50+100`: greedy decoding picks token 50 every time (the text is its piece
/// four times, decoded by the library); `50-100` then bans it from the plain answer.
#[test]
fn cli_logit_bias_forces_and_bans_a_token() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let run = |bias: &str| {
        generate_json(
            &dir,
            &["-p", "hello world", "-n", "4", "--logit-bias", bias],
        )
    };
    let model = load(&dir);
    let want = model.tokenizer.decode(&[50; 4], true).unwrap();
    assert_eq!(run("50+100")["text"], want.as_str());
    assert_eq!(run("50=100")["text"], want.as_str());
    let banned = run("50-100")["text"].as_str().unwrap().to_string();
    let piece = model.tokenizer.decode(&[50], true).unwrap();
    assert!(!banned.contains(piece.trim()), "{banned:?} holds {piece:?}");
}
