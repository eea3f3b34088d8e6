use std::path::Path;
use std::sync::OnceLock;

use super::*;
use anllm::sentence::{PunktParams, SentenceSplitter};
use anllm::testutil::{HfLayout, TinySpec, anllm_llama2_spec, write_hf_dir};

mod blocks;
mod encode;

/// A tokenizer of a tiny Llama-2-style HF directory.
fn load_tokenizer(spec: &TinySpec) -> Tokenizer {
    let dir = tempfile::tempdir().unwrap();
    write_hf_dir(dir.path(), spec, HfLayout::Safetensors).unwrap();
    Tokenizer::from_hf_dir(dir.path()).unwrap()
}

/// 384 ids, `<s>` = 1, `</s>` = 2, no pad.
fn tiny() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| load_tokenizer(&TinySpec::gqa()))
}

/// The AnLLM-AC vocabulary: `[PAD]` = 32000, `<AC>` = 32001.
fn with_ac() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| load_tokenizer(&anllm_llama2_spec(32002)))
}

fn splitter() -> SentenceSplitter {
    SentenceSplitter::new(PunktParams::english_minimal())
}

const AC: TokenId = 32001;

fn text(s: &str) -> Document {
    Document::Text(s.to_string())
}

fn texts(docs: &[Document]) -> Vec<&str> {
    docs.iter()
        .map(|d| match d {
            Document::Text(t) => t.as_str(),
            Document::Instruction { .. } | Document::Chat { .. } => panic!("not a text: {d:?}"),
        })
        .collect()
}
#[test]
fn plain_text_splits_on_blank_lines_or_keeps_the_file() {
    let content = "First doc\nline two.\n\n\n  \nSecond doc.\r\n\r\nThird.\n";
    let path = Path::new("corpus.txt");
    let docs = parse_documents(path, content, DocSplit::BlankLine).unwrap();
    assert_eq!(
        texts(&docs),
        ["First doc\nline two.", "Second doc.", "Third."]
    );
    let whole = parse_documents(path, content, DocSplit::File).unwrap();
    assert_eq!(texts(&whole), [content.trim()]);
    assert!(
        parse_documents(path, " \n\n", DocSplit::File)
            .unwrap()
            .is_empty()
    );
    assert_eq!("file".parse::<DocSplit>().unwrap(), DocSplit::File);
    assert!("lines".parse::<DocSplit>().is_err());
}

#[test]
fn jsonl_text_rows_become_documents() {
    let content = "{\"text\": \"One.\"}\n\n{\"text\": \"Two.\", \"meta\": 3}\n";
    let path = Path::new("d.jsonl");
    assert_eq!(
        detect_format(path, content).unwrap(),
        SourceFormat::JsonText
    );
    let docs = parse_documents(path, content, DocSplit::BlankLine).unwrap();
    assert_eq!(texts(&docs), ["One.", "Two."]);
    // The extension decides: the same lines in a .txt file are plain text.
    let plain = Path::new("d.txt");
    assert_eq!(
        detect_format(plain, content).unwrap(),
        SourceFormat::PlainText
    );
}

#[test]
fn alpaca_array_and_lines_fill_the_template() {
    let array = r#"[{"instruction": "Add.", "input": "1 and 2", "output": "3"},
                    {"instruction": "Greet.", "input": "", "output": "Hi"},
                    {"instruction": "Greet.", "output": "Hi"}]"#;
    let path = Path::new("alpaca.json");
    assert_eq!(detect_format(path, array).unwrap(), SourceFormat::Alpaca);
    let docs = parse_documents(path, array, DocSplit::BlankLine).unwrap();
    let with_input = Document::Instruction {
        prompt: alpaca_prompt("Add.", "1 and 2"),
        response: "3".into(),
    };
    let no_input = Document::Instruction {
        prompt: alpaca_prompt("Greet.", ""),
        response: "Hi".into(),
    };
    assert_eq!(docs, [with_input, no_input.clone(), no_input.clone()]);
    assert!(alpaca_prompt("Add.", "1 and 2").contains("### Input:\n1 and 2\n\n### Response:\n"));
    assert!(!alpaca_prompt("Greet.", "").contains("### Input"));
    // A .json file holding JSON lines is read as lines.
    let lines = r#"{"instruction": "Greet.", "output": "Hi"}"#;
    assert_eq!(
        parse_documents(path, lines, DocSplit::BlankLine).unwrap(),
        [no_input]
    );
}

#[test]
fn malformed_rows_name_the_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, content: &str, needle: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let err = read_documents(&path, DocSplit::BlankLine).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Format { .. }), "{msg}");
        assert!(msg.contains(name) && msg.contains(needle), "{msg}");
    };
    let good = r#"{"instruction": "a", "output": "b"}"#;
    check("bad.jsonl", &format!("{good}\n\n{{oops\n"), "row 3:");
    check(
        "missing.jsonl",
        &format!("{good}\n{{\"instruction\": \"a\"}}\n"),
        "row 2: missing field `output`",
    );
    check(
        "wrong.jsonl",
        "{\"text\": \"a\"}\n{\"text\": 5}\n",
        "row 2:",
    );
    check("unknown.jsonl", "{\"body\": \"a\"}\n", "row 1:");
    check(
        "array.json",
        r#"[{"instruction": "a", "output": "b"}, {"instruction": "a", "output": 1}]"#,
        "row 2:",
    );
    check("broken.json", "[{\"text\": \"a\"},", "not a JSON array");
    let missing = dir.path().join("nope.txt");
    assert!(matches!(
        read_documents(&missing, DocSplit::File),
        Err(Error::Io { .. })
    ));
}
