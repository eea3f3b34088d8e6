//! What a run shows and leaves behind: the progress bar (or log lines), the JSONL step log
//! and the PNG loss curve in the output directory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use anllm_train::trainer::StepRecord;

use crate::plot::{Plot, Series, write_png};

/// File name of the step log inside `--out`.
pub const LOG_FILE: &str = "train_log.jsonl";
/// File name of the loss curve inside `--out`.
pub const PLOT_FILE: &str = "loss.png";

/// The JSONL log of a run: one [`StepRecord`] per line, kept in memory for the plot.
pub struct RunLog {
    path: PathBuf,
    file: File,
    records: Vec<StepRecord>,
}

impl RunLog {
    /// Opens the log in `out`. A resumed run keeps its first `keep` records (those of the
    /// steps its checkpoint covers) and drops any written after that checkpoint; a new run
    /// starts an empty log.
    pub fn open(out: &Path, keep: u64, resume: bool) -> Result<Self> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let path = out.join(LOG_FILE);
        let records = if resume && path.exists() {
            read_records(&path, keep)?
        } else {
            Vec::new()
        };
        let mut text = String::new();
        for r in &records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        anllm_train::checkpoint::write_atomic(&path, text.as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            path,
            file,
            records,
        })
    }

    /// Appends one step (flushed at once, so a killed run loses at most the line being
    /// written).
    pub fn push(&mut self, rec: &StepRecord) -> Result<()> {
        let line = serde_json::to_string(rec)?;
        writeln!(self.file, "{line}")
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.file.flush()?;
        self.records.push(rec.clone());
        Ok(())
    }

    /// Writes `loss.png` beside the log: training loss, held-out loss and the unigram line.
    pub fn plot(&self, unigram: Option<f64>) -> Result<()> {
        let Some(dir) = self.path.parent() else {
            return Ok(());
        };
        let distilled = self.records.iter().any(|r| r.teacher_s.is_some());
        let mut series = vec![Series {
            name: match distilled {
                true => "training loss (distillation: α·KL + (1−α)·CE)".into(),
                false => "training loss".into(),
            },
            points: self
                .records
                .iter()
                .map(|r| (r.step as f64, r.loss))
                .collect(),
        }];
        let eval: Vec<(f64, f64)> = (self.records.iter())
            .filter_map(|r| r.eval_loss.map(|l| (r.step as f64, l)))
            .collect();
        if !eval.is_empty() {
            series.push(Series {
                name: "held-out loss (cross-entropy)".into(),
                points: eval,
            });
        }
        if let (Some(u), Some(first), Some(last)) =
            (unigram, self.records.first(), self.records.last())
        {
            series.push(Series {
                name: "unigram baseline (held-out)".into(),
                points: vec![(first.step as f64, u), (last.step as f64, u)],
            });
        }
        let plot = Plot {
            title: "anllm train",
            x_label: "step",
            y_label: "loss (nats/token)",
            series: &series,
            log_y: false,
        };
        write_png(&dir.join(PLOT_FILE), &plot)
    }
}

fn read_records(path: &Path, keep: u64) -> Result<Vec<StepRecord>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        if out.len() as u64 >= keep {
            break;
        }
        let line = line?;
        let rec: StepRecord = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {} is not a step record", path.display(), i + 1))?;
        out.push(rec);
    }
    Ok(out)
}

/// A bar with loss, lr, tok/s and ETA on a terminal; a log line every 15 s otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    first_step: u64,
    last_log: Instant,
}

impl Progress {
    /// Progress from step `done` to `total` (`u64::MAX`: until --max-minutes).
    pub fn new(done: u64, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = if total == u64::MAX {
                ProgressBar::new_spinner()
            } else {
                ProgressBar::new(total)
            };
            let style =
                ProgressStyle::with_template("train [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_position(done);
            bar.reset_eta();
            bar
        });
        Self {
            bar,
            total,
            started: Instant::now(),
            first_step: done,
            last_log: Instant::now(),
        }
    }

    /// Shows step `rec`; `budget_left_s`: the step time `--max-minutes` leaves, if given (the
    /// ETA is whichever of the steps and the budget ends first).
    pub fn update(&mut self, rec: &StepRecord, budget_left_s: Option<f64>) {
        let eval = rec
            .eval_loss
            .map_or(String::new(), |l| format!(" eval {l:.4}"));
        let msg = format!(
            "loss {:.4}{eval} lr {:.2e} {:.0} tok/s",
            rec.loss, rec.lr, rec.tokens_per_s
        );
        if let Some(bar) = &self.bar {
            bar.set_position(rec.step);
            bar.set_message(msg);
            return;
        }
        let due = self.last_log.elapsed() >= Duration::from_secs(15);
        if due
            || rec.step == self.total
            || rec.eval_loss.is_some()
            || rec.step == self.first_step + 1
        {
            self.last_log = Instant::now();
            let done = rec.step - self.first_step;
            let secs = self.started.elapsed().as_secs_f64();
            let by_steps = (self.total != u64::MAX)
                .then(|| (self.total - rec.step) as f64 * secs / done.max(1) as f64);
            let eta = match (by_steps, budget_left_s) {
                (Some(a), Some(b)) => format!(", ETA {:.0}s", a.min(b.max(0.0))),
                (Some(a), None) => format!(", ETA {a:.0}s"),
                (None, Some(b)) => format!(", ETA {:.0}s", b.max(0.0)),
                (None, None) => String::new(),
            };
            eprintln!("anllm: step {}/{} {msg}{eta}", rec.step, self.total_label());
        }
    }

    fn total_label(&self) -> String {
        if self.total == u64::MAX {
            "?".into()
        } else {
            self.total.to_string()
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A status line on stderr (above the bar when there is one).
pub fn note(msg: &str) {
    eprintln!("anllm: {msg}");
}
