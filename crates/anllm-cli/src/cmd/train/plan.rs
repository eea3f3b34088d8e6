//! `train --dry-run`: what a run would do — its data, rows, steps, epochs and the disk its
//! checkpoints take — printed after every check a real run makes, without training a step or
//! writing a file.

use std::path::PathBuf;

use anllm_train::data::TrainData;
use anllm_train::trainer::Trainer;
use clap::ValueEnum;

use crate::train_args::{ScheduleArg, TrainArgs};

/// Where a run writes its extended vocabulary (`<AC>`, `[PAD]`): `OUT/tokenizer`, or under
/// `--dry-run` a scratch directory that `train` removes before it exits.
pub fn vocab_dir(args: &TrainArgs) -> PathBuf {
    match args.dry_run {
        true => std::env::temp_dir().join(format!("anllm-dry-run-{}", std::process::id())),
        false => args.out.join("tokenizer"),
    }
}

/// What a dry run reports on.
pub struct Plan<'a> {
    pub args: &'a TrainArgs,
    pub trainer: &'a Trainer,
    pub data: &'a TrainData,
    /// The step the run starts from (0, or the checkpoint `--resume` continues).
    pub start_step: u64,
    pub total_steps: u64,
    pub held_out_rows: usize,
    pub unigram: Option<f64>,
}

impl Plan<'_> {
    /// The step this invocation ends at.
    fn end(&self) -> u64 {
        super::end_step(self.args, self.total_steps)
    }
}

/// The plan as lines of text (stdout of `train --dry-run`).
pub fn lines(p: &Plan) -> Vec<String> {
    let args = p.args;
    let docs = p.data.documents();
    let tokens: usize = docs.iter().map(|d| d.len()).sum();
    let targets: usize = docs.iter().map(|d| d.target_count()).sum();
    let per_epoch = (p.data.batches_per_epoch() as u64).div_ceil(args.grad_accum as u64);
    let mut out = vec![
        "dry run: nothing is trained and nothing is written".to_string(),
        format!(
            "data: {} documents, {tokens} tokens, {targets} prediction targets",
            docs.len()
        ),
        format!(
            "rows: {} rows of at most {} tokens per epoch (--block-mode {}), {} steps per epoch of {} × {} rows",
            p.data.examples_per_epoch(),
            args.block_size,
            args.block_mode
                .to_possible_value()
                .map_or(String::new(), |v| v.get_name().to_string()),
            per_epoch,
            args.batch_size,
            args.grad_accum
        ),
    ];
    if let Some(note) = p.data.block_note() {
        out.push(format!("rows: {note}"));
    }
    out.push(steps_line(p, per_epoch));
    out.push(schedule_line(args));
    out.push(checkpoints_line(p));
    let unigram = p
        .unigram
        .map_or(String::new(), |u| format!(", unigram baseline loss {u:.4}"));
    out.push(format!("held-out: {} rows{unigram}", p.held_out_rows));
    out
}

fn steps_line(p: &Plan, per_epoch: u64) -> String {
    let minutes = p
        .args
        .max_minutes
        .map_or(String::new(), |m| format!(", or {m} minutes of step time"));
    let from = match p.start_step {
        0 => String::new(),
        s => format!(" (resuming at step {s})"),
    };
    let stop = match p.args.stop_at {
        Some(s) if s < p.total_steps => format!(", stopping at step {s} (--stop-at)"),
        _ => String::new(),
    };
    if p.total_steps == u64::MAX {
        let m = p.args.max_minutes.unwrap_or_default();
        return format!("steps: as many as {m} minutes of step time allow{from}{stop}");
    }
    let epochs = p.end() as f64 / per_epoch.max(1) as f64;
    format!(
        "steps: {}{from}{minutes}{stop}: {epochs:.2} epochs, at most {} tokens per step",
        p.total_steps,
        p.args.batch_size * p.args.grad_accum * p.args.block_size
    )
}

fn schedule_line(args: &TrainArgs) -> String {
    let decay = match args.schedule {
        ScheduleArg::Constant => "constant".to_string(),
        ScheduleArg::Cosine => format!("cosine down to {} × lr", args.min_lr_ratio),
    };
    format!(
        "schedule: lr {:e} after {} warmup steps, then {decay}",
        args.lr, args.warmup
    )
}

/// The checkpoints the run saves (every `--save-every` steps and at the end) and the disk
/// they take: the weights and AdamW's two moments, as `train` writes them.
fn checkpoints_line(p: &Plan) -> String {
    let bytes = checkpoint_bytes(p.trainer);
    let every = p.args.save_every;
    if p.end() == u64::MAX {
        let kept = p.args.keep_last.map_or(String::new(), |k| {
            format!(
                ", at most {} on disk (--keep-last {k})",
                size(bytes * k as u64)
            )
        });
        return format!(
            "checkpoints: every {every} steps and at the end, {} each{kept}",
            size(bytes)
        );
    }
    let saves = saves(p.start_step, p.end(), every);
    let kept = p.args.keep_last.map_or(saves, |k| saves.min(k as u64));
    format!(
        "checkpoints: {saves} (every {every} steps and at the end), {} each, {} on disk{}",
        size(bytes),
        size(bytes * kept),
        p.args
            .keep_last
            .map_or(String::new(), |k| format!(" (--keep-last {k})"))
    )
}

/// A byte count as people read it: GB, MB or kB (decimal units, as `df -H`).
fn size(n: u64) -> String {
    let n = n as f64;
    match n {
        _ if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        _ if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        _ => format!("{:.1} kB", n / 1e3),
    }
}

/// How many checkpoints a run from `start` to `total` saves: one at each multiple of
/// `every` before the last step, and one at the last.
pub fn saves(start: u64, total: u64, every: u64) -> u64 {
    if total <= start {
        return 0;
    }
    (total - 1) / every - start / every + 1
}

fn checkpoint_bytes(trainer: &Trainer) -> u64 {
    let weights: u64 = trainer
        .model()
        .vars()
        .iter()
        .map(|(_, v)| (v.elem_count() * v.dtype().size_in_bytes()) as u64)
        .sum();
    // AdamW keeps two moments per weight, in the weight's precision.
    3 * weights
}

#[cfg(test)]
mod tests {
    use super::saves;

    #[test]
    fn saves_counts_every_multiple_before_the_end_and_the_end() {
        // Steps 30, 60, 90, 120 and the end 127.
        assert_eq!(saves(0, 127, 30), 5);
        // A run ending on a multiple saves it once.
        assert_eq!(saves(0, 120, 30), 4);
        // Resumed at 60: 90, 120, 127.
        assert_eq!(saves(60, 127, 30), 3);
        assert_eq!(saves(127, 127, 30), 0);
        assert_eq!(saves(0, 1, 100), 1);
    }
}
