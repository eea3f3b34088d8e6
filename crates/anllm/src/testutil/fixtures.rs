//! Shared fixtures of the tiny-model tests: one seeded model per test binary, its anchor ids,
//! and the logit comparison every equivalence test uses.

use std::sync::OnceLock;

use candle_core::Device;

use super::{HfLayout, TinySpec, write_hf_dir};
use crate::{
    AnchorSet, ForwardInput, Llama, LoadedModel, OutputRows, Pos, TokenId, WeightDtype, load_model,
};

/// Anchor ids of the tiny-model tests.
pub const ANCHOR: [TokenId; 2] = [10, 11];

/// Pad id of the tiny-model tests.
pub const PAD: TokenId = 12;

/// Logit tolerance of f32 equivalence tests (cached vs full forward, spec §10.5).
pub const TOL_F32: f32 = 1e-4;

/// A tiny seeded GQA model (2 layers, 4 heads over 2 KV heads, 384 ids, context 128), written
/// and loaded once per test binary; anchors and pads use the ids in [`ANCHOR`] and [`PAD`].
pub fn tiny_model() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        write_hf_dir(dir.path(), &TinySpec::gqa(), HfLayout::Safetensors).expect("write model");
        load_model(dir.path(), WeightDtype::F32, &Device::Cpu).expect("load tiny model")
    })
}

/// The tiny tests' anchor set: ids [`ANCHOR`], pad [`PAD`].
pub fn tiny_anchors() -> AnchorSet {
    AnchorSet::new(ANCHOR, Some(PAD))
}

/// Largest |a − b| over two logit matrices of equal shape.
pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "row counts differ");
    a.iter()
        .zip(b)
        .inspect(|(x, y)| assert_eq!(x.len(), y.len(), "row lengths differ"))
        .flat_map(|(x, y)| x.iter().zip(y))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Logit rows `[tokens, vocab]` of one causal forward pass over `tokens` from an empty cache:
/// the plain reference (no session, no policy, no chunking) other paths are compared with.
pub fn causal_logits(llama: &Llama, tokens: &[TokenId]) -> Vec<Vec<f32>> {
    let mut cache = llama.new_cache(tokens.len()).expect("cache");
    let positions: Vec<Pos> = (0..tokens.len() as u32).map(Pos).collect();
    let input = ForwardInput::causal(tokens, &positions, OutputRows::All);
    let logits = llama.forward(&input, &mut cache).expect("causal forward");
    logits.to_vec2().expect("logit rows")
}
