//! The raw rows of each task in the Hugging Face field layout, deserialized from a [`Row`].

use serde::Deserialize;

use crate::data::Row;

/// Deserializes `row` into the layout `T`, with serde's message as the error.
pub(super) fn field<T: for<'de> Deserialize<'de>>(row: Row) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::Object(row)).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
pub(super) struct LetteredChoices {
    pub(super) text: Vec<String>,
    label: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Lettered {
    pub(super) question: Option<String>,
    #[serde(rename = "question_stem")]
    pub(super) question_stem: Option<String>,
    pub(super) choices: LetteredChoices,
    answer_key: String,
}

impl Lettered {
    /// ARC's numeric keys ("1".."5") map to A..E, as the harness does.
    pub(super) fn gold(&self) -> Result<usize, String> {
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
pub(super) struct Piqa {
    pub(super) goal: String,
    pub(super) sol1: String,
    pub(super) sol2: String,
    pub(super) label: i64,
}

#[derive(Deserialize)]
pub(super) struct Boolq {
    pub(super) question: String,
    pub(super) passage: String,
    pub(super) answer: bool,
}

#[derive(Deserialize)]
pub(super) struct Hellaswag {
    pub(super) activity_label: String,
    pub(super) ctx_a: String,
    pub(super) ctx_b: String,
    pub(super) endings: Vec<String>,
    pub(super) label: String,
}

#[derive(Deserialize)]
pub(super) struct Sciq {
    pub(super) question: String,
    pub(super) support: String,
    pub(super) distractor1: String,
    pub(super) distractor2: String,
    pub(super) distractor3: String,
    pub(super) correct_answer: String,
}

#[derive(Deserialize)]
pub(super) struct Winogrande {
    pub(super) sentence: String,
    pub(super) option1: String,
    pub(super) option2: String,
    pub(super) answer: String,
}
