//! One optimizer step at a time: micro-batches → masked forward → loss → backward (summed over
//! gradient accumulation) → clipped, fused AdamW at the scheduled learning rate.
//!
//! The loop around it (progress, logs, checkpoints, stopping) belongs to the caller, so that
//! the CLI, tests and benchmarks drive the same steps.

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::batch::{BatchRule, TokenWeight, with_weights};
use super::data::{Batch, DataPosition};
use super::distill::Teacher;
use super::model::TrainModel;
use super::optim::AdamW;
use super::schedule::LrSchedule;
use anllm::{Error, Result, TokenId};

/// The knobs of the optimisation.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOptions {
    /// Optimizer steps of the whole run.
    pub steps: u64,
    /// Micro-batches per step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warmup and decay.
    pub schedule: LrSchedule,
    /// Global gradient-norm clip (0: none).
    pub max_grad_norm: f64,
}

/// What one step did: one line of the JSONL training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step number, from 1.
    pub step: u64,
    /// Mean training objective (nats) over the step's targets: the cross-entropy, or with a
    /// teacher the distillation loss (`α · KL + (1 − α) · CE`); a weighted mean with a token
    /// weight ([`Trainer::with_token_weight`]).
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens (not pads) in the step.
    pub tokens: usize,
    /// Tokens per second of this step (forward, backward and update).
    pub tokens_per_s: f64,
    /// Wall time of the step, seconds.
    pub step_s: f64,
    /// Where the data stands after the step.
    pub data: DataPosition,
    /// Seconds of the step spent in the teacher's forward passes (distillation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_s: Option<f64>,
    /// Held-out loss, on the steps where it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
}

/// A model, its optimizer and the batch rule, stepping through the data.
pub struct Trainer {
    model: TrainModel,
    optimizer: AdamW,
    rule: BatchRule,
    options: TrainOptions,
    step: u64,
    teacher: Option<Teacher>,
    token_weight: Option<TokenWeight>,
}

impl Trainer {
    /// A trainer at `step` (0 for a new run).
    pub fn new(
        model: TrainModel,
        optimizer: AdamW,
        rule: BatchRule,
        options: TrainOptions,
        step: u64,
    ) -> Result<Self> {
        if options.grad_accum == 0 {
            return Err(Error::config("grad-accum", "must be at least 1"));
        }
        Ok(Self {
            model,
            optimizer,
            rule,
            options,
            step,
            teacher: None,
            token_weight: None,
        })
    }

    /// The same trainer weighting one target token's loss (`train --end-of-turn-weight`);
    /// the held-out loss ([`Trainer::eval_loss`]) stays the plain mean.
    pub fn with_token_weight(mut self, up: TokenWeight) -> Result<Self> {
        if !up.weight.is_finite() || up.weight < 0.0 {
            return Err(Error::config(
                "end-of-turn-weight",
                format!("must be a finite weight ≥ 0, not {}", up.weight),
            ));
        }
        self.token_weight = Some(up);
        Ok(self)
    }

    /// The same trainer distilling from `teacher` (see [`crate::distill`]); its vocabulary must
    /// be the student's.
    pub fn with_teacher(mut self, teacher: Teacher) -> Result<Self> {
        let (theirs, ours) = (
            teacher.model().config().vocab_size,
            self.model.config().vocab_size,
        );
        if theirs != ours {
            return Err(Error::config(
                "distill",
                format!("the teacher's vocabulary has {theirs} tokens, the student's {ours}"),
            ));
        }
        self.teacher = Some(teacher);
        Ok(self)
    }

    /// The model being trained.
    pub fn model(&self) -> &TrainModel {
        &self.model
    }

    /// The optimizer (for its state in checkpoints).
    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// Steps done so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The options of the run.
    pub fn options(&self) -> &TrainOptions {
        &self.options
    }

    /// One optimizer step over `micro` (the step's `grad_accum` micro-batches). The loss is
    /// the mean over every target of the step, whatever the split into micro-batches.
    pub fn train_step(&mut self, micro: &[Batch]) -> Result<StepRecord> {
        let started = Instant::now();
        let Some(last) = micro.last() else {
            return Err(Error::config(
                "grad-accum",
                "a step needs at least one batch",
            ));
        };
        // Each micro-batch's loss is a weighted mean: the step's mean weighs it by its weight sum.
        // The token-weighted loss weights of each micro-batch, computed once (None: plain).
        let weights: Vec<Option<Vec<f32>>> = micro
            .iter()
            .map(|b| self.token_weight.map(|up| up.weights(b)))
            .collect();
        let sums: Vec<f64> = micro
            .iter()
            .zip(&weights)
            .map(|(b, w)| match w {
                None => b.target_count() as f64,
                Some(w) => w.iter().map(|&x| f64::from(x)).sum(),
            })
            .collect();
        let total: f64 = sums.iter().sum();
        if total <= 0.0 {
            return Err(Error::config("data", "a step without prediction targets"));
        }
        let device = self.model.device().clone();
        let mut grads: Option<GradStore> = None;
        let mut loss_sum = 0.0;
        let mut teacher_s = 0.0;
        for ((batch, &sum), w) in micro.iter().zip(&sums).zip(weights) {
            if sum <= 0.0 {
                continue;
            }
            let mut tensors = self.rule.to_tensors(batch, &device)?;
            if let Some(w) = w {
                tensors = with_weights(tensors, w)?;
            }
            let loss = match &self.teacher {
                None => self.model.loss(&tensors)?,
                Some(teacher) => {
                    let t0 = Instant::now();
                    let soft = teacher.soft_targets(batch, &device)?;
                    teacher_s += t0.elapsed().as_secs_f64();
                    self.model.distill_loss(&tensors, &soft, teacher.alpha())?
                }
            };
            loss_sum += scalar(&loss)? * sum;
            let scaled = (loss * (sum / total))?;
            let store = scaled.backward()?;
            grads = Some(match grads {
                None => store,
                Some(acc) => self.accumulate(acc, &store)?,
            });
        }
        let grads = grads.ok_or_else(|| Error::config("data", "no gradient"))?;
        let lr = self.options.lr * self.options.schedule.factor(self.step);
        let clip = (self.options.max_grad_norm > 0.0).then_some(self.options.max_grad_norm);
        let grad_norm = self.optimizer.step(self.model.vars(), &grads, lr, clip)?;
        self.step += 1;
        let tokens: usize = micro.iter().map(Batch::token_count).sum();
        let secs = started.elapsed().as_secs_f64();
        Ok(StepRecord {
            step: self.step,
            loss: loss_sum / total,
            lr,
            grad_norm,
            tokens,
            tokens_per_s: tokens as f64 / secs.max(1e-9),
            step_s: secs,
            data: last.next,
            teacher_s: self.teacher.is_some().then_some(teacher_s),
            eval_loss: None,
        })
    }

    /// Adds the parameter gradients of `store` into `acc`.
    fn accumulate(&self, mut acc: GradStore, store: &GradStore) -> Result<GradStore> {
        for (_, var) in self.model.vars() {
            let t = var.as_tensor();
            if let Some(g) = store.get(t) {
                let sum = match acc.remove(t) {
                    Some(a) => (a + g)?,
                    None => g.clone(),
                };
                acc.insert(t, sum);
            }
        }
        Ok(acc)
    }

    /// Mean loss over the targets of `batches`, without gradients.
    pub fn eval_loss(&self, batches: &[Batch]) -> Result<f64> {
        eval_loss(&self.model, &self.rule, batches)
    }
}

/// Mean cross-entropy of `model` over the targets of `batches` (no update).
pub fn eval_loss(model: &TrainModel, rule: &BatchRule, batches: &[Batch]) -> Result<f64> {
    let (mut sum, mut count) = (0.0, 0usize);
    for batch in batches {
        let n = batch.target_count();
        if n == 0 {
            continue;
        }
        let tensors = rule.to_tensors(batch, model.device())?;
        let loss = model.loss(&tensors)?.detach();
        sum += scalar(&loss)? * n as f64;
        count += n;
    }
    if count == 0 {
        return Err(Error::config("eval data", "no prediction targets"));
    }
    Ok(sum / count as f64)
}

/// Cross-entropy (nats per target) on `heldout` of the add-one-smoothed unigram model of the
/// targets of `train`: the loss a model that ignores the context would reach. A trained model
/// should land well below it. Both sides are `(tokens, loss_mask)` pairs: the training
/// documents ([`TokenizedDoc`](super::data::TokenizedDoc)) or rows ([`Example`](super::data::Example)), so no
/// epoch of rows has to be built for it.
pub fn unigram_loss<'a>(
    train: impl IntoIterator<Item = (&'a [TokenId], &'a [bool])>,
    heldout: impl IntoIterator<Item = (&'a [TokenId], &'a [bool])>,
    vocab: usize,
) -> f64 {
    let targets = |(tokens, mask): (&'a [TokenId], &'a [bool])| {
        tokens
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(&t, _)| t as usize)
    };
    let mut counts = vec![1.0f64; vocab];
    let mut total = vocab as f64;
    for t in train.into_iter().flat_map(targets) {
        if let Some(c) = counts.get_mut(t) {
            *c += 1.0;
            total += 1.0;
        }
    }
    let (mut sum, mut n) = (0.0, 0usize);
    for t in heldout.into_iter().flat_map(targets) {
        sum -= (counts.get(t).copied().unwrap_or(1.0) / total).ln();
        n += 1;
    }
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// A scalar tensor's value (f32 or f64) as f64.
pub fn scalar(t: &Tensor) -> Result<f64> {
    Ok(f64::from(t.to_dtype(DType::F32)?.to_scalar::<f32>()?))
}
