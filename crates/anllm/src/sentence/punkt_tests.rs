use super::*;

fn minimal() -> SentenceSplitter {
    SentenceSplitter::new(PunktParams::english_minimal())
}

fn split(text: &str) -> Vec<&str> {
    minimal().sentences(text)
}

#[test]
fn abbreviations_and_decimals_do_not_end_sentences() {
    assert_eq!(
        split("Mr. Smith went to Washington. He arrived at 3.14 p.m. on Monday."),
        [
            "Mr. Smith went to Washington.",
            "He arrived at 3.14 p.m. on Monday."
        ]
    );
    assert_eq!(
        split("Use a fruit, e.g. an apple, i.e. something sweet. Dr. Jones agrees."),
        [
            "Use a fruit, e.g. an apple, i.e. something sweet.",
            "Dr. Jones agrees."
        ]
    );
    assert_eq!(
        split("The U.S. economy grew by 3.5 percent."),
        ["The U.S. economy grew by 3.5 percent."]
    );
    assert_eq!(
        split("Mrs. J. Smith lives on Baker St. in London."),
        ["Mrs. J. Smith lives on Baker St. in London."]
    );
}

#[test]
fn abbreviation_before_a_sentence_starter_ends_the_sentence() {
    assert_eq!(
        split("They moved to the U.S. The economy was better."),
        ["They moved to the U.S.", "The economy was better."]
    );
    assert_eq!(
        split("Apples, pears, etc. But not plums."),
        ["Apples, pears, etc.", "But not plums."]
    );
}

#[test]
fn question_and_exclamation_marks_split() {
    assert_eq!(
        split("Really? Yes! It works."),
        ["Really?", "Yes!", "It works."]
    );
    assert_eq!(
        split("What?! No way!!! OK."),
        ["What?!", "No way!!!", "OK."]
    );
}

#[test]
fn closing_quotes_and_brackets_stay_with_the_sentence() {
    assert_eq!(
        split(r#"He said "Stop." Then he left."#),
        [r#"He said "Stop.""#, "Then he left."]
    );
    assert_eq!(
        split("(This is one.) This is two."),
        ["(This is one.)", "This is two."]
    );
    assert_eq!(
        split("She said “Go.” He went."),
        ["She said “Go.”", "He went."]
    );
    // `?` and `!` always break, even inside quotes (as NLTK).
    assert_eq!(
        split(r#"He asked "why?" and left."#),
        [r#"He asked "why?""#, "and left."]
    );
    assert_eq!(split(r#"It ends here.""#), [r#"It ends here.""#]);
}

#[test]
fn realignment_can_be_turned_off() {
    let s = minimal().with_realign_boundaries(false);
    assert_eq!(
        s.sentences(r#"He said "Stop." Then he left."#),
        [r#"He said "Stop."#, r#"" Then he left."#]
    );
}

#[test]
fn ellipsis_as_nltk() {
    // An ellipsis ends a sentence only on orthographic or sentence-starter evidence.
    assert_eq!(split("Wait... what happened?"), ["Wait... what happened?"]);
    assert_eq!(
        split("Wait... What happened?"),
        ["Wait...", "What happened?"]
    );
    // NLTK sees each period of a spaced ellipsis as a candidate, and they break.
    assert_eq!(
        split("Wait. . . What happened?"),
        ["Wait.", ".", ".", "What happened?"]
    );
}

#[test]
fn paragraphs() {
    let text = "First paragraph. Still first.\n\nSecond paragraph here.\n\n\nThird.";
    assert_eq!(
        split(text),
        [
            "First paragraph.",
            "Still first.",
            "Second paragraph here.",
            "Third."
        ]
    );
    // Like NLTK, a blank line alone is no break; `with_paragraph_breaks` makes it one.
    let text = "Chapter 1\n\nIt was dark. It rained.";
    assert_eq!(split(text), ["Chapter 1\n\nIt was dark.", "It rained."]);
    let s = minimal().with_paragraph_breaks(true);
    assert_eq!(
        s.sentences(text),
        ["Chapter 1", "It was dark.", "It rained."]
    );
}

#[test]
fn no_final_punctuation_empty_and_whitespace() {
    assert_eq!(
        split("just some words without an end"),
        ["just some words without an end"]
    );
    assert!(split("").is_empty());
    assert!(split(" \n\t \n").is_empty());
    let text = "  Hello there.  General Kenobi!\n";
    assert_eq!(minimal().sentence_spans(text), [2..14, 16..31]);
}

#[test]
fn numbers_and_initials_follow_punkt() {
    // A number before a capitalized word ends the sentence; an initial does not.
    assert_eq!(
        split("The total was 42. Then we left."),
        ["The total was 42.", "Then we left."]
    );
    assert_eq!(
        split("It was written by J. R. R. Tolkien."),
        ["It was written by J. R. R. Tolkien."]
    );
}

#[test]
fn json_params() {
    let json = r###"{"abbrev_types": ["approx"], "collocations": [["##number##", "corp"]],
        "sentence_starters": ["the"], "ortho_context": {"corp": 4}}"###;
    let params = PunktParams::from_json_str(json).unwrap();
    assert!(params.is_abbreviation("approx"));
    assert!(params.is_collocation("##number##", "corp"));
    let s = SentenceSplitter::new(params);
    assert_eq!(
        s.sentences("It is approx. ten. The end."),
        ["It is approx. ten.", "The end."]
    );
    for bad in ["", "{", "[]", "{}", r#"{"abbrev_types": [1]}"#] {
        assert!(
            matches!(PunktParams::from_json_str(bad), Err(Error::Config { .. })),
            "{bad}"
        );
    }
}

#[test]
fn json_file_errors() {
    let dir = std::env::temp_dir().join(format!("anllm-punkt-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.json");
    assert!(matches!(
        PunktParams::from_json_file(&missing),
        Err(Error::Io { .. })
    ));
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"abbrev_types\": []}").unwrap();
    assert!(matches!(
        PunktParams::from_json_file(&bad),
        Err(Error::Format { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_learns_abbreviations() {
    let text = "See fig. 3 for the setup. The results are in fig. 4 and fig. 5 below. \
                We compare fig. 6 with fig. 7 here. Nothing else is shown. It ends.";
    let params = PunktParams::train(text);
    assert!(params.is_abbreviation("fig"));
    let s = SentenceSplitter::new(params);
    assert_eq!(s.sentences(text).len(), 5);
}

#[test]
fn added_abbreviations() {
    let mut params = PunktParams::default();
    assert_eq!(
        SentenceSplitter::new(params.clone())
            .sentences("Buy it, e.g. now.")
            .len(),
        2
    );
    params.add_abbreviations(["E.g."]);
    assert_eq!(
        SentenceSplitter::new(params).sentences("Buy it, e.g. now."),
        ["Buy it, e.g. now."]
    );
}

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn random_text(state: &mut u64) -> String {
    const PIECES: &[&str] = &[
        "a", "Mr.", "e.g.", "3.14", "5.", "J.", "The", "he", ".", "..", ". . .", "?", "!", "\"",
        "'", "(", ")", "]", "“", "”", "’", "«", "»", "--", ",", ";", " ", " ", "\n", "\n\n", "\t",
        "\u{a0}", "\u{1c}", "\u{2028}", "é", "Ü", "ß", "İ", "½", "\u{301}", "日本", "🙂", "\r\n",
    ];
    let n = next(state) % 40;
    (0..n)
        .map(|_| PIECES[(next(state) % PIECES.len() as u64) as usize])
        .collect()
}

fn check_spans(text: &str, spans: &[Range<usize>]) {
    let mut prev_end = 0;
    for r in spans {
        assert!(r.start < r.end && r.end <= text.len(), "{r:?} in {text:?}");
        assert!(prev_end <= r.start, "{spans:?} in {text:?}");
        let s = text.get(r.clone()).expect("char boundaries");
        assert_eq!(s, s.trim_matches(is_py_space), "{text:?}");
        let gap = text.get(prev_end..r.start).expect("char boundaries");
        assert!(gap.chars().all(is_py_space), "{gap:?} in {text:?}");
        prev_end = r.end;
    }
    assert!(
        text[prev_end..].chars().all(is_py_space),
        "{text:?}: {spans:?}"
    );
}

#[test]
fn fuzz_spans_are_well_formed() {
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let splitters = [
        minimal(),
        minimal().with_realign_boundaries(false),
        minimal().with_paragraph_breaks(true),
        SentenceSplitter::new(PunktParams::default()),
    ];
    for _ in 0..3000 {
        let text = random_text(&mut state);
        for s in &splitters {
            check_spans(&text, &s.sentence_spans(&text));
        }
        let trained = SentenceSplitter::new(PunktParams::train(&text));
        check_spans(&text, &trained.sentence_spans(&text));
    }
}
