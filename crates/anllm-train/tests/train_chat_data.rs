//! Chat training data (`{"messages": [...]}` JSONL) on the real SmolLM2 tokenizer: rendered by
//! the model's own chat template with its special tokens as single ids, the loss on the
//! assistant answers and their `<|im_end|>` only. Needs `scripts/fetch-assets.sh`.

use std::path::Path;

use anllm::tokenizer::Tokenizer;
use anllm::weights::WeightSource;
use anllm::{WeightDtype, testutil};
use anllm_train::data::{AnchorData, DocSplit, Document, Encoder, parse_documents};
use candle_core::Device;

fn smollm2_tokenizer() -> Tokenizer {
    let path = testutil::default_model();
    let src = WeightSource::open_gguf(&path, WeightDtype::Auto, &Device::Cpu).unwrap();
    Tokenizer::from_gguf(src.gguf_content().unwrap()).unwrap()
}

#[test]
fn chat_records_train_on_the_answers_of_the_models_own_template() {
    let tok = smollm2_tokenizer();
    let jsonl = concat!(
        r#"{"messages": [{"role": "user", "content": "Hi"}, "#,
        r#"{"role": "assistant", "content": "Hello there."}, "#,
        r#"{"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye."}]}"#,
        "\n"
    );
    let docs = parse_documents(Path::new("chat.jsonl"), jsonl, DocSplit::BlankLine).unwrap();
    assert!(matches!(&docs[..], [Document::Chat { messages: m, cut: false }] if m.len() == 4));
    let enc = Encoder::new(&tok, AnchorData::Ep, None).unwrap();
    let doc = enc.encode(&docs[0]).unwrap();
    // Hand-written from SmolLM2-135M-Instruct's template (it adds its default system prompt).
    let system = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by \
                  Hugging Face<|im_end|>\n";
    let rendered = format!(
        "{system}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello there.<|im_end|>\n\
         <|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nBye.<|im_end|>\n"
    );
    assert_eq!(tok.decode(&doc.tokens, false).unwrap(), rendered);
    let im_start = tok.token_id("<|im_start|>").unwrap();
    let starts = doc.tokens.iter().filter(|&&t| t == im_start).count();
    assert_eq!(starts, 5, "<|im_start|> must be one special id, not pieces");
    // Targets: each answer and the <|im_end|> right after it, nothing else.
    assert_eq!(
        target_runs(&tok, &doc),
        ["Hello there.<|im_end|>", "Bye.<|im_end|>"]
    );
    // No BOS of our own: the template writes what the model expects.
    assert_eq!(doc.tokens[0], im_start);
}

/// The decoded runs of consecutive targets of `doc`; the last token is never one (the
/// template's trailing newline).
fn target_runs(tok: &Tokenizer, doc: &anllm_train::data::TokenizedDoc) -> Vec<String> {
    let mut answers = Vec::new();
    let mut run = Vec::new();
    for (&t, &target) in doc.tokens.iter().zip(&doc.loss_mask) {
        if target {
            run.push(t);
        } else if !run.is_empty() {
            answers.push(tok.decode(&std::mem::take(&mut run), false).unwrap());
        }
    }
    assert!(run.is_empty(), "the trailing newline is not a target");
    answers
}

#[test]
fn a_cut_last_answer_trains_without_its_end_of_turn() {
    // `generate --transcripts` writes `finish_reason: length` for an answer cut at
    // --max-tokens: the template still closes it with <|im_end|>, which the model never chose.
    let tok = smollm2_tokenizer();
    let enc = Encoder::new(&tok, AnchorData::Ep, None).unwrap();
    let runs = |finish: &str| {
        let last = format!(r#"{{"role": "assistant", "content": "Bye and"}}]{finish}}}"#);
        let jsonl = format!(
            "{}{}{last}\n",
            r#"{"messages": [{"role": "user", "content": "Hi"}, "#,
            r#"{"role": "assistant", "content": "Hello there."}, {"role": "user", "content": "Bye"}, "#,
        );
        let docs = parse_documents(Path::new("chat.jsonl"), &jsonl, DocSplit::BlankLine).unwrap();
        target_runs(&tok, &enc.encode(&docs[0]).unwrap())
    };
    let cut = runs(r#", "finish_reason": "length""#);
    assert_eq!(cut, ["Hello there.<|im_end|>", "Bye and"]);
    for ended in ["", r#", "finish_reason": "stop""#] {
        assert_eq!(runs(ended), ["Hello there.<|im_end|>", "Bye and<|im_end|>"]);
    }
}

#[test]
fn chat_records_without_an_answer_or_a_content_are_errors() {
    let tok = smollm2_tokenizer();
    let jsonl = r#"{"messages": [{"role": "user", "content": "Hi"}]}"#;
    let docs = parse_documents(Path::new("c.jsonl"), jsonl, DocSplit::BlankLine).unwrap();
    let enc = Encoder::new(&tok, AnchorData::Ep, None).unwrap();
    let err = enc.encode(&docs[0]).unwrap_err().to_string();
    assert!(err.contains("assistant"), "{err}");
    let bad = r#"{"messages": [{"role": "user"}]}"#;
    let err = parse_documents(Path::new("c.jsonl"), bad, DocSplit::BlankLine).unwrap_err();
    assert!(err.to_string().contains("row 1"), "{err}");
}

/// `--pin-prompts`: a pinned conversation pins what `generate --chat --pin-prompt` and
/// `serve --pin-prompt` pin, turn after turn: everything but the answers (hand-written from the
/// template); text is never pinned, and the share is a seeded choice per conversation.
#[test]
fn pinned_prompts_are_the_template_but_the_answers() {
    use anllm_train::data::{DataConfig, TrainData};
    let tok = smollm2_tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let chats: String = (0..40)
        .map(|i| {
            format!(
                "{{\"messages\": [{{\"role\": \"user\", \"content\": \"Name a fruit. Number {i}.\"}}, \
                 {{\"role\": \"assistant\", \"content\": \"An apple. It is red.\"}}, \
                 {{\"role\": \"user\", \"content\": \"And another?\"}}, \
                 {{\"role\": \"assistant\", \"content\": \"A pear.\"}}]}}\n"
            )
        })
        .collect();
    let (chat, text) = (dir.path().join("chat.jsonl"), dir.path().join("text.txt"));
    std::fs::write(&chat, chats).unwrap();
    std::fs::write(&text, "Some text. More text.\n\nA second paragraph.\n").unwrap();
    let data_of = |files: &[&std::path::Path], share: f64| {
        let config = DataConfig {
            anchors: AnchorData::Ep,
            pin_prompts: share,
            ..DataConfig::new(128, 1)
        };
        TrainData::from_files(files, &tok, None, config).unwrap()
    };
    let pinned_of = |share: f64| {
        let data = data_of(&[&chat, &text], share);
        let docs = data.documents();
        docs.iter()
            .map(|d| d.pinned.contains(&true))
            .collect::<Vec<_>>()
    };
    let all = pinned_of(1.0);
    assert_eq!(all.len(), 42);
    assert_eq!(
        &all[40..],
        [false, false],
        "text documents are never pinned"
    );
    let data = data_of(&[&chat], 1.0);
    let doc = &data.documents()[3];
    let mut runs = vec![Vec::new()];
    for (i, &t) in doc.tokens.iter().enumerate() {
        match doc.is_pinned(i) {
            true => runs.last_mut().unwrap().push(t),
            false if !runs.last().unwrap().is_empty() => runs.push(Vec::new()),
            false => {}
        }
    }
    let runs: Vec<String> = (runs.iter().filter(|r| !r.is_empty()))
        .map(|r| tok.decode(r, false).unwrap())
        .collect();
    let first = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by \
                 Hugging Face<|im_end|>\n<|im_start|>user\nName a fruit. Number 3.<|im_end|>\n\
                 <|im_start|>assistant\n";
    let second = "\n<|im_start|>user\nAnd another?<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(runs, [first, second, "\n"]);
    for example in data.epoch_examples(0) {
        let doc = &data.documents()[example.doc[0] as usize];
        let pinned: Vec<bool> = (0..example.len()).map(|i| example.is_pinned(i)).collect();
        let want: Vec<bool> = (0..example.len()).map(|i| doc.is_pinned(i)).collect();
        assert_eq!(pinned, want, "the rows carry the pins to the mask");
    }
    assert!(pinned_of(0.0).iter().all(|&p| !p));
    let half = pinned_of(0.5).iter().filter(|&&p| p).count();
    assert!(
        (10..=30).contains(&half),
        "{half} of 40 pinned at share 0.5"
    );
    assert_eq!(pinned_of(0.5), pinned_of(0.5), "the choice is seeded");
    let bad = DataConfig {
        pin_prompts: 1.5,
        ..DataConfig::new(128, 1)
    };
    assert!(TrainData::from_files(&[&chat], &tok, None, bad).is_err());
}
