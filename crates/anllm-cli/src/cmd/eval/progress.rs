//! Progress of long evaluations: an indicatif bar with ETA on a terminal, plain log lines on
//! stderr otherwise (every 15 s and at the end of each stage).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A progress reporter for `total` steps of the current stage.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// A reporter for a stage of `total` steps called `label`.
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg:>14} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            started: Instant::now(),
            last_log: Instant::now(),
        }
    }

    /// One more step done.
    pub fn inc(&mut self) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            return;
        }
        if self.done == self.total || self.last_log.elapsed() >= Duration::from_secs(15) {
            self.last_log = Instant::now();
            let secs = self.started.elapsed().as_secs_f64();
            let rate = self.done as f64 / secs.max(1e-9);
            let eta = (self.total - self.done) as f64 / rate.max(1e-9);
            eprintln!(
                "anllm: {} {}/{} ({:.0}%), {:.2}/s, elapsed {:.0}s, ETA {:.0}s",
                self.label,
                self.done,
                self.total,
                100.0 * self.done as f64 / self.total.max(1) as f64,
                rate,
                secs,
                eta
            );
        }
    }

    /// Clears the bar (a terminal keeps the log lines printed after it).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
