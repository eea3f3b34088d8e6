//! Each task's row formatted as lm-evaluation-harness v0.3 formats it: the context and
//! continuation templates, HellaSwag's cleaning and WinoGrande's partial scoring.

use super::rows::{Boolq, Hellaswag, Lettered, Piqa, Sciq, Winogrande, field};
use super::{Choice, Doc, Task};
use crate::data::Row;

/// Formats one raw row of `task`.
pub fn format_row(task: Task, row: Row) -> Result<Doc, String> {
    match task {
        Task::Obqa => obqa(field(row)?),
        Task::ArcEasy | Task::ArcChallenge => arc(field(row)?),
        Task::Piqa => piqa(field(row)?),
        Task::Boolq => boolq(field(row)?),
        Task::Hellaswag => hellaswag(field(row)?),
        Task::Sciq => sciq(field(row)?),
        Task::Winogrande => winogrande(field(row)?),
    }
}

impl Doc {
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

/// OpenBookQA: the question stem alone.
fn obqa(r: Lettered) -> Result<Doc, String> {
    let gold = r.gold()?;
    let stem = r.question_stem.ok_or("missing field `question_stem`")?;
    Doc::shared(stem, r.choices.text, gold)
}

/// ARC: `Question: {question}\nAnswer:`.
fn arc(r: Lettered) -> Result<Doc, String> {
    let gold = r.gold()?;
    let q = r.question.ok_or("missing field `question`")?;
    Doc::shared(format!("Question: {q}\nAnswer:"), r.choices.text, gold)
}

/// PIQA: `Question: {goal}\nAnswer:`.
fn piqa(r: Piqa) -> Result<Doc, String> {
    let gold = usize::try_from(r.label).map_err(|_| format!("label {}", r.label))?;
    Doc::shared(
        format!("Question: {}\nAnswer:", r.goal),
        vec![r.sol1, r.sol2],
        gold,
    )
}

/// BoolQ: `{passage}\nQuestion: {question}?\nAnswer:`, choices ` yes` / ` no`.
fn boolq(r: Boolq) -> Result<Doc, String> {
    let text = format!("{}\nQuestion: {}?\nAnswer:", r.passage, r.question);
    Doc::shared(
        text,
        vec!["yes".into(), "no".into()],
        usize::from(!r.answer),
    )
}

/// HellaSwag: `{activity_label}: {ctx_a} {Ctx_b}` and the endings, cleaned.
fn hellaswag(r: Hellaswag) -> Result<Doc, String> {
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

/// SciQ: `{support}\nQuestion: {question}\nAnswer:`, the correct answer last.
fn sciq(r: Sciq) -> Result<Doc, String> {
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
