//! Anchor presets on real vocabularies (fetched by scripts/fetch-assets.sh): the paper's EP rule
//! is the bare `.` piece only (spec §9.10), `ep-sentence` is derived from the pieces' text, and
//! token end offsets line up with the text for `<AC>` insertion.

use anllm::anchor::{AnchorSpec, insert::FinalSentence, insert::insert_after_sentences};
use anllm::testutil::gguf_tokenizer;
use anllm::tokenizer::Tokenizer;
use anllm::{AnchorSet, Role};

fn llama2() -> Tokenizer {
    gguf_tokenizer("vocab/ggml-vocab-llama-spm.gguf")
}

fn smollm() -> Tokenizer {
    gguf_tokenizer("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

#[test]
fn spec9_10_ep_anchor_is_the_bare_period_piece_only() {
    let tok = llama2();
    let ep = AnchorSet::from_spec(&AnchorSpec::Ep, &tok).unwrap();
    assert_eq!(ep.ids(), &[29889]);
    // "▁." (869) and "..." pieces are not anchors; a decimal point is.
    assert_eq!(ep.classify(None, 869), Role::Token);
    let ids = tok.encode("Pi is 3.14 and e.g. this.", false).unwrap();
    let periods = ids
        .iter()
        .filter(|&&id| ep.classify(None, id) == Role::Anchor)
        .count();
    assert_eq!(periods, ids.iter().filter(|&&id| id == 29889).count());
    assert!(periods >= 3, "{ids:?}");
}

#[test]
fn ep_sentence_preset_holds_closing_quote_pieces() {
    let tok = llama2();
    let set = AnchorSet::from_spec(&AnchorSpec::EpSentence, &tok).unwrap();
    for (id, piece) in [(29889, "."), (869, "▁."), (1213, ".\""), (3850, "!\"")] {
        assert_eq!(tok.piece(id), Some(piece));
        assert_eq!(set.classify(None, id), Role::Anchor, "{piece}");
    }
    let ellipsis = tok.token_id("...").unwrap();
    assert_eq!(set.classify(None, ellipsis), Role::Token);
    assert!(set.ids().len() < 200, "{} pieces", set.ids().len());
}

#[test]
fn ep_preset_on_the_default_model_is_its_period_piece() {
    let tok = smollm();
    let ep = AnchorSet::from_spec(&AnchorSpec::Ep, &tok).unwrap();
    assert_eq!(ep.ids(), &[tok.token_id(".").unwrap()]);
    let sentence = AnchorSet::from_spec(&AnchorSpec::EpSentence, &tok).unwrap();
    assert!(sentence.ids().len() > ep.ids().len());
    // The default model has no <AC>: asking for it is a clear error.
    let err = AnchorSet::from_spec(&AnchorSpec::Ac, &tok)
        .unwrap_err()
        .to_string();
    assert!(err.contains("<AC>"), "{err}");
}

/// The roles of `text`'s ids under `set`, each classified after the id before it.
fn roles(set: &AnchorSet, ids: &[u32]) -> Vec<Role> {
    let before = std::iter::once(None).chain(ids.iter().copied().map(Some));
    (ids.iter().zip(before))
        .map(|(&id, prev)| set.classify(prev, id))
        .collect()
}

#[test]
fn ep_nodigit_leaves_list_numbers_and_decimals_open_on_both_vocabularies() {
    let text = "Pi is 3.14. Buy:\n1. Apples.\n2. Pears\n10. Figs. Dr. No.";
    for tok in [llama2(), smollm()] {
        let set = AnchorSet::from_spec(&AnchorSpec::EpNoDigit, &tok).unwrap();
        let ep = AnchorSet::from_spec(&AnchorSpec::Ep, &tok).unwrap();
        assert_eq!(set.ids(), ep.ids());
        let ids = tok.encode(text, false).unwrap();
        let mut closed = Vec::new();
        let mut start = 0;
        for (i, role) in roles(&set, &ids).into_iter().enumerate() {
            if role == Role::Anchor {
                closed.push(
                    tok.decode(&ids[start..=i], false)
                        .unwrap()
                        .trim()
                        .to_string(),
                );
                start = i + 1;
            }
        }
        // Hand-derived: no period right after a digit closes a segment (3.14, 1., 2., 10.,
        // and the sentence that ends in 3.14 too: the rule sees only the token before); the
        // other sentence periods and the abbreviation's (the paper's rule) do.
        assert_eq!(
            closed,
            [
                "Pi is 3.14. Buy:\n1. Apples.",
                "2. Pears\n10. Figs.",
                "Dr.",
                "No."
            ],
            "{ids:?}"
        );
        let ep_anchors = (roles(&ep, &ids).iter())
            .filter(|&&r| r == Role::Anchor)
            .count();
        assert_eq!(ep_anchors, 9);
    }
}

#[test]
fn ep_list_pins_the_list_numbers_periods_on_both_vocabularies() {
    let text = "Pi is 3.14. Buy:\n1. Apples.\n2. Pears\n10. Figs. Dr. No.";
    for tok in [llama2(), smollm()] {
        let list = AnchorSet::from_spec(&AnchorSpec::EpList, &tok).unwrap();
        let nodigit = AnchorSet::from_spec(&AnchorSpec::EpNoDigit, &tok).unwrap();
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(
            roles(&list, &ids),
            roles(&nodigit, &ids),
            "the same segments"
        );
        let before = std::iter::once(None).chain(ids.iter().copied().map(Some));
        let marks: Vec<String> = (ids.iter().zip(before).enumerate())
            .filter(|&(_, (&id, prev))| list.pins(prev, id))
            .map(|(i, _)| {
                // The mark with the number before it: the text's digits up to the period.
                let text = tok.decode(&ids[..i], false).unwrap();
                let number = text.trim_end_matches(|c: char| c.is_ascii_digit());
                format!("{}.", &text[number.len()..])
            })
            .collect();
        // Hand-derived: every period right after a digit (a decimal's, and the period of the
        // sentence that ends in 3.14), nothing else.
        assert_eq!(marks, ["3.", "14.", "1.", "2.", "10."], "{ids:?}");
    }
}

#[test]
fn token_offsets_end_where_the_text_of_each_token_ends() {
    let text = "The cat sat.  It was \"happy.\" Café au lait!\n\nNew line 3.14?";
    for tok in [llama2(), smollm()] {
        let with = tok.encode_with_offsets(text).unwrap();
        let ids: Vec<u32> = with.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, tok.encode(text, false).unwrap());
        assert_eq!(
            with.last().map(|&(_, e)| e),
            Some(text.len()),
            "{}",
            tok.kind()
        );
        assert!(with.windows(2).all(|w| w[0].1 <= w[1].1));
        for k in [1, with.len() / 2, with.len() - 1] {
            let decoded = tok.decode(&ids[..k], false).unwrap();
            assert_eq!(decoded.len(), with[k - 1].1, "{} prefix {k}", tok.kind());
        }
    }
}

#[test]
fn ac_goes_right_after_each_sentence_final_token() {
    let tok = smollm();
    let text = "The cat sat. It was happy! Then it left.";
    let spans = [0..12, 13..26, 27..40];
    let ac = 99_999;
    for (last, count) in [(FinalSentence::Open, 2), (FinalSentence::Anchored, 3)] {
        let ids = insert_after_sentences(&tok, text, &spans, ac, last).unwrap();
        assert_eq!(ids.iter().filter(|&&id| id == ac).count(), count);
        let plain: Vec<u32> = ids.iter().copied().filter(|&id| id != ac).collect();
        assert_eq!(
            plain,
            tok.encode(text, false).unwrap(),
            "the text's own tokens"
        );
        let first = ids.iter().position(|&id| id == ac).unwrap();
        assert_eq!(tok.decode(&ids[..first], false).unwrap(), "The cat sat.");
    }
}
