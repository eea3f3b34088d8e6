//! `anllm train --end-of-turn-weight`: one target token weighs W in the training loss. The
//! step's loss is the weighted mean over all its targets (hand-summed from the model's own
//! per-target cross-entropy), however the step is split into micro-batches, and weight 1 is
//! the plain step.

use anllm::AnchorSet;
use anllm::mask::MaskRule;
use anllm::testutil::{TinySpec, hf_tensors};
use anllm_train::batch::{BatchRule, TokenWeight};
use anllm_train::data::{Batch, Example};
use anllm_train::model::TrainModel;
use anllm_train::optim::{AdamW, AdamWConfig};
use anllm_train::schedule::{Decay, LrSchedule};
use anllm_train::trainer::{TrainOptions, Trainer};
use candle_core::{D, DType, Device};

mod common;
use common::packed_rows;

/// The weighted token: the period, a target at two places of row 0 and one of row 1.
const PERIOD: u32 = 10;

fn rule() -> BatchRule {
    BatchRule {
        rule: MaskRule::AnSan,
        anchors: AnchorSet::new([PERIOD], Some(0)),
    }
}

fn trainer(grad_accum: usize, weight: Option<f32>) -> Trainer {
    let spec = TinySpec::gqa();
    let tensors = hf_tensors(&spec).unwrap().into_iter().collect();
    let model =
        TrainModel::from_tensors(&spec.config().unwrap(), tensors, DType::F32, &Device::Cpu)
            .unwrap();
    let optimizer = AdamW::new(model.vars(), AdamWConfig::default()).unwrap();
    let options = TrainOptions {
        steps: 1,
        grad_accum,
        lr: 1e-2,
        schedule: LrSchedule::new(Decay::Constant, 0, 1).unwrap(),
        max_grad_norm: 0.0,
    };
    let t = Trainer::new(model, optimizer, rule(), options, 0).unwrap();
    match weight {
        None => t,
        Some(weight) => t
            .with_token_weight(TokenWeight {
                token: PERIOD,
                weight,
            })
            .unwrap(),
    }
}

fn batch(examples: Vec<Example>) -> Batch {
    Batch {
        examples,
        position: Default::default(),
        next: Default::default(),
    }
}

fn params(t: &Trainer) -> Vec<f32> {
    let mut out = Vec::new();
    for (_, v) in t.model().vars() {
        out.extend(v.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
    out
}

/// Σ w·CE / Σ w over both rows, each target's cross-entropy from the model's logits and each
/// weight from the loss mask and the target token, summed here.
fn weighted_mean(t: &Trainer, w: f64) -> f64 {
    let b = batch(packed_rows());
    let tensors = rule().to_tensors(&b, &Device::Cpu).unwrap();
    let logits = t.model().forward(&tensors).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let logp: Vec<Vec<Vec<f32>>> = logp.to_vec3().unwrap();
    let (mut sum, mut total) = (0.0, 0.0);
    for (r, row) in b.examples.iter().enumerate() {
        for i in 1..row.len() {
            if !row.loss_mask[i] {
                continue;
            }
            let target = row.tokens[i];
            let weight = if target == PERIOD { w } else { 1.0 };
            sum += weight * -f64::from(logp[r][i - 1][target as usize]);
            total += weight;
        }
    }
    sum / total
}

#[test]
fn a_weighted_step_reports_the_weighted_mean_over_its_micro_batches() {
    let mut t = trainer(2, Some(5.0));
    let expected = weighted_mean(&t, 5.0);
    let [r0, r1]: [Example; 2] = packed_rows().try_into().unwrap();
    let rec = t.train_step(&[batch(vec![r0]), batch(vec![r1])]).unwrap();
    // f32 logits: agreement to float rounding.
    assert!(
        (rec.loss - expected).abs() < 1e-5 * expected,
        "step loss {} vs hand-weighted mean {expected}",
        rec.loss
    );
    // The plain mean differs: the weight is not a no-op on these rows.
    assert!((weighted_mean(&trainer(1, None), 1.0) - expected).abs() > 1e-3);
}

#[test]
fn micro_batches_of_a_weighted_step_add_up_to_one_batch() {
    let (mut split, mut whole) = (trainer(2, Some(5.0)), trainer(1, Some(5.0)));
    let [r0, r1]: [Example; 2] = packed_rows().try_into().unwrap();
    let a = split
        .train_step(&[batch(vec![r0]), batch(vec![r1])])
        .unwrap();
    let b = whole.train_step(&[batch(packed_rows())]).unwrap();
    assert!((a.loss - b.loss).abs() < 1e-5, "{} vs {}", a.loss, b.loss);
    assert!((a.grad_norm - b.grad_norm).abs() < 1e-4 * b.grad_norm);
    let gap = params(&split)
        .iter()
        .zip(params(&whole))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(gap < 1e-5, "parameters differ by {gap}");
}

#[test]
fn weight_one_is_the_plain_step() {
    let (mut plain, mut one) = (trainer(1, None), trainer(1, Some(1.0)));
    let a = plain.train_step(&[batch(packed_rows())]).unwrap();
    let b = one.train_step(&[batch(packed_rows())]).unwrap();
    assert_eq!(a.loss, b.loss);
    assert_eq!(params(&plain), params(&one));
}

#[test]
fn a_negative_or_infinite_weight_is_refused() {
    for weight in [-1.0, f32::INFINITY, f32::NAN] {
        let up = TokenWeight {
            token: PERIOD,
            weight,
        };
        let err = trainer(1, None).with_token_weight(up).err().unwrap();
        assert!(err.to_string().contains("end-of-turn-weight"), "{err}");
    }
}
