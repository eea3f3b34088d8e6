//! `anllm train`: AnSAN continued pre-training / SFT (or full-attention training) with
//! checkpoints in Hugging Face layout, a JSONL log, a PNG loss curve and `--resume`.

mod log;
mod plan;
mod setup;

use anyhow::{Context, Result, bail};
use candle_core::Device;
use clap::ValueEnum;

use anllm_train::checkpoint::{self, Checkpoint, TrainerState};
use anllm_train::data::{Batch, TrainData};
use anllm_train::trainer::{StepRecord, Trainer};

use crate::config::set_threads;
use crate::train_args::{DeviceArg, TrainAnchorsArg, TrainArgs};

use log::{Progress, RunLog};
use setup::Prepared;

/// Runs `anllm train`.
pub fn run(args: TrainArgs) -> Result<()> {
    set_threads(args.threads)?;
    crate::alloc::keep_freed_memory();
    let device = match args.device {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Cuda(n) => Device::new_cuda(n)
            .with_context(|| format!("opening CUDA device {n} (built with --features cuda?)"))?,
    };
    let Prepared {
        mut trainer,
        data,
        eval_rows,
        tokenizer_files,
        state,
        total_steps,
        unigram,
    } = setup::prepare(&args, &device)?;
    if args.dry_run {
        return dry_run(
            &args,
            &trainer,
            &data,
            &eval_rows,
            &state,
            total_steps,
            unigram,
        );
    }
    let end = end_step(&args, total_steps);
    if args.resume && state.step >= end {
        eprintln!(
            "anllm: {} is at step {}, where this run ends: nothing to train",
            args.out.display(),
            state.step
        );
        return Ok(());
    }
    let mut log = RunLog::open(&args.out, state.log_records, args.resume)?;
    if let Some(u) = unigram {
        eprintln!("anllm: unigram baseline on the held-out data: loss {u:.4}");
    }
    let mut ctx = Loop {
        args: &args,
        tokenizer_files: &tokenizer_files,
        resumed_s: state.elapsed_s,
        state,
        unigram,
    };
    let mut batches = data.batches_from(ctx.state.data)?;
    let mut progress = Progress::new(trainer.step(), end);
    let mut last_saved = trainer.step();
    while trainer.step() < end && !ctx.time_up() {
        let micro: Vec<Batch> = batches.by_ref().take(args.grad_accum).collect();
        // Rows holding only prompt tokens (a packed cut inside a long prompt) teach nothing:
        // their batches are passed over, and the data position moves on.
        if let Some(last) = micro.last()
            && micro.iter().all(|b| b.target_count() == 0)
        {
            ctx.state.data = last.next;
            continue;
        }
        let mut rec = trainer.train_step(&micro)?;
        if !rec.loss.is_finite() {
            bail!("the loss is {} at step {}: lower --lr?", rec.loss, rec.step);
        }
        if args.eval_every > 0 && rec.step % args.eval_every == 0 && !eval_rows.is_empty() {
            rec.eval_loss = Some(trainer.eval_loss(&eval_rows)?);
        }
        ctx.advance(&rec);
        log.push(&rec)?;
        progress.update(&rec, ctx.budget_left_s());
        // The last step is saved once, below, with the final held-out loss.
        if rec.step % args.save_every == 0 && rec.step < end {
            ctx.save(&trainer, &log)?;
            last_saved = rec.step;
        }
    }
    progress.finish();
    let final_eval = if eval_rows.is_empty() {
        None
    } else {
        Some(trainer.eval_loss(&eval_rows)?)
    };
    if trainer.step() != last_saved || final_eval.is_some() {
        ctx.state.extra["final_eval_loss"] = serde_json::json!(final_eval);
        ctx.save(&trainer, &log)?; // plots too
    } else {
        log.plot(unigram)?;
    }
    summary(&ctx, &trainer, final_eval);
    Ok(())
}

/// The step this invocation ends at: `total_steps` (the schedule's end, from `--steps` or
/// `--epochs`), or `--stop-at` before it.
fn end_step(args: &TrainArgs, total_steps: u64) -> u64 {
    total_steps.min(args.stop_at.unwrap_or(u64::MAX))
}

/// `--dry-run`: the plan on stdout, then the scratch vocabulary (if any) removed.
fn dry_run(
    args: &TrainArgs,
    trainer: &Trainer,
    data: &TrainData,
    eval_rows: &[Batch],
    state: &TrainerState,
    total_steps: u64,
    unigram: Option<f64>,
) -> Result<()> {
    let plan = plan::Plan {
        args,
        trainer,
        data,
        start_step: state.step,
        total_steps,
        held_out_rows: eval_rows.iter().map(|b| b.examples.len()).sum(),
        unigram,
    };
    for line in plan::lines(&plan) {
        println!("{line}");
    }
    let scratch = plan::vocab_dir(args);
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("removing {}", scratch.display()))?;
    }
    Ok(())
}

/// What the loop carries between steps.
struct Loop<'a> {
    args: &'a TrainArgs,
    tokenizer_files: &'a [(String, Vec<u8>)],
    state: TrainerState,
    /// The step time (`elapsed_s`) the run had when this invocation began.
    resumed_s: f64,
    unigram: Option<f64>,
}

impl Loop<'_> {
    /// `--max-minutes` counts the step time of this invocation, the clock `elapsed_s` keeps
    /// (setup, held-out evaluations and saves are not training), so a resumed run given the
    /// minutes it has left ends where its budget does.
    fn time_up(&self) -> bool {
        self.budget_left_s().is_some_and(|left| left <= 0.0)
    }

    /// The step time `--max-minutes` leaves to this invocation.
    fn budget_left_s(&self) -> Option<f64> {
        let spent = self.state.elapsed_s - self.resumed_s;
        self.args.max_minutes.map(|m| m * 60.0 - spent)
    }

    fn advance(&mut self, rec: &StepRecord) {
        self.state.step = rec.step;
        self.state.data = rec.data;
        self.state.tokens_seen += rec.tokens as u64;
        self.state.elapsed_s += rec.step_s;
        self.state.log_records += 1;
    }

    fn save(&mut self, trainer: &Trainer, log: &RunLog) -> Result<()> {
        let params = trainer.model().tensors();
        let optimizer = trainer.optimizer().state_tensors()?;
        if let Some(u) = self.unigram {
            self.state.extra["unigram_eval_loss"] = serde_json::json!(u);
        }
        // The anchor preset (window, rule), so that inference can tell a run with other anchors.
        let anchors = match self.args.anchors {
            TrainAnchorsArg::None => None,
            a => a.to_possible_value().map(|v| {
                let (w, rule) = (self.args.anchor_window, self.args.mask_rule);
                crate::config::anchor_flags(v.get_name(), w, rule)
            }),
        };
        let extra = anchors.map(|a| serde_json::json!({ anllm::weights::ANCHORS_CONFIG_KEY: a }));
        let ckpt = Checkpoint {
            params: &params,
            config: trainer.model().config(),
            config_extra: extra.as_ref(),
            tokenizer_files: self.tokenizer_files,
            optimizer: &optimizer,
            state: &self.state,
        };
        let dir = checkpoint::save_checkpoint(
            &self.args.out,
            self.state.step,
            &ckpt,
            self.args.keep_last,
        )
        .with_context(|| {
            format!(
                "saving step {} into {}",
                self.state.step,
                self.args.out.display()
            )
        })?;
        log.plot(self.unigram)?;
        log::note(&format!("saved {}", dir.display()));
        Ok(())
    }
}

fn summary(ctx: &Loop, trainer: &Trainer, final_eval: Option<f64>) {
    let s = &ctx.state;
    let rate = s.tokens_seen as f64 / s.elapsed_s.max(1e-9);
    let eval = final_eval.map_or(String::new(), |l| {
        format!(", held-out loss {l:.4} (ppl {:.2})", l.exp())
    });
    eprintln!(
        "anllm: {} steps, {} tokens, {:.0} tok/s over the training steps{eval}; checkpoints in {}",
        trainer.step(),
        s.tokens_seen,
        rate,
        ctx.args.out.display()
    );
}

/// The held-out batches of one evaluation pass: the first `rows` rows, in file order.
pub fn eval_batches(data: &TrainData, rows: usize) -> Vec<Batch> {
    let per_epoch = data.examples_per_epoch();
    let mut out = Vec::new();
    let mut taken = 0;
    for batch in data.batches() {
        if taken >= rows.min(per_epoch) {
            break;
        }
        taken += batch.examples.len();
        out.push(batch);
    }
    out
}
