//! The `anllm` binary end to end on tiny models written by `anllm::testutil`: bad inputs fail
//! with one `anllm: error:` line and no panic; good runs print the promised JSON and are
//! reproducible.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anllm::testutil::{
    HfLayout, TinySpec, anllm_llama2_spec, asset, write_gguf, write_gguf_typed, write_hf_dir,
};
use anllm::{ForwardInput, LoadedModel, OutputRows, Pos, TokenId, WeightDtype, load_model};
use candle_core::Device;
use candle_core::quantized::GgmlDType;
use serde_json::Value;
use tempfile::TempDir;

/// Runs `anllm args…` with `$ANLLM_HOME` pointed at an empty folder (no default model).
fn anllm(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_anllm"))
        .args(args)
        .env("ANLLM_HOME", home.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running the anllm binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code ≠ 0, exactly one stderr line `anllm: error: …` containing `needle`, no panic.
fn assert_clean_failure(out: &Output, needle: &str) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let report = format!(
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(!out.status.success(), "expected failure\n{report}");
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(!stderr.contains("panicked"), "panic\n{report}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line\n{report}");
    assert!(lines[0].starts_with("anllm: error:"), "{report}");
    assert!(lines[0].contains(needle), "expected `{needle}`\n{report}");
}

/// The last stdout line as JSON, after checking the run succeeded.
fn last_json(out: &Output) -> Value {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

fn hf_model(spec: &TinySpec) -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    write_hf_dir(&dir, spec, HfLayout::Safetensors).unwrap();
    (tmp, dir)
}

fn gguf_model(spec: &TinySpec) -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tiny.gguf");
    write_gguf(&path, spec).unwrap();
    (tmp, path)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn truncate_to_half(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

// The oracles below compute, with plain library calls and no code of the CLI's (no Session,
// sampler, generate loop or scorer), what `generate` and `score` must print.

fn load(path: &Path) -> LoadedModel {
    load_model(path, WeightDtype::Auto, &Device::Cpu).unwrap()
}

/// Logit rows of one causal forward pass over `tokens` from an empty cache.
fn full_forward(model: &LoadedModel, tokens: &[TokenId]) -> Vec<Vec<f32>> {
    let mut cache = model.llama.new_cache(tokens.len()).unwrap();
    let pos: Vec<Pos> = (0..tokens.len() as u32).map(Pos).collect();
    let input = ForwardInput::causal(tokens, &pos, OutputRows::All);
    model
        .llama
        .forward(&input, &mut cache)
        .unwrap()
        .to_vec2()
        .unwrap()
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
/// token but the last generated one (which is never fed back), each entry the f32 K and V of
/// every layer as `spec` sizes them.
fn assert_generate_matches_oracle(
    json: &Value,
    (model_path, spec): (&Path, &TinySpec),
    prompt: &str,
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
    let per_entry = spec.layers * 2 * spec.kv_heads * spec.head_dim() * size_of::<f32>();
    let seen = prompt.len() + n - 1;
    let cache = &stats["cache"];
    assert_eq!(cache["tokens_seen"], seen, "{json}");
    assert_eq!(cache["entries"], seen, "{json}");
    assert_eq!(cache["peak_entries"], seen, "{json}");
    assert_eq!(cache["kv_bytes"], seen * per_entry, "{json}");
    assert_eq!(cache["peak_kv_bytes"], seen * per_entry, "{json}");
    assert_eq!(cache["full_kv_bytes"], seen * per_entry, "{json}");
    assert_eq!(cache["reduction"], 0.0, "{json}");
}

#[test]
fn cli_missing_model_path_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-model");
    let out = anllm(&["generate", "-m", s(&missing), "-p", "hi"]);
    assert_clean_failure(&out, "does not exist");
}

#[test]
fn cli_truncated_safetensors_fails_cleanly() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    truncate_to_half(&dir.join("model.safetensors"));
    let out = anllm(&["generate", "-m", s(&dir), "-p", "hi", "-n", "2"]);
    assert_clean_failure(&out, "safetensors");
}

#[test]
fn cli_truncated_pytorch_bin_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    write_hf_dir(&dir, &TinySpec::gqa(), HfLayout::ShardedPytorchBin).unwrap();
    truncate_to_half(&dir.join("pytorch_model-00002-of-00002.bin"));
    let out = anllm(&["inspect", "-m", s(&dir)]);
    assert_clean_failure(&out, "pytorch_model-00002-of-00002.bin");
}

#[test]
fn cli_truncated_gguf_fails_cleanly() {
    let (_tmp, path) = gguf_model(&TinySpec::gqa());
    truncate_to_half(&path);
    let out = anllm(&["generate", "-m", s(&path), "-p", "hi", "-n", "2"]);
    assert_clean_failure(&out, "tiny.gguf");
    // Cut inside the header as well.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..100]).unwrap();
    let out = anllm(&["inspect", "-m", s(&path)]);
    assert_clean_failure(&out, "tiny.gguf");
}

#[test]
fn cli_config_disagreeing_with_tensors_fails_cleanly() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let config = dir.join("config.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["hidden_size"] = 48.into();
    std::fs::write(&config, json.to_string()).unwrap();
    let out = anllm(&[
        "score",
        "-m",
        s(&dir),
        "--context",
        "a b",
        "--continuation",
        " c",
    ]);
    assert_clean_failure(&out, "shape mismatch");
}

#[test]
fn cli_gguf_with_unknown_tensor_type_fails_cleanly() {
    let (_tmp, path) = gguf_model(&TinySpec::gqa());
    let mut bytes = std::fs::read(&path).unwrap();
    // Tensor info: u64 name length, name, u32 n_dims, n_dims × u64 dims, u32 ggml type, u64 offset.
    let name = b"token_embd.weight";
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name);
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("tensor info");
    let dims_at = at + key.len();
    let n_dims = u32::from_le_bytes(bytes[dims_at..dims_at + 4].try_into().unwrap()) as usize;
    assert_eq!(n_dims, 2);
    let type_at = dims_at + 4 + 8 * n_dims;
    assert_eq!(
        bytes[type_at..type_at + 4],
        0u32.to_le_bytes(),
        "F32 expected"
    );
    bytes[type_at..type_at + 4].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let out = anllm(&["inspect", "-m", s(&path), "--json"]);
    assert_clean_failure(&out, "99");
}

#[test]
fn cli_prompt_longer_than_context_fails_cleanly() {
    let spec = TinySpec {
        max_pos: 32,
        ..TinySpec::gqa()
    };
    let (_tmp, dir) = hf_model(&spec);
    let long = "the quick brown fox jumps over the lazy dog ".repeat(20);
    let out = anllm(&["generate", "-m", s(&dir), "-p", &long, "-n", "4"]);
    assert_clean_failure(&out, "context");
    let out = anllm(&[
        "score",
        "-m",
        s(&dir),
        "--context",
        &long,
        "--continuation",
        " end",
    ]);
    assert_clean_failure(&out, "context");
}

#[test]
fn cli_bad_flag_values_fail_cleanly() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let out = anllm(&["generate", "-m", s(&dir), "-p", "hi", "--threads", "0"]);
    assert_clean_failure(&out, "--threads");
    let out = anllm(&["generate", "-m", s(&dir), "-p", "hi", "--top-p", "0"]);
    assert_clean_failure(&out, "top_p");
    let out = anllm(&["generate", "-m", s(&dir), "-p", "hi", "--temperature=-1"]);
    assert_clean_failure(&out, "temperature");
    for args in [
        &["generate", "-m", s(&dir), "-p", "hi", "--no-such-flag"][..],
        &["generate", "-m", s(&dir), "-p", "hi", "--threads", "many"][..],
        &["frobnicate"][..],
    ] {
        let out = anllm(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.starts_with("error:"), "{stderr}");
    }
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
    assert_generate_matches_oracle(&json, (&dir, &spec), "hello world", 5);
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
    // The default temperature is 0: greedy, on the file's quantized weights (dtype auto).
    assert_generate_matches_oracle(&last_json(&out), (&path, &spec), "hello world", 3);
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
    let rows = full_forward(&model, &[context.clone(), continuation.clone()].concat());
    // Row i predicts token i + 1: the continuation comes from the rows before each of its ids.
    let predicting = &rows[context.len() - 1..rows.len() - 1];
    let want: Vec<f64> = predicting
        .iter()
        .zip(&continuation)
        .map(|(row, &id)| log_softmax(row)[id as usize])
        .collect();
    let greedy = predicting
        .iter()
        .zip(&continuation)
        .all(|(row, &id)| first_argmax(row) == id);
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

#[test]
fn cli_sampling_with_seed_is_reproducible() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let run = |seed: &str| {
        let args = [
            "generate",
            "-m",
            s(&dir),
            "-p",
            "once upon a time",
            "-n",
            "12",
            "--temperature",
            "1.5",
            "--seed",
            seed,
            "--json",
        ];
        last_json(&anllm(&args))["text"].clone()
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

#[test]
fn cli_bad_anchor_and_cache_flags_fail_cleanly() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let base = ["generate", "-m", s(&dir), "-p", "a. b. c", "-n", "2"];
    for (extra, needle) in [
        (&["--anchors", "period"][..], "anchors"),
        (&["--anchors", "ids:99999"][..], "outside the vocabulary"),
        (&["--anchors", "ids:1,x"][..], "anchors"),
        (&["--anchors", "ac"][..], "<AC>"),
        (&["--pin", "5:3"][..], "--pin"),
        (&["--pin", "five"][..], "--pin"),
        (&["--chunk-size", "0"][..], "--chunk-size"),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        assert_clean_failure(&anllm(&args), needle);
    }
}

#[test]
fn cli_anchored_generate_and_score_report_cache_statistics() {
    let (_tmp, dir) = hf_model(&TinySpec::gqa());
    let prompt = "ab. cd. ef. gh. ij. kl";
    let generated = last_json(&anllm(&[
        "generate",
        "-m",
        s(&dir),
        "-p",
        prompt,
        "-n",
        "4",
        "--anchors",
        "ep",
        "--chunk-size",
        "3",
        "--json",
    ]));
    let cache = &generated["stats"]["cache"];
    let (entries, seen) = (cache["entries"].as_u64(), cache["tokens_seen"].as_u64());
    assert!(entries < seen, "{generated}");
    assert!(cache["reduction"].as_f64() > Some(0.0), "{generated}");
    assert!(
        cache["peak_kv_bytes"].as_u64() >= cache["kv_bytes"].as_u64(),
        "{generated}"
    );
    let score = |extra: &[&str]| {
        let mut args = vec![
            "score",
            "-m",
            s(&dir),
            "--context",
            prompt,
            "--continuation",
            " mn. op",
        ];
        args.extend_from_slice(extra);
        args.extend(["--anchors", "ep", "--json"]);
        last_json(&anllm(&args))
    };
    let (cached, masked) = (score(&["--chunk-size", "2"]), score(&["--mask-only"]));
    let diff = cached["logprob"].as_f64().unwrap() - masked["logprob"].as_f64().unwrap();
    assert!(diff.abs() < 1e-4, "{cached} {masked}");
    assert_eq!(masked["mode"], "mask_only");
    assert!(cached["cache"]["entries"].as_u64() < masked["cache"]["entries"].as_u64());
    // The pinned context stays whole; only the continuation's closed segment is dropped.
    let pinned = score(&["--pin-prompt"]);
    let context = pinned["context_ids"].as_array().unwrap().len() as u64;
    let kept = pinned["cache"]["entries"].as_u64().unwrap();
    assert!(
        kept > context && kept < masked["cache"]["entries"].as_u64().unwrap(),
        "{pinned}"
    );
}

#[test]
fn cli_insert_anchors_puts_ac_after_each_context_sentence() {
    let tmp = tempfile::tempdir().unwrap();
    write_hf_dir(tmp.path(), &anllm_llama2_spec(32002), HfLayout::Safetensors).unwrap();
    // The sentence splitter's parameters come from the fetched assets.
    asset("punkt/english.json");
    let home = anllm::testutil::anllm_home();
    let run = |anchors: &str| {
        Command::new(env!("CARGO_BIN_EXE_anllm"))
            .args([
                "score",
                "-m",
                s(tmp.path()),
                "--anchors",
                anchors,
                "--insert-anchors",
            ])
            .args([
                "--context",
                "Mr. Smith left. It rained. We",
                "--continuation",
                " ran",
            ])
            .arg("--json")
            .env("ANLLM_HOME", &home)
            .output()
            .unwrap()
    };
    let json = last_json(&run("ac"));
    let ids = json["context_ids"].as_array().unwrap();
    assert_eq!(ids.iter().filter(|&id| id == 32001).count(), 2, "{json}");
    assert_clean_failure(&run("ep"), "--anchors ac");
}
