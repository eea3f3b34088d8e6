//! Every GGUF tensor type the issue names loads and runs: F32, F16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K
//! (K-quants need rows of 256, hence the wider tiny model). Quantized logits must track the F32
//! file's, and `--dtype f32` (dequantize everything) must give the same prediction.

use anllm::testutil::{TinySpec, write_gguf_typed};
use anllm::{ForwardInput, LoadedModel, OutputRows, Pos, TokenId, WeightDtype, load_model};
use candle_core::Device;
use candle_core::quantized::GgmlDType;

const TOKENS: [TokenId; 6] = [1, 300, 17, 259, 42, 333];

fn spec() -> TinySpec {
    TinySpec {
        hidden: 256,
        intermediate: 512,
        ..TinySpec::gqa()
    }
}

fn logits(model: &LoadedModel) -> Vec<f32> {
    let mut cache = model.llama.new_cache(8).unwrap();
    let pos: Vec<Pos> = (0..TOKENS.len() as u32).map(Pos).collect();
    let input = ForwardInput::causal(&TOKENS, &pos, OutputRows::All);
    model
        .llama
        .forward(&input, &mut cache)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
fn gguf_every_required_type_loads_and_tracks_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let reference_path = tmp.path().join("f32.gguf");
    write_gguf_typed(&reference_path, &spec(), GgmlDType::F32, true).unwrap();
    let reference = logits(&load_model(&reference_path, WeightDtype::Auto, &Device::Cpu).unwrap());
    for (dtype, min_cos) in [
        (GgmlDType::F16, 0.9999),
        (GgmlDType::Q8_0, 0.999),
        (GgmlDType::Q6K, 0.99),
        (GgmlDType::Q4_0, 0.95),
        (GgmlDType::Q4_1, 0.95),
        (GgmlDType::Q4K, 0.95),
    ] {
        let path = tmp.path().join(format!("{dtype:?}.gguf"));
        write_gguf_typed(&path, &spec(), dtype, true).unwrap();
        let quant = logits(&load_model(&path, WeightDtype::Auto, &Device::Cpu).unwrap());
        let dense = logits(&load_model(&path, WeightDtype::F32, &Device::Cpu).unwrap());
        let (cq, cd) = (cosine(&quant, &reference), cosine(&dense, &reference));
        assert!(cq >= min_cos, "{dtype:?}: quantized cosine {cq}");
        assert!(cd >= min_cos, "{dtype:?}: dequantized cosine {cd}");
    }
}
