//! Tests of the KV task generator, with a word count standing in for the tokenizer.

use std::cell::Cell;
use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::words::{ADJECTIVES, NOUNS, snap_start, word_ends};
use super::{
    GenSpec, KvItem, KvTask, Miss, Window, fit, generate, interleave, read_jsonl, write_jsonl,
};

const LENGTHS: [usize; 3] = [128, 512, 2048];

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// A non-repeating "real" text: random sentences of list words, paragraphs split by `\n\n`.
fn real_text(n_words: usize) -> String {
    let mut rng = StdRng::seed_from_u64(99);
    let mut text = String::new();
    let mut sentence_len = 0;
    for i in 0..n_words {
        let list = if i % 2 == 0 { &ADJECTIVES } else { &NOUNS };
        text.push_str(list[rng.random_range(0..list.len())]);
        sentence_len += 1;
        if sentence_len >= rng.random_range(4..14) {
            sentence_len = 0;
            text.push_str(if rng.random_range(0..5) == 0 {
                ".\n\n"
            } else {
                ". "
            });
        } else {
            text.push(' ');
        }
    }
    text
}

fn spec(task: KvTask, length: usize, items: usize, seed: u64, text: Option<&str>) -> GenSpec<'_> {
    GenSpec {
        task,
        length,
        items,
        seed,
        real_text: text,
    }
}

fn gen_items(task: KvTask, length: usize, items: usize, seed: u64) -> Vec<KvItem> {
    let text = real_text(40_000);
    generate(&spec(task, length, items, seed, Some(&text)), &words).unwrap()
}

#[test]
fn every_task_hits_its_length_window() {
    let text = real_text(40_000);
    for task in KvTask::all() {
        for length in LENGTHS {
            let items = generate(&spec(task, length, 3, 7, Some(&text)), &words).unwrap();
            assert_eq!(items.len(), 3);
            for (id, item) in items.iter().enumerate() {
                let n = words(&item.context);
                assert!(
                    n <= length && n + length / 50 + 8 >= length,
                    "{task} {length}: {n}"
                );
                assert_eq!((item.task, item.length, item.id), (task, length, id));
            }
        }
    }
}

#[test]
fn fitting_counts_few_times() {
    let calls = Cell::new(0);
    let counting = |s: &str| {
        calls.set(calls.get() + 1);
        words(s)
    };
    for task in [KvTask::Passkey, KvTask::Vt, KvTask::Multikey] {
        calls.set(0);
        generate(&spec(task, 2048, 4, 3, None), &counting).unwrap();
        assert!(
            calls.get() <= 4 * 6,
            "{task}: {} calls for 4 items",
            calls.get()
        );
    }
}

#[test]
fn passkey_needle_appears_once() {
    for length in LENGTHS {
        for item in gen_items(KvTask::Passkey, length, 3, 11) {
            let key = item.answer.trim();
            assert_eq!(item.answer, format!(" {key}"));
            assert!(key.len() == 5 && key.chars().all(|c| c.is_ascii_digit()));
            assert!(!key.starts_with('0'));
            let needle = format!("The pass key is {key}. Remember it. {key} is the pass key.");
            assert_eq!(item.context.matches(&needle).count(), 1);
            assert_eq!(item.context.matches(key).count(), 2, "only in the needle");
            assert_eq!(item.question, "What is the pass key?");
            assert_eq!(item.answer_prefix, "The pass key is");
        }
    }
}

#[test]
fn multikey_target_is_unique_among_distractors() {
    for length in LENGTHS {
        for item in gen_items(KvTask::Multikey, length, 3, 5) {
            let value = item.answer.trim();
            assert_eq!(value.len(), 7);
            let key = item.question["What is the special magic number for ".len()..]
                .trim_end_matches('?');
            assert_eq!(
                item.answer_prefix,
                format!("The special magic number for {key} is")
            );
            let target = format!("One of the special magic numbers for {key} is: {value}.");
            assert_eq!(item.context.matches(&target).count(), 1);
            assert_eq!(item.context.matches(value).count(), 1);
            let needles: Vec<&str> = item
                .context
                .split("One of the special magic numbers for ")
                .skip(1)
                .collect();
            assert!(needles.len() > 1, "distractors present");
            let keys: HashSet<&str> = needles
                .iter()
                .map(|n| n.split(" is: ").next().unwrap())
                .collect();
            assert_eq!(keys.len(), needles.len(), "keys distinct");
        }
    }
}

#[test]
fn vt_chain_appears_in_order() {
    for length in LENGTHS {
        for item in gen_items(KvTask::Vt, length, 3, 8) {
            let names: Vec<&str> = item.answer.split_whitespace().collect();
            assert_eq!(names.len(), 5);
            assert_eq!(names.iter().collect::<HashSet<_>>().len(), 5);
            assert!(
                names
                    .iter()
                    .all(|n| n.len() == 5 && n.chars().all(|c| c.is_ascii_uppercase()))
            );
            let value = item.question.split_whitespace().nth(8).unwrap();
            assert!(
                item.answer_prefix
                    .ends_with(&format!("the value {value}, they are:"))
            );
            let mut at = 0;
            for (k, name) in names.iter().enumerate() {
                let statement = match k {
                    0 => format!("VAR {name} = {value} ."),
                    _ => format!("VAR {name} = VAR {} .", names[k - 1]),
                };
                assert_eq!(item.context.matches(&statement).count(), 1);
                let pos = item.context.find(&statement).unwrap();
                assert!(pos >= at, "statement {k} in order");
                at = pos;
            }
        }
    }
}

#[test]
fn passkey_needle_sits_at_its_depth() {
    for length in [512, 2048] {
        let items = gen_items(KvTask::Passkey, length, 3, 2);
        for (item, depth) in items.iter().zip([0.0, 0.5, 1.0]) {
            assert_eq!(item.depth, depth);
            let at = item.context.find("The pass key is").unwrap();
            let rel = at as f32 / item.context.len() as f32;
            assert!(
                (rel - depth).abs() <= 0.1,
                "{length}: {rel} for depth {depth}"
            );
        }
    }
    assert_eq!(gen_items(KvTask::Passkey, 256, 1, 2)[0].depth, 0.5);
}

#[test]
fn generation_is_deterministic_and_seeded() {
    for task in KvTask::all() {
        assert_eq!(
            gen_items(task, 512, 3, 42),
            gen_items(task, 512, 3, 42),
            "{task}"
        );
        let (a, b) = (gen_items(task, 512, 3, 42), gen_items(task, 512, 3, 43));
        let answers = |items: &[KvItem]| items.iter().map(|i| i.answer.clone()).collect::<Vec<_>>();
        assert_ne!(answers(&a), answers(&b), "{task}");
    }
    // An item does not depend on how many items follow it (depth aside).
    let (two, three) = (
        gen_items(KvTask::Vt, 256, 2, 1),
        gen_items(KvTask::Vt, 256, 3, 1),
    );
    assert_eq!(two[0], three[0]);
}

#[test]
fn agreement_answer_follows_the_context() {
    let text = real_text(40_000);
    for length in LENGTHS {
        let items = generate(&spec(KvTask::Agreement, length, 4, 9, Some(&text)), &words).unwrap();
        let mut contexts = HashSet::new();
        for item in &items {
            // Exactly: context + answer is the text from the window's start on.
            let start = text.find(&item.context).unwrap();
            assert!(text[start + item.context.len()..].starts_with(&item.answer));
            assert!(!item.context.starts_with(char::is_whitespace));
            assert!(!item.context.ends_with(char::is_whitespace));
            assert!(item.answer.starts_with(char::is_whitespace));
            assert!(
                (55..=64).contains(&words(&item.answer)),
                "{}",
                words(&item.answer)
            );
            let before = text[..start].trim_end();
            assert!(
                start == 0 || before.ends_with('.'),
                "starts at a sentence boundary"
            );
            assert!(item.question.is_empty() && item.answer_prefix.is_empty());
            assert_eq!(item.depth, 0.0);
            assert!(contexts.insert(item.context.clone()), "distinct windows");
        }
    }
}

#[test]
fn agreement_needs_enough_real_text() {
    let none = generate(&spec(KvTask::Agreement, 512, 2, 0, None), &words).unwrap_err();
    assert!(none.contains("real text"), "{none}");
    let short = real_text(300);
    let err = generate(&spec(KvTask::Agreement, 512, 2, 0, Some(&short)), &words).unwrap_err();
    assert!(err.contains("too short"), "{err}");
}

#[test]
fn too_small_lengths_are_errors() {
    let err = generate(&spec(KvTask::Passkey, 32, 1, 0, None), &words).unwrap_err();
    assert!(err.contains("too small"), "{err}");
    let tokens_per_char = |s: &str| s.len();
    let err = generate(&spec(KvTask::Vt, 64, 1, 0, None), &tokens_per_char).unwrap_err();
    assert!(err.contains("needles alone"), "{err}");
}

#[test]
fn jsonl_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("items.jsonl");
    let mut items = gen_items(KvTask::Passkey, 128, 2, 1);
    items.extend(gen_items(KvTask::Agreement, 128, 2, 1));
    write_jsonl(&items, &path).unwrap();
    assert_eq!(read_jsonl(&path).unwrap(), items);
    let first = std::fs::read_to_string(&path).unwrap();
    assert!(first.starts_with(r#"{"task":"passkey","length":128,"id":0,"#));
    std::fs::write(
        &path,
        format!("{}\n{{not json\n", first.lines().next().unwrap()),
    )
    .unwrap();
    let err = read_jsonl(&path).unwrap_err();
    assert!(err.contains("items.jsonl:2:"), "{err}");
}

#[test]
fn task_names_parse_back() {
    for task in KvTask::all() {
        assert_eq!(KvTask::parse(task.name()), Ok(task));
        assert_eq!(task.name().to_uppercase().parse::<KvTask>(), Ok(task));
        assert_eq!(
            serde_json::to_string(&task).unwrap(),
            format!("\"{}\"", task.name())
        );
    }
    assert!(KvTask::parse("ruler").unwrap_err().contains("passkey"));
}

#[test]
fn word_lists_are_distinct() {
    assert_eq!(
        ADJECTIVES.iter().collect::<HashSet<_>>().len(),
        ADJECTIVES.len()
    );
    assert_eq!(NOUNS.iter().collect::<HashSet<_>>().len(), NOUNS.len());
    assert!(
        ADJECTIVES
            .iter()
            .chain(&NOUNS)
            .all(|w| w.chars().all(|c| c.is_ascii_lowercase()))
    );
}

#[test]
fn interleave_places_inserts_by_depth() {
    let units = ["a", "b", "c", "d"];
    assert_eq!(interleave(&units, 4, &[(0.0, "X")]), "X a b c d");
    assert_eq!(
        interleave(&units, 4, &[(0.5, "X"), (0.5, "Y")]),
        "a b X Y c d"
    );
    assert_eq!(interleave(&units, 4, &[(1.0, "X")]), "a b c d X");
    assert_eq!(interleave(&units, 2, &[]), "a b");
}

#[test]
fn fit_reports_what_does_not_fit() {
    let win = Window::for_length(100);
    assert_eq!((win.lo, win.hi), (90, 100));
    let build = |n: usize| "w ".repeat(n);
    assert_eq!(fit(win, 1000, 1, &build, &words).unwrap().n, 95);
    let coarse = |n: usize| "w ".repeat(40 * n);
    let miss = fit(win, 1000, 1, &coarse, &words).unwrap_err();
    assert_eq!(miss, Miss::Short { n: 2, tokens: 80 });
    let fixed = |n: usize| "w ".repeat(101 + n);
    assert_eq!(
        fit(win, 1000, 1, &fixed, &words).unwrap_err(),
        Miss::TooLong(101)
    );
}

#[test]
fn boundaries_of_real_text() {
    let text = "One two. Three four\n\nFive six seven";
    assert_eq!(snap_start(text, 0), 0);
    assert_eq!(&text[snap_start(text, 2)..], "Five six seven");
    assert_eq!(word_ends("ab  cd e", false), vec![2, 6]);
    assert_eq!(word_ends("ab  cd e", true), vec![2, 6, 8]);
}

#[test]
fn answer_recall_is_the_share_of_answer_words_found() {
    use super::metrics::answer_recall;
    // Hand-derived, as RULER's string_match_all: 2 of the 3 variables are in the output.
    let got = answer_recall(" ABCDE FGHIJ KLMNO", "VAR ABCDE = VAR KLMNO\n");
    assert!((got - 2.0 / 3.0).abs() < 1e-12);
    // One key: all or nothing.
    assert_eq!(answer_recall(" 46380", "The pass key is 46380."), 1.0);
    assert_eq!(answer_recall(" 46380", "The pass key is 4638."), 0.0);
}
