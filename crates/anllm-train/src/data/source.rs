//! Reading documents: plain text, JSON/JSONL records with a `text` field, and Alpaca
//! instruction data (`instruction`, optional `input`, `output`), and chat conversations
//! (`messages`, as OpenAI's chat format) rendered by the model's own chat template.

use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::Value;

use anllm::chat::Message;
use anllm::{Error, Result};

/// One training document, before tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// Running text: every token after the first is a prediction target (pre-training).
    Text(String),
    /// An instruction example (SFT, spec §4.2): the loss is only on `response`.
    Instruction {
        /// The prompt (the Alpaca template filled in), not a prediction target.
        prompt: String,
        /// The answer the model learns to produce.
        response: String,
    },
    /// A conversation (`messages` of `role` and `content`), rendered with the model's chat
    /// template; the loss is on the assistant answers and their end-of-answer token only.
    Chat {
        /// The conversation.
        messages: Vec<Message>,
        /// The last answer was cut (`"finish_reason": "length"`, as `generate --transcripts`
        /// writes for an answer that reached `--max-tokens`): the end-of-turn token the
        /// template closes it with is no target, since the model did not end its turn there.
        cut: bool,
    },
}

/// How a plain-text file is cut into documents (`--doc-split`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DocSplit {
    /// Documents are separated by one or more blank (whitespace-only) lines.
    #[default]
    BlankLine,
    /// The whole file is one document.
    File,
}

impl FromStr for DocSplit {
    type Err = Error;

    /// `blank-line` or `file`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "blank-line" => Ok(Self::BlankLine),
            "file" => Ok(Self::File),
            _ => Err(Error::config(
                "doc-split",
                format!("`{s}`: expected blank-line or file"),
            )),
        }
    }
}

/// What a data file holds, from its extension and its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// Plain text (any extension other than `.json` / `.jsonl`).
    PlainText,
    /// JSON records (JSONL, or a JSON array) with a `text` field.
    JsonText,
    /// Alpaca records (JSONL, or a JSON array) with `instruction`, `input`, `output`.
    Alpaca,
    /// Chat records (JSONL, or a JSON array) with a `messages` list of `role` / `content`.
    Chat,
}

/// The Alpaca prompt for `instruction` and `input` (Stanford Alpaca's template; the variant
/// without the input section when `input` is empty). The response follows it directly.
pub fn alpaca_prompt(instruction: &str, input: &str) -> String {
    if input.is_empty() {
        format!(
            "Below is an instruction that describes a task. Write a response that appropriately \
             completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
        )
    } else {
        format!(
            "Below is an instruction that describes a task, paired with an input that provides \
             further context. Write a response that appropriately completes the request.\n\n\
             ### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
        )
    }
}

/// The documents of the file at `path` (see [`parse_documents`]).
pub fn read_documents(path: &Path, split: DocSplit) -> Result<Vec<Document>> {
    let content = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_documents(path, &content, split)
}

/// The documents of `content`, read from `path`: `.json` / `.jsonl` files hold records (a JSON
/// array when the content starts with `[`, else one object per non-blank line), each a
/// `text` document or an Alpaca example, as the first record decides; other files are plain
/// text cut by `split`. A bad record gives [`Error::Format`] naming `path` and the 1-based row
/// (line of a JSONL file, element of an array).
pub fn parse_documents(path: &Path, content: &str, split: DocSplit) -> Result<Vec<Document>> {
    if !is_json_path(path) {
        return Ok(split_text(content, split));
    }
    let records = json_records(path, content)?;
    let Some((_, first)) = records.first() else {
        return Ok(Vec::new());
    };
    let format = record_format(first).ok_or_else(|| row_error(path, records[0].0, NO_FORMAT))?;
    records
        .into_iter()
        .map(|(row, value)| record_document(format, value).map_err(|e| row_error(path, row, e)))
        .collect()
}

/// The format of the file at `path` whose content is `content`.
pub fn detect_format(path: &Path, content: &str) -> Result<SourceFormat> {
    if !is_json_path(path) {
        return Ok(SourceFormat::PlainText);
    }
    let records = json_records(path, content)?;
    match records.first() {
        None => Ok(SourceFormat::JsonText),
        Some((row, first)) => record_format(first).ok_or_else(|| row_error(path, *row, NO_FORMAT)),
    }
}

const NO_FORMAT: &str = "expected an object with a `text` field, Alpaca `instruction` and \
                         `output` fields, or chat `messages`";

fn is_json_path(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("json" | "jsonl")
    )
}

fn row_error(path: &Path, row: usize, reason: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: format!("row {row}: {reason}"),
    }
}

/// Plain-text documents: whitespace-trimmed, never empty.
fn split_text(content: &str, split: DocSplit) -> Vec<Document> {
    match split {
        DocSplit::File => {
            let text = content.trim();
            (!text.is_empty())
                .then(|| Document::Text(text.to_string()))
                .into_iter()
                .collect()
        }
        DocSplit::BlankLine => paragraphs(content)
            .into_iter()
            .map(Document::Text)
            .collect(),
    }
}

/// Runs of non-blank lines, joined with `\n` (line ends normalized, trailing space of each
/// run trimmed).
fn paragraphs(content: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in content.lines().chain(std::iter::once("")) {
        if !line.trim().is_empty() {
            current.push(line);
        } else if !current.is_empty() {
            out.push(current.join("\n").trim().to_string());
            current.clear();
        }
    }
    out
}

/// `(row, record)` pairs, rows 1-based.
fn json_records(path: &Path, content: &str) -> Result<Vec<(usize, Value)>> {
    if content.trim_start().starts_with('[') {
        let values: Vec<Value> = serde_json::from_str(content).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            reason: format!("not a JSON array of records: {e}"),
        })?;
        return Ok((1..).zip(values).collect());
    }
    (1..)
        .zip(content.lines())
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(row, line)| {
            let value = serde_json::from_str(line).map_err(|e| row_error(path, row, e))?;
            Ok((row, value))
        })
        .collect()
}

fn record_format(record: &Value) -> Option<SourceFormat> {
    let object = record.as_object()?;
    if object.contains_key("messages") {
        Some(SourceFormat::Chat)
    } else if object.contains_key("instruction") {
        Some(SourceFormat::Alpaca)
    } else if object.contains_key("text") {
        Some(SourceFormat::JsonText)
    } else {
        None
    }
}

#[derive(Deserialize)]
struct TextRecord {
    text: String,
}

#[derive(Deserialize)]
struct ChatRecord {
    messages: Vec<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AlpacaRecord {
    instruction: String,
    #[serde(default)]
    input: Option<String>,
    output: String,
}

fn record_document(format: SourceFormat, value: Value) -> Result<Document, serde_json::Error> {
    Ok(match format {
        SourceFormat::Alpaca => {
            let r: AlpacaRecord = serde_json::from_value(value)?;
            Document::Instruction {
                prompt: alpaca_prompt(&r.instruction, r.input.as_deref().unwrap_or("")),
                response: r.output,
            }
        }
        SourceFormat::Chat => {
            let r: ChatRecord = serde_json::from_value(value)?;
            Document::Chat {
                messages: r.messages,
                cut: r.finish_reason.as_deref() == Some("length"),
            }
        }
        SourceFormat::JsonText | SourceFormat::PlainText => {
            Document::Text(serde_json::from_value::<TextRecord>(value)?.text)
        }
    })
}
