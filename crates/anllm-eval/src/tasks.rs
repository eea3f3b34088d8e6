//! The paper's eight QA tasks, formatted as lm-evaluation-harness v0.3 formatted them
//! (spec §6.1–§6.2): per-task context and continuation templates, HellaSwag preprocessing and
//! WinoGrande partial scoring.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use super::data::{self, Row};
use anllm::{Error, Result};

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

    /// A multiple-choice doc whose every choice shares `text` as context.
    fn shared(text: String, choices: Vec<String>, gold: usize) -> Result<Self, String> {
        if gold >= choices.len() {
            return Err(format!("gold {gold} out of {} choices", choices.len()));
        }
        let target = format!(" {}", choices[gold]);
        let choices = choices
            .into_iter()
            .map(|c| Choice {
                context: text.clone(),
                continuation: format!(" {c}"),
            })
            .collect();
        Ok(Doc {
            text,
            target,
            choices,
            gold,
        })
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

fn field<T: for<'de> Deserialize<'de>>(row: Row) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::Object(row)).map_err(|e| e.to_string())
}

/// Formats one raw row of `task`.
pub fn format_row(task: Task, row: Row) -> Result<Doc, String> {
    match task {
        Task::Obqa => {
            let r: Lettered = field(row)?;
            let gold = r.gold()?;
            let stem = r.question_stem.ok_or("missing field `question_stem`")?;
            Doc::shared(stem, r.choices.text, gold)
        }
        Task::ArcEasy | Task::ArcChallenge => {
            let r: Lettered = field(row)?;
            let gold = r.gold()?;
            let q = r.question.ok_or("missing field `question`")?;
            Doc::shared(format!("Question: {q}\nAnswer:"), r.choices.text, gold)
        }
        Task::Piqa => {
            let r: Piqa = field(row)?;
            let gold = usize::try_from(r.label).map_err(|_| format!("label {}", r.label))?;
            Doc::shared(
                format!("Question: {}\nAnswer:", r.goal),
                vec![r.sol1, r.sol2],
                gold,
            )
        }
        Task::Boolq => {
            let r: Boolq = field(row)?;
            let text = format!("{}\nQuestion: {}?\nAnswer:", r.passage, r.question);
            Doc::shared(
                text,
                vec!["yes".into(), "no".into()],
                usize::from(!r.answer),
            )
        }
        Task::Hellaswag => {
            let r: Hellaswag = field(row)?;
            let gold = r
                .label
                .trim()
                .parse()
                .map_err(|_| format!("label `{}`", r.label))?;
            let ctx = format!("{} {}", r.ctx_a, capitalize(&r.ctx_b));
            let query = hellaswag_preprocess(&format!("{}: {ctx}", r.activity_label));
            let endings = r.endings.iter().map(|e| hellaswag_preprocess(e)).collect();
            Doc::shared(query, endings, gold)
        }
        Task::Sciq => {
            let r: Sciq = field(row)?;
            let text = format!("{}\nQuestion: {}\nAnswer:", r.support, r.question)
                .trim()
                .to_string();
            let choices = vec![
                r.distractor1,
                r.distractor2,
                r.distractor3,
                r.correct_answer,
            ];
            Doc::shared(text, choices, 3)
        }
        Task::Winogrande => winogrande(field(row)?),
    }
}

/// WinoGrande partial scoring: the context is the sentence up to the blank with an option filled
/// in; the continuation (the same for both options) is the rest of the sentence.
fn winogrande(r: Winogrande) -> Result<Doc, String> {
    let blank = r.sentence.find('_').ok_or("sentence has no `_`")?;
    let gold = match r.answer.trim() {
        "1" => 0,
        "2" => 1,
        other => return Err(format!("answer `{other}` is neither 1 nor 2")),
    };
    let rest = format!(" {}", r.sentence[blank + 1..].trim());
    let partial = |option: &str| format!("{}{option}", &r.sentence[..blank]);
    let options = [&r.option1, &r.option2];
    Ok(Doc {
        text: partial(options[gold]),
        target: rest.clone(),
        choices: options
            .iter()
            .map(|o| Choice {
                context: partial(o),
                continuation: rest.clone(),
            })
            .collect(),
        gold,
    })
}

/// Python's `str.capitalize`: first character upper-cased, the rest lower-cased.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// The harness's HellaSwag cleaning: strip, ` [title]` → `. `, drop `[...]` markup, `"  "` → `" "`.
pub fn hellaswag_preprocess(text: &str) -> String {
    let text = text.trim().replace(" [title]", ". ");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(open) = rest.find('[') {
        match rest[open..].find(']') {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

#[derive(Deserialize)]
struct LetteredChoices {
    text: Vec<String>,
    label: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lettered {
    question: Option<String>,
    #[serde(rename = "question_stem")]
    question_stem: Option<String>,
    choices: LetteredChoices,
    answer_key: String,
}

impl Lettered {
    /// ARC's numeric keys ("1".."5") map to A..E, as the harness does.
    fn gold(&self) -> Result<usize, String> {
        let key = match self.answer_key.trim() {
            "1" => "A",
            "2" => "B",
            "3" => "C",
            "4" => "D",
            "5" => "E",
            k => k,
        };
        let labels: Vec<&str> = self
            .choices
            .label
            .iter()
            .map(|l| match l.as_str() {
                "1" => "A",
                "2" => "B",
                "3" => "C",
                "4" => "D",
                "5" => "E",
                l => l,
            })
            .collect();
        if labels.len() != self.choices.text.len() {
            return Err("choices.text and choices.label differ in length".into());
        }
        labels
            .iter()
            .position(|&l| l == key)
            .ok_or_else(|| format!("answerKey `{}` is not among the labels", self.answer_key))
    }
}

#[derive(Deserialize)]
struct Piqa {
    goal: String,
    sol1: String,
    sol2: String,
    label: i64,
}

#[derive(Deserialize)]
struct Boolq {
    question: String,
    passage: String,
    answer: bool,
}

#[derive(Deserialize)]
struct Hellaswag {
    activity_label: String,
    ctx_a: String,
    ctx_b: String,
    endings: Vec<String>,
    label: String,
}

#[derive(Deserialize)]
struct Sciq {
    question: String,
    support: String,
    distractor1: String,
    distractor2: String,
    distractor3: String,
    correct_answer: String,
}

#[derive(Deserialize)]
struct Winogrande {
    sentence: String,
    option1: String,
    option2: String,
    answer: String,
}

#[cfg(test)]
#[path = "tasks_tests.rs"]
mod tests;
