//! The training model computes the inference model's logits: same checkpoint (HF directory,
//! GGUF with interleaved Q/K rows in F32, F16 and Q8_0), same AnSAN mask, fresh cache.

use std::path::Path;

use anllm::mask::{MaskRule, training_mask};
use anllm::model::{ForwardInput, Llama, OutputRows, Visibility};
use anllm::testutil::{
    HfLayout, TinySpec, max_abs_diff, write_gguf_typed, write_hf_dir, write_hf_dir_tensors,
};
use anllm::weights::{WeightDtype, WeightSource, read_config};
use anllm::{Pos, TokenId};
use anllm_train::model::TrainModel;
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};

use super::{batch, cells_of};

/// The f32 tolerance of the issue.
const TOL: f32 = 1e-4;

/// A stream with three closed segments and an open one.
const TOKENS: [TokenId; 21] = [
    1, 40, 41, 42, 10, 43, 44, 11, 45, 46, 47, 48, 10, 49, 50, 51, 11, 52, 53, 54, 55,
];

fn open(path: &Path) -> WeightSource {
    match path.is_dir() {
        true => WeightSource::open_hf_dir(path, WeightDtype::F32, &Device::Cpu).unwrap(),
        false => WeightSource::open_gguf(path, WeightDtype::F32, &Device::Cpu).unwrap(),
    }
}

/// Logits [t, vocab] of the inference model over `TOKENS[..t]` with the AnSAN training mask.
fn inference_logits(path: &Path) -> Vec<Vec<f32>> {
    let mut src = open(path);
    let cfg = read_config(&src).unwrap();
    let llama = Llama::load(&mut src, &cfg, &Device::Cpu).unwrap();
    let tokens = &TOKENS[..TOKENS.len() - 1];
    let cells = cells_of(tokens);
    let mask = training_mask(MaskRule::AnSan, &cells);
    let positions: Vec<Pos> = cells.iter().map(|c| c.pos).collect();
    let input = ForwardInput {
        tokens,
        positions: &positions,
        visibility: Visibility::Mask(&mask),
        rows: OutputRows::All,
        cells: Some(&cells),
    };
    let mut cache = llama.new_cache(tokens.len()).unwrap();
    llama
        .forward(&input, &mut cache)
        .unwrap()
        .to_vec2()
        .unwrap()
}

fn train_model(path: &Path) -> TrainModel {
    let mut src = open(path);
    let cfg = read_config(&src).unwrap();
    TrainModel::from_source(&mut src, &cfg, &Device::Cpu).unwrap()
}

fn train_logits(model: &TrainModel) -> Vec<Vec<f32>> {
    let logits = model
        .forward(&batch(&[TOKENS.to_vec()], &[0], None))
        .unwrap();
    logits.squeeze(0).unwrap().to_vec2().unwrap()
}

#[test]
fn train_forward_equals_masked_inference_on_an_hf_dir() {
    for tie_embeddings in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let spec = TinySpec {
            tie_embeddings,
            ..TinySpec::gqa()
        };
        write_hf_dir(dir.path(), &spec, HfLayout::Safetensors).unwrap();
        let diff = max_abs_diff(
            &train_logits(&train_model(dir.path())),
            &inference_logits(dir.path()),
        );
        assert!(diff < TOL, "tied {tie_embeddings}: max |Δlogit| {diff}");
    }
}

#[test]
fn train_forward_equals_inference_on_gguf_and_saves_back_as_hf() {
    let spec = TinySpec::gqa();
    for dtype in [GgmlDType::F32, GgmlDType::F16, GgmlDType::Q8_0] {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("model.gguf");
        write_gguf_typed(&gguf, &spec, dtype, true).unwrap();
        let model = train_model(&gguf);
        let reference = inference_logits(&gguf);
        let diff = max_abs_diff(&train_logits(&model), &reference);
        assert!(diff < TOL, "{dtype:?}: max |Δlogit| {diff}");
        // The saved tensors are an HF checkpoint: loaded as HF (half rotation), same logits.
        let hf = dir.path().join("hf");
        write_hf_dir_tensors(&hf, &spec, HfLayout::Safetensors, &model.tensors()).unwrap();
        let diff = max_abs_diff(&inference_logits(&hf), &reference);
        assert!(diff < TOL, "{dtype:?} saved as HF: max |Δlogit| {diff}");
    }
}

#[test]
fn gguf_f32_weights_unpermute_to_the_hf_weights() {
    let spec = TinySpec::gqa();
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("model.gguf");
    write_gguf_typed(&gguf, &spec, GgmlDType::F32, true).unwrap();
    let hf = super::tensor_map(&spec);
    for (name, t) in train_model(&gguf).tensors() {
        let diff = (t - &hf[&name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }
}

#[test]
fn tensors_round_trip_through_from_tensors() {
    for tie_embeddings in [false, true] {
        let spec = TinySpec {
            tie_embeddings,
            ..TinySpec::gqa()
        };
        let cfg = spec.config().unwrap();
        let model = TrainModel::init(&cfg, 3, DType::F32, &Device::Cpu).unwrap();
        let map = model.tensors().into_iter().collect();
        let copy = TrainModel::from_tensors(&cfg, map, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            train_logits(&model),
            train_logits(&copy),
            "tied {tie_embeddings}"
        );
        // The copy owns its values: changing one model leaves the other as it was.
        let (_, embed) = &copy.vars()[0];
        embed.set(&embed.as_tensor().zeros_like().unwrap()).unwrap();
        assert_ne!(train_logits(&model), train_logits(&copy));
    }
}

#[test]
fn init_is_seeded_hf_style() {
    let cfg = TinySpec::gqa().config().unwrap();
    let dev = Device::Cpu;
    let a = TrainModel::init(&cfg, 7, DType::F32, &dev)
        .unwrap()
        .tensors();
    let b = TrainModel::init(&cfg, 7, DType::F32, &dev)
        .unwrap()
        .tensors();
    let c = TrainModel::init(&cfg, 8, DType::F32, &dev)
        .unwrap()
        .tensors();
    let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for ((name, x), ((_, y), (_, z))) in a.iter().zip(b.iter().zip(&c)) {
        assert_eq!(values(x), values(y), "{name}: same seed");
        let v = values(x);
        if name.ends_with("norm.weight") {
            assert!(v.iter().all(|&w| w == 1.0), "{name}: norms start at one");
            continue;
        }
        assert_ne!(v, values(z), "{name}: another seed");
        let mean = v.iter().map(|&w| f64::from(w)).sum::<f64>() / v.len() as f64;
        let std = (v
            .iter()
            .map(|&w| (f64::from(w) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64)
            .sqrt();
        assert!(
            mean.abs() < 0.003 && (std - 0.02).abs() < 0.003,
            "{name}: mean {mean} std {std}"
        );
    }
}
