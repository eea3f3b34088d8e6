//! Bad checkpoints and bad batches are errors, never panics.

use anllm::Error;
use anllm::testutil::TinySpec;
use anllm_train::model::{TrainBatch, TrainModel};
use candle_core::{DType, Device, Tensor};

use super::{tensor_map, tiny, two_rows};

#[test]
fn missing_tensor_is_a_missing_tensor_error() {
    let spec = TinySpec::gqa();
    let mut map = tensor_map(&spec);
    map.remove("model.layers.1.mlp.up_proj.weight");
    let err = TrainModel::from_tensors(&spec.config().unwrap(), map, DType::F32, &Device::Cpu)
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { name, .. } if name == "model.layers.1.mlp.up_proj.weight"),
        "{err}"
    );
    // An untied config needs `lm_head.weight`.
    let tied = TinySpec {
        tie_embeddings: true,
        ..TinySpec::gqa()
    };
    let err = TrainModel::from_tensors(
        &spec.config().unwrap(),
        tensor_map(&tied),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { name, .. } if name == "lm_head.weight"),
        "{err}"
    );
}

#[test]
fn wrong_shape_is_a_shape_error() {
    let spec = TinySpec::gqa();
    let mut map = tensor_map(&spec);
    map.insert(
        "model.layers.0.self_attn.k_proj.weight".into(),
        Tensor::zeros((32, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    let err = TrainModel::from_tensors(&spec.config().unwrap(), map, DType::F32, &Device::Cpu)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Shape { op, .. } if op.contains("k_proj")),
        "{err}"
    );
    // A config that disagrees with the tensors (wider MLP) is caught the same way.
    let wide = TinySpec {
        intermediate: 96,
        ..TinySpec::gqa()
    };
    let err = TrainModel::from_tensors(
        &wide.config().unwrap(),
        tensor_map(&spec),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

#[test]
fn unsupported_dtype_is_an_error() {
    let cfg = TinySpec::gqa().config().unwrap();
    for dtype in [DType::F16, DType::U32] {
        let err = TrainModel::init(&cfg, 1, dtype, &Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{dtype:?}: {err}");
    }
}

fn expect_shape_error(model: &TrainModel, batch: &TrainBatch, what: &str) {
    let err = model.loss(batch).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{what}: {err}");
    if what != "zero weights" {
        let err = model.forward(batch).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{what}: {err}");
    }
}

#[test]
fn bad_batches_are_shape_errors() {
    let model = tiny(&TinySpec::gqa(), DType::F32);
    let dev = Device::Cpu;
    let good = two_rows();
    let (b, t) = good.inputs.dims2().unwrap();
    let cases: Vec<(&str, TrainBatch)> = vec![
        (
            "mask shape",
            TrainBatch {
                mask: good.mask.narrow(2, 0, t - 1).unwrap(),
                ..good.clone()
            },
        ),
        (
            "targets shape",
            TrainBatch {
                targets: good.targets.narrow(1, 0, t - 1).unwrap(),
                ..good.clone()
            },
        ),
        (
            "positions dtype",
            TrainBatch {
                positions: good.positions.to_dtype(DType::F32).unwrap(),
                ..good.clone()
            },
        ),
        (
            "input id",
            TrainBatch {
                inputs: Tensor::full(384u32, (b, t), &dev).unwrap(),
                ..good.clone()
            },
        ),
        (
            "target id",
            TrainBatch {
                targets: Tensor::full(1000u32, (b, t), &dev).unwrap(),
                ..good.clone()
            },
        ),
        (
            "position",
            TrainBatch {
                positions: Tensor::full(128u32, (b, t), &dev).unwrap(),
                ..good.clone()
            },
        ),
        (
            "rank",
            TrainBatch {
                inputs: good.inputs.flatten_all().unwrap(),
                ..good.clone()
            },
        ),
        (
            "empty",
            TrainBatch {
                inputs: Tensor::zeros((b, 0), DType::U32, &dev).unwrap(),
                targets: Tensor::zeros((b, 0), DType::U32, &dev).unwrap(),
                weights: Tensor::zeros((b, 0), DType::F32, &dev).unwrap(),
                positions: Tensor::zeros((b, 0), DType::U32, &dev).unwrap(),
                mask: Tensor::zeros((b, 0, 0), DType::F32, &dev).unwrap(),
            },
        ),
    ];
    for (what, batch) in &cases {
        expect_shape_error(&model, batch, what);
    }
    let zero = TrainBatch {
        weights: good.weights.zeros_like().unwrap(),
        ..good.clone()
    };
    expect_shape_error(&model, &zero, "zero weights");
}
