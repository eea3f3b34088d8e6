//! Training checkpoints: Hugging Face layout that the inference loader reads, full round trip
//! of weights, optimizer and trainer state, atomic saves that survive a crash, pruning, and
//! clear errors for damaged files.

use std::path::Path;

use anllm::testutil::{HfLayout, TinySpec, hf_tensors, write_hf_dir};
use anllm::{LoadedModel, TokenId, WeightDtype, WeightSource, load_model};
use anllm_train::checkpoint::{
    Checkpoint, LATEST, TrainerState, list_checkpoints, load_checkpoint, load_latest,
    read_tokenizer_files, save_checkpoint,
};
use anllm_train::data::DataPosition;
use anllm_train::optim::{AdamW, AdamWConfig};
use candle_core::{DType, Device, Tensor, Var};
use serde_json::json;

const TOKENS: [TokenId; 5] = [1, 300, 17, 259, 42];

fn logits(model: &LoadedModel) -> Vec<f32> {
    anllm::testutil::causal_logits(&model.llama, &TOKENS).concat()
}

fn state(step: u64) -> TrainerState {
    TrainerState {
        step,
        data: DataPosition {
            epoch: 1,
            index: 7 * step as usize,
        },
        seed: 34,
        tokens_seen: 255 * step,
        elapsed_s: 1.5 * step as f64,
        log_records: step,
        run: json!({"anchors": "ep", "lr": 2e-5}),
        extra: json!(null),
    }
}

/// A tiny model, its source directory, and an optimizer that has taken one step.
struct Fixture {
    spec: TinySpec,
    params: Vec<(String, Tensor)>,
    tokenizer: Vec<(String, Vec<u8>)>,
    optimizer: Vec<(String, Tensor)>,
}

fn fixture(src: &Path) -> Fixture {
    let spec = TinySpec::gqa();
    write_hf_dir(src, &spec, HfLayout::Safetensors).unwrap();
    let params = hf_tensors(&spec).unwrap();
    let vars: Vec<(String, Var)> = params
        .iter()
        .map(|(n, t)| (n.clone(), Var::from_tensor(&t.copy().unwrap()).unwrap()))
        .collect();
    let mut opt = AdamW::new(&vars, AdamWConfig::default()).unwrap();
    let loss = vars
        .iter()
        .map(|(_, v)| v.as_tensor().sqr().unwrap().sum_all().unwrap())
        .reduce(|a, b| (a + b).unwrap())
        .unwrap();
    opt.step(&vars, &loss.backward().unwrap(), 1e-3, Some(1.0))
        .unwrap();
    Fixture {
        spec,
        params,
        tokenizer: read_tokenizer_files(src).unwrap(),
        optimizer: opt.state_tensors().unwrap(),
    }
}

fn save(f: &Fixture, out: &Path, step: u64, keep: Option<usize>) -> std::path::PathBuf {
    let config = f.spec.config().unwrap();
    let state = state(step);
    let extra = json!({"bos_token_id": 1, "eos_token_id": 2, "vocab_size": 1});
    let ckpt = Checkpoint {
        params: &f.params,
        config: &config,
        config_extra: Some(&extra),
        tokenizer_files: &f.tokenizer,
        optimizer: &f.optimizer,
        state: &state,
    };
    save_checkpoint(out, step, &ckpt, keep).unwrap()
}

/// Same names, shapes and bits (f32 and i64 tensors).
fn same(a: &[(String, Tensor)], b: &[(String, Tensor)]) {
    assert_eq!(a.len(), b.len());
    for (name, t) in a {
        let (_, u) = b.iter().find(|(n, _)| n == name).expect(name);
        assert_eq!(t.dims(), u.dims(), "{name}");
        assert_eq!(t.dtype(), u.dtype(), "{name}");
        let bits = |t: &Tensor| -> Vec<f64> {
            let t = t.flatten_all().unwrap();
            t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
        };
        assert_eq!(bits(t), bits(u), "{name}");
    }
}

#[test]
fn checkpoint_round_trips_and_loads_for_inference() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("run"));
    let f = fixture(&src);
    let dir = save(&f, &out, 50, None);
    assert_eq!(dir, out.join("checkpoint-000050"));
    for file in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
        #[cfg(unix)]
        if file.ends_with(".safetensors") {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{file}: mode {mode:o}");
        }
    }
    // The inference loader reads it, with the very same weights.
    let original = load_model(&src, WeightDtype::F32, &Device::Cpu).unwrap();
    let reloaded = load_model(&dir, WeightDtype::F32, &Device::Cpu).unwrap();
    assert_eq!(logits(&original), logits(&reloaded));
    let mut weights = WeightSource::open_hf_dir(&dir, WeightDtype::F32, &Device::Cpu).unwrap();
    assert!(!weights.contains("model.norm.weight.exp_avg"));
    for (name, t) in &f.params {
        let u = weights.tensor(name, t.dims()).unwrap();
        same(&[(name.clone(), t.clone())], &[(name.clone(), u)]);
    }
    // config.json: HF keys, the config's values over the extra keys.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"], json!(["LlamaForCausalLM"]));
    assert_eq!(config["model_type"], json!("llama"));
    assert_eq!(config["torch_dtype"], json!("float32"));
    assert_eq!(config["eos_token_id"], json!(2));
    assert_eq!(config["vocab_size"], json!(f.spec.vocab));
    // Everything comes back.
    let loaded = load_latest(&out).unwrap().unwrap();
    assert_eq!(loaded.dir, dir);
    assert_eq!(loaded.state, state(50));
    assert_eq!(loaded.config, f.spec.config().unwrap());
    same(&loaded.params, &f.params);
    same(&loaded.optimizer, &f.optimizer);
    let vars: Vec<(String, Var)> = f
        .params
        .iter()
        .map(|(n, t)| (n.clone(), Var::from_tensor(t).unwrap()))
        .collect();
    let mut opt = AdamW::new(&vars, AdamWConfig::default()).unwrap();
    opt.load_state(&loaded.optimizer).unwrap();
    assert_eq!(opt.steps(), 1);
    same(&opt.state_tensors().unwrap(), &f.optimizer);
}

#[test]
fn crashed_save_leaves_the_previous_checkpoint_current() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("run"));
    let f = fixture(&src);
    assert!(load_latest(&out).unwrap().is_none());
    save(&f, &out, 10, None);
    // A save of step 20 killed half-way: a temp directory with a partial weights file.
    let partial = out.join(".tmp-checkpoint-000020");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join("model.safetensors"), b"\x10\x00\x00").unwrap();
    let latest = load_latest(&out).unwrap().unwrap();
    assert_eq!(latest.state.step, 10);
    assert_eq!(list_checkpoints(&out).unwrap().len(), 1);
    // The next save cleans it up and moves `latest.json` on.
    save(&f, &out, 20, None);
    assert!(!partial.exists());
    assert_eq!(load_latest(&out).unwrap().unwrap().state.step, 20);
    // Saving a step again replaces it whole.
    save(&f, &out, 20, None);
    assert_eq!(load_latest(&out).unwrap().unwrap().state.step, 20);
    // Without `latest.json` the newest complete checkpoint is used.
    std::fs::remove_file(out.join(LATEST)).unwrap();
    assert_eq!(load_latest(&out).unwrap().unwrap().state.step, 20);
}

#[test]
fn keep_last_prunes_older_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("run"));
    let f = fixture(&src);
    for step in [1, 2, 3] {
        save(&f, &out, step, Some(2));
    }
    let steps: Vec<u64> = list_checkpoints(&out)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(steps, [2, 3]);
    save(&f, &out, 4, Some(0));
    assert_eq!(list_checkpoints(&out).unwrap().len(), 1);
}

#[test]
fn damaged_files_are_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("src"), tmp.path().join("run"));
    let f = fixture(&src);
    let dir = save(&f, &out, 5, None);
    let err = |dir: &Path| load_checkpoint(dir).unwrap_err().to_string();
    // Truncated weights.
    let model = dir.join("model.safetensors");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    assert!(err(&dir).contains("model.safetensors"), "{}", err(&dir));
    std::fs::write(&model, &bytes).unwrap();
    // Missing optimizer state.
    let opt = dir.join("optimizer.safetensors");
    let opt_bytes = std::fs::read(&opt).unwrap();
    std::fs::remove_file(&opt).unwrap();
    assert!(err(&dir).contains("optimizer.safetensors"), "{}", err(&dir));
    std::fs::write(&opt, opt_bytes).unwrap();
    // Corrupt trainer state.
    let state_path = dir.join("trainer_state.json");
    std::fs::write(&state_path, b"{\"step\": 5, \"data\"").unwrap();
    assert!(err(&dir).contains("trainer_state.json"), "{}", err(&dir));
    // Corrupt latest.json.
    std::fs::write(out.join(LATEST), b"{\"checkpoint\": \"../elsewhere\"}").unwrap();
    let e = load_latest(&out).unwrap_err().to_string();
    assert!(e.contains("latest.json"), "{e}");
}
