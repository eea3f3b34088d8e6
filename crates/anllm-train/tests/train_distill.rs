//! Distillation (`anllm train --distill`): the fused KL + CE loss and its gradient against
//! central differences and the composed reference, KL = 0 when the teacher (the inference
//! engine) is the student itself, and a teacher that stays frozen while the student trains.

use anllm::AnchorSet;
use anllm::mask::MaskRule;
use anllm::testutil::{TinySpec, hf_tensors, tiny_model};
use anllm_train::batch::BatchRule;
use anllm_train::data::Batch;
use anllm_train::distill::Teacher;
use anllm_train::model::{Kernels, TrainBatch, TrainModel};
use anllm_train::optim::{AdamW, AdamWConfig};
use anllm_train::schedule::{Decay, LrSchedule};
use anllm_train::trainer::{TrainOptions, Trainer};
use candle_core::{D, DType, Device, Tensor};

mod common;
use common::{central_difference, packed_rows};

const KERNELS: [Kernels; 2] = [Kernels::Fused, Kernels::Composed];

fn model(dtype: DType) -> TrainModel {
    let spec = TinySpec::gqa();
    let tensors = hf_tensors(&spec).unwrap().into_iter().collect();
    TrainModel::from_tensors(&spec.config().unwrap(), tensors, dtype, &Device::Cpu).unwrap()
}

/// [`common::packed_rows`] as one batch.
fn rows() -> Batch {
    Batch {
        examples: packed_rows(),
        position: Default::default(),
        next: Default::default(),
    }
}

fn rule(mask: MaskRule) -> BatchRule {
    BatchRule {
        rule: mask,
        anchors: match mask {
            MaskRule::Causal => AnchorSet::default(),
            _ => AnchorSet::new([10], Some(0)),
        },
    }
}

/// Seeded teacher probabilities `[vocab, n]` in `dtype`.
fn fake_teacher(vocab: usize, n: usize, dtype: DType) -> Tensor {
    let logits: Vec<f64> = (0..vocab * n)
        .map(|i| 3.0 * ((i as f64) * 0.731).sin())
        .collect();
    let t = Tensor::from_vec(logits, (n, vocab), &Device::Cpu).unwrap();
    candle_nn::ops::softmax(&t, D::Minus1)
        .unwrap()
        .t()
        .unwrap()
        .contiguous()
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn tensors(batch: &Batch, mask: MaskRule) -> TrainBatch {
    rule(mask).to_tensors(batch, &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn distill_gradient_matches_central_differences_in_f64() {
    let batch = tensors(&rows(), MaskRule::AnSan);
    let n = batch.targeted_rows().unwrap().len();
    let teacher = fake_teacher(384, n, DType::F64);
    for kernels in KERNELS {
        let model = model(DType::F64).with_kernels(kernels);
        let loss = |m: &TrainModel| scalar(&m.distill_loss(&batch, &teacher, 0.7).unwrap());
        let grads = model
            .distill_loss(&batch, &teacher, 0.7)
            .unwrap()
            .backward()
            .unwrap();
        let h = 1e-5;
        for name in [
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.1.mlp.down_proj.weight",
            "model.norm.weight",
            "lm_head.weight",
        ] {
            let var = &model.vars().iter().find(|(n, _)| n == name).unwrap().1;
            let g = grads.get(var.as_tensor()).unwrap();
            let len = var.elem_count();
            for i in [0, len / 3, len / 2 + 1, len - 1] {
                let (numeric, analytic) = central_difference(var, g, i, h, || loss(&model));
                let rel = (numeric - analytic).abs() / numeric.abs().max(analytic.abs()).max(1e-7);
                assert!(
                    rel < 1e-4,
                    "{kernels:?} {name}[{i}]: analytic {analytic:e} vs numeric {numeric:e}"
                );
                assert!(
                    analytic.abs() > 1e-9,
                    "{name}[{i}]: probe a non-trivial entry"
                );
            }
        }
    }
}

#[test]
fn fused_and_composed_distill_agree_and_alpha_zero_is_cross_entropy() {
    let batch = tensors(&rows(), MaskRule::AnSan);
    let n = batch.targeted_rows().unwrap().len();
    let teacher = fake_teacher(384, n, DType::F64);
    let fused = model(DType::F64);
    let composed = model(DType::F64).with_kernels(Kernels::Composed);
    for alpha in [0.0, 0.4, 1.0] {
        let a = fused.distill_loss(&batch, &teacher, alpha).unwrap();
        let b = composed.distill_loss(&batch, &teacher, alpha).unwrap();
        assert!((scalar(&a) - scalar(&b)).abs() < 1e-10, "alpha {alpha}");
        let (ga, gb) = (a.backward().unwrap(), b.backward().unwrap());
        for ((name, va), (_, vb)) in fused.vars().iter().zip(composed.vars()) {
            let d = (ga.get(va.as_tensor()).unwrap() - gb.get(vb.as_tensor()).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            assert!(scalar(&d) < 1e-10, "{name}, alpha {alpha}: {}", scalar(&d));
        }
    }
    // α = 0 is the plain cross-entropy, whatever the teacher says.
    let ce = scalar(&fused.loss(&batch).unwrap());
    let zero = scalar(&fused.distill_loss(&batch, &teacher, 0.0).unwrap());
    assert!((ce - zero).abs() < 1e-12, "{ce} vs {zero}");
}

#[test]
fn kl_is_zero_when_the_teacher_is_the_student() {
    // The teacher runs on the inference engine, the student on the training model, both
    // with full causal attention over each document piece: the same distributions, so the
    // KL and its gradient vanish (hand-derived: KL(p ‖ p) = 0).
    let teacher = Teacher::new((*tiny_model().llama).clone(), 1.0).unwrap();
    let batch = rows();
    let soft = teacher.soft_targets(&batch, &Device::Cpu).unwrap();
    let tb = tensors(&batch, MaskRule::Causal);
    assert_eq!(soft.dims(), [384, tb.targeted_rows().unwrap().len()]);
    let student = model(DType::F32);
    let kl = student.distill_loss(&tb, &soft, 1.0).unwrap();
    assert!(scalar(&kl).abs() < 1e-5, "KL {}", scalar(&kl));
    // Control: under the AnSAN mask the student differs from the teacher.
    let anchored = student
        .distill_loss(&tensors(&batch, MaskRule::AnSan), &soft, 1.0)
        .unwrap();
    assert!(scalar(&anchored) > 1e-3, "KL {}", scalar(&anchored));
}

#[test]
fn the_teacher_stays_frozen_while_the_student_trains() {
    let teacher = Teacher::new((*tiny_model().llama).clone(), 0.5).unwrap();
    let batch = rows();
    let before = teacher.soft_targets(&batch, &Device::Cpu).unwrap();
    let student = model(DType::F32);
    let start: Vec<f32> = student.vars()[0]
        .1
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let optimizer = AdamW::new(student.vars(), AdamWConfig::default()).unwrap();
    let options = TrainOptions {
        steps: 3,
        grad_accum: 1,
        lr: 1e-2,
        schedule: LrSchedule::new(Decay::Constant, 0, 3).unwrap(),
        max_grad_norm: 1.0,
    };
    let mut trainer = Trainer::new(student, optimizer, rule(MaskRule::AnSan), options, 0)
        .unwrap()
        .with_teacher(teacher.clone())
        .unwrap();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let rec = trainer.train_step(std::slice::from_ref(&batch)).unwrap();
        assert!(rec.teacher_s.is_some());
        losses.push(rec.loss);
    }
    assert!(losses[2] < losses[0], "the student learns: {losses:?}");
    let after = teacher.soft_targets(&batch, &Device::Cpu).unwrap();
    let moved = scalar(
        &(&after - &before)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap(),
    );
    assert_eq!(moved, 0.0, "the teacher changed");
    let end: Vec<f32> = trainer.model().vars()[0]
        .1
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_ne!(start, end, "the student's parameters moved");
}

#[test]
fn a_teacher_with_another_vocabulary_is_refused() {
    let spec = TinySpec {
        vocab: 400,
        ..TinySpec::gqa()
    };
    let tensors = hf_tensors(&spec).unwrap().into_iter().collect();
    let student =
        TrainModel::from_tensors(&spec.config().unwrap(), tensors, DType::F32, &Device::Cpu)
            .unwrap();
    let optimizer = AdamW::new(student.vars(), AdamWConfig::default()).unwrap();
    let options = TrainOptions {
        steps: 1,
        grad_accum: 1,
        lr: 1e-3,
        schedule: LrSchedule::new(Decay::Constant, 0, 1).unwrap(),
        max_grad_norm: 1.0,
    };
    let teacher = Teacher::new((*tiny_model().llama).clone(), 1.0).unwrap();
    let err = Trainer::new(student, optimizer, rule(MaskRule::AnSan), options, 0)
        .unwrap()
        .with_teacher(teacher)
        .err()
        .expect("a vocabulary mismatch");
    assert!(err.to_string().contains("vocabulary"), "{err}");
    assert!(Teacher::new((*tiny_model().llama).clone(), 1.5).is_err());
}
