//! The paper's eight QA tasks, formatted as lm-evaluation-harness v0.3 formatted them
//! (spec §6.1–§6.2): per-task context and continuation templates, HellaSwag preprocessing and
//! WinoGrande partial scoring (`tasks/format.rs`), from rows in the HF field layout
//! (`tasks/rows.rs`).

mod format;
mod rows;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::data;
use anllm::{Error, Result};

pub use format::{format_row, hellaswag_preprocess};

/// A benchmark task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    /// OpenBookQA (main): context is the question stem alone.
    Obqa,
    /// PIQA: `Question: {goal}\nAnswer:`.
    Piqa,
    /// BoolQ: `{passage}\nQuestion: {question}?\nAnswer:`, choices ` yes` / ` no`.
    Boolq,
    /// HellaSwag: `{activity_label}: {ctx_a} {Ctx_b}`, cleaned.
    Hellaswag,
    /// WinoGrande (xl): partial scoring.
    Winogrande,
    /// ARC-Easy: `Question: {question}\nAnswer:`.
    ArcEasy,
    /// ARC-Challenge: as ARC-Easy.
    ArcChallenge,
    /// SciQ: `{support}\nQuestion: {question}\nAnswer:`.
    Sciq,
}

impl Task {
    /// All eight, in the paper's Table 1 column order.
    pub const ALL: [Task; 8] = [
        Task::Obqa,
        Task::Piqa,
        Task::Boolq,
        Task::Hellaswag,
        Task::Winogrande,
        Task::ArcEasy,
        Task::ArcChallenge,
        Task::Sciq,
    ];

    /// The name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Task::Obqa => "obqa",
            Task::Piqa => "piqa",
            Task::Boolq => "boolq",
            Task::Hellaswag => "hellaswag",
            Task::Winogrande => "winogrande",
            Task::ArcEasy => "arc_easy",
            Task::ArcChallenge => "arc_challenge",
            Task::Sciq => "sciq",
        }
    }

    /// The column header of the paper's Table 1.
    pub fn label(self) -> &'static str {
        match self {
            Task::Obqa => "OBQA",
            Task::Piqa => "PIQA",
            Task::Boolq => "BoolQ",
            Task::Hellaswag => "HS",
            Task::Winogrande => "WG",
            Task::ArcEasy => "ARC-e",
            Task::ArcChallenge => "ARC-c",
            Task::Sciq => "SCIQ",
        }
    }

    /// The split that is scored: `test` for OBQA and ARC (as the harness), `validation` for the
    /// others (SciQ's test split is not available offline).
    pub fn scored_split(self) -> &'static str {
        match self {
            Task::Obqa | Task::ArcEasy | Task::ArcChallenge => "test",
            _ => "validation",
        }
    }

    /// Whether `acc_norm` is defined (the harness's multiple-choice tasks).
    pub fn has_acc_norm(self) -> bool {
        !matches!(self, Task::Boolq | Task::Winogrande)
    }

    /// Parses a comma-separated list, or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<Task>> {
        if s.trim() == "all" {
            return Ok(Task::ALL.to_vec());
        }
        let mut out: Vec<Task> = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let task = name.parse()?;
            if !out.contains(&task) {
                out.push(task);
            }
        }
        if out.is_empty() {
            return Err(Error::config("tasks", "no task given"));
        }
        Ok(out)
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let alias = match s {
            "openbookqa" => "obqa",
            "arc-e" | "arc_e" | "arce" => "arc_easy",
            "arc-c" | "arc_c" | "arcc" => "arc_challenge",
            "hs" => "hellaswag",
            "wg" => "winogrande",
            other => other,
        };
        Task::ALL
            .into_iter()
            .find(|t| t.name() == alias)
            .ok_or_else(|| {
                let names: Vec<_> = Task::ALL.iter().map(|t| t.name()).collect();
                Error::config(
                    "tasks",
                    format!("unknown task `{s}` (known: {}, or all)", names.join(", ")),
                )
            })
    }
}

/// One scored choice: the context (after any demonstrations) and the continuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The task's part of the context for this choice (WinoGrande: differs per choice).
    pub context: String,
    /// The continuation whose log-likelihood is scored, with its leading space.
    pub continuation: String,
}

/// One item, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// `doc_to_text`: the context of a demonstration or of a zero-shot request.
    pub text: String,
    /// `doc_to_target`: what follows `text` in a demonstration.
    pub target: String,
    /// The scored requests, one per choice.
    pub choices: Vec<Choice>,
    /// Index of the correct choice.
    pub gold: usize,
}

impl Doc {
    /// `text + target`: the doc as a few-shot demonstration.
    pub fn demonstration(&self) -> String {
        format!("{}{}", self.text, self.target)
    }
}

/// Loads the docs of `task` from `path` (Arrow or JSONL rows in the HF field layout).
pub fn load_docs(task: Task, path: &Path) -> Result<Vec<Doc>> {
    let rows = data::read_rows(path)?;
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| format_row(task, row).map_err(|e| data::row_error(path, i + 1, e)))
        .collect()
}

/// The default file of `task`'s `split` under `eval_dir` (`<eval_dir>/<task>/<split>.arrow` or
/// `.jsonl`, whichever exists; `scripts/fetch-eval.sh` writes them).
pub fn default_path(eval_dir: &Path, task: Task, split: &str) -> PathBuf {
    let dir = eval_dir.join(task.name());
    let arrow = dir.join(format!("{split}.arrow"));
    if arrow.exists() {
        arrow
    } else {
        dir.join(format!("{split}.jsonl"))
    }
}

#[cfg(test)]
#[path = "tasks_tests.rs"]
mod tests;
