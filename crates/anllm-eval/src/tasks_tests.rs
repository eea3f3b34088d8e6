//! Each task's formatting against hand-written expected strings (lm-eval v0.3 templates).

use serde_json::json;

use super::*;

fn format(task: Task, row: serde_json::Value) -> Doc {
    let serde_json::Value::Object(map) = row else {
        panic!("not an object")
    };
    format_row(task, map).unwrap()
}

fn conts(doc: &Doc) -> Vec<&str> {
    doc.choices
        .iter()
        .map(|c| c.continuation.as_str())
        .collect()
}

fn shared_context(doc: &Doc) -> &str {
    assert!(doc.choices.iter().all(|c| c.context == doc.text));
    &doc.text
}

#[test]
fn arc_uses_question_answer_and_maps_numeric_keys() {
    let row = json!({"id": "x", "question": "Which is a gas?",
        "choices": {"text": ["rock", "steam", "ice"], "label": ["1", "2", "3"]}, "answerKey": "2"});
    let doc = format(Task::ArcEasy, row);
    assert_eq!(shared_context(&doc), "Question: Which is a gas?\nAnswer:");
    assert_eq!(conts(&doc), vec![" rock", " steam", " ice"]);
    assert_eq!(doc.gold, 1);
    assert_eq!(
        doc.demonstration(),
        "Question: Which is a gas?\nAnswer: steam"
    );
}

#[test]
fn obqa_context_is_the_bare_stem() {
    let row = json!({"id": "7", "question_stem": "The sun is responsible for",
        "choices": {"text": ["puppies", "plants sprouting"], "label": ["A", "B"]},
        "answerKey": "B"});
    let doc = format(Task::Obqa, row);
    assert_eq!(shared_context(&doc), "The sun is responsible for");
    assert_eq!(conts(&doc), vec![" puppies", " plants sprouting"]);
    assert_eq!(doc.gold, 1);
}

#[test]
fn piqa_boolq_and_sciq_templates() {
    let piqa = format(
        Task::Piqa,
        json!({"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat the lid.", "label": 0}),
    );
    assert_eq!(shared_context(&piqa), "Question: Open a jar\nAnswer:");
    assert_eq!(conts(&piqa), vec![" Twist the lid.", " Eat the lid."]);
    assert_eq!(piqa.gold, 0);

    let boolq = format(
        Task::Boolq,
        json!({"question": "is water wet", "passage": "Water is a liquid.", "answer": false}),
    );
    assert_eq!(
        shared_context(&boolq),
        "Water is a liquid.\nQuestion: is water wet?\nAnswer:"
    );
    assert_eq!(conts(&boolq), vec![" yes", " no"]);
    assert_eq!(boolq.gold, 1);

    let sciq = format(
        Task::Sciq,
        json!({"question": "What melts ice?", "support": "", "distractor1": "cold",
            "distractor2": "dark", "distractor3": "wind", "correct_answer": "heat"}),
    );
    // An empty support leaves the leading newline, which the harness strips.
    assert_eq!(shared_context(&sciq), "Question: What melts ice?\nAnswer:");
    assert_eq!(conts(&sciq), vec![" cold", " dark", " wind", " heat"]);
    assert_eq!(sciq.gold, 3);
    let sciq = format(
        Task::Sciq,
        json!({"question": "Q?", "support": "Heat melts ice.", "distractor1": "a",
            "distractor2": "b", "distractor3": "c", "correct_answer": "d"}),
    );
    assert_eq!(sciq.text, "Heat melts ice.\nQuestion: Q?\nAnswer:");
}

#[test]
fn hellaswag_is_cleaned_and_capitalized() {
    let row = json!({"ind": 4, "activity_label": "Removing ice from car",
        "ctx_a": "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.",
        "ctx_b": "then", "ctx": "", "source_id": "", "split": "val", "split_type": "indomain",
        "endings": [", the man adds wax to the windshield and cuts it.",
                    " [header] How to clean ice [title] Scrape  gently."],
        "label": "1"});
    let doc = format(Task::Hellaswag, row);
    assert_eq!(
        shared_context(&doc),
        "Removing ice from car: Then, the man writes over the snow covering the window of a \
         car, and a woman wearing winter clothes smiles. Then"
    );
    assert_eq!(
        conts(&doc),
        vec![
            " , the man adds wax to the windshield and cuts it.",
            "  How to clean ice. Scrape gently."
        ]
    );
    assert_eq!(doc.gold, 1);
    assert_eq!(hellaswag_preprocess(" a [b] c  d "), "a c d");
    assert_eq!(hellaswag_preprocess("x [title] y"), "x. y");
}

#[test]
fn winogrande_scores_the_rest_of_the_sentence_after_each_option() {
    let row = json!({"sentence": "Sarah was a better surgeon than Maria so _ always got the harder cases.",
        "option1": "Sarah", "option2": "Maria", "answer": "1"});
    let doc = format(Task::Winogrande, row);
    let contexts: Vec<&str> = doc.choices.iter().map(|c| c.context.as_str()).collect();
    assert_eq!(
        contexts,
        vec![
            "Sarah was a better surgeon than Maria so Sarah",
            "Sarah was a better surgeon than Maria so Maria"
        ]
    );
    assert_eq!(
        conts(&doc),
        vec![
            " always got the harder cases.",
            " always got the harder cases."
        ]
    );
    assert_eq!(doc.gold, 0);
    assert_eq!(
        doc.demonstration(),
        "Sarah was a better surgeon than Maria so Sarah always got the harder cases."
    );
}

#[test]
fn bad_rows_are_errors_naming_the_problem() {
    let bad = |task, row: serde_json::Value| {
        let serde_json::Value::Object(map) = row else {
            unreachable!()
        };
        format_row(task, map).unwrap_err()
    };
    let e = bad(
        Task::Winogrande,
        json!({"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}),
    );
    assert!(e.contains('_'), "{e}");
    let e = bad(
        Task::ArcEasy,
        json!({"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "C"}),
    );
    assert!(e.contains("answerKey"), "{e}");
    let e = bad(Task::Piqa, json!({"goal": "g", "sol1": "a"}));
    assert!(e.contains("sol2"), "{e}");
}

#[test]
fn task_lists_parse_with_aliases_and_reject_unknown_names() {
    assert_eq!(Task::parse_list("all").unwrap().len(), 8);
    assert_eq!(
        Task::parse_list("arc-e, piqa,arc_easy").unwrap(),
        vec![Task::ArcEasy, Task::Piqa]
    );
    let err = Task::parse_list("piqa,mmlu").unwrap_err().to_string();
    assert!(err.contains("mmlu") && err.contains("obqa"), "{err}");
}
