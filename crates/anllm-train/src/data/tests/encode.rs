//! Tokenizing documents: BOS, EOS, loss on responses, `<AC>` insertion.

use super::*;

#[test]
fn text_document_is_bos_then_targets_without_eos() {
    let tok = tiny();
    let encoder = Encoder::new(tok, AnchorData::None, None).unwrap();
    let doc = encoder.encode(&text("hello world. bye.")).unwrap();
    let body = tok.encode("hello world. bye.", false).unwrap();
    assert_eq!(doc.tokens[0], 1);
    assert_eq!(&doc.tokens[1..], body.as_slice());
    assert!(!doc.loss_mask[0] && doc.loss_mask[1..].iter().all(|&t| t));
    assert_eq!(doc.target_count(), body.len());
}

#[test]
fn alpaca_loss_is_only_on_the_response_and_eos_is_appended() {
    let tok = tiny();
    let encoder = Encoder::new(tok, AnchorData::None, None).unwrap();
    let prompt = alpaca_prompt("Name the capital of France.", "");
    let doc = Document::Instruction {
        prompt: prompt.clone(),
        response: "Paris is the capital.".into(),
    };
    let enc = encoder.encode(&doc).unwrap();
    let eos = tok.specials().eos.unwrap();
    assert_eq!((enc.tokens[0], *enc.tokens.last().unwrap()), (1, eos));
    let first_target = enc.loss_mask.iter().position(|&t| t).unwrap();
    assert!(enc.loss_mask[first_target..].iter().all(|&t| t));
    let (head, tail) = enc.tokens.split_at(first_target);
    assert_eq!(tok.decode(&head[1..], false).unwrap(), prompt);
    let response = tok.decode(&tail[..tail.len() - 1], false).unwrap();
    assert_eq!(response, "Paris is the capital.");
    // The ids are those of prompt + response tokenized as one text.
    let whole = tok
        .encode(&format!("{prompt}Paris is the capital."), false)
        .unwrap();
    assert_eq!(&enc.tokens[1..enc.len() - 1], whole.as_slice());
}

#[test]
fn ep_inserts_nothing() {
    let tok = tiny();
    let none = Encoder::new(tok, AnchorData::None, None).unwrap();
    let ep = Encoder::new(tok, AnchorData::Ep, None).unwrap();
    let doc = text("One. Two. Three.");
    assert_eq!(none.encode(&doc).unwrap(), ep.encode(&doc).unwrap());
    let spec = anllm::AnchorSpec::Ep;
    assert_eq!(AnchorData::from_spec(&spec, tok).unwrap(), AnchorData::Ep);
    assert!(AnchorData::from_spec(&anllm::AnchorSpec::Ac, tok).is_err());
    assert_eq!(
        AnchorData::from_spec(&anllm::AnchorSpec::Ac, with_ac()).unwrap(),
        AnchorData::Ac { ac: AC }
    );
    assert!(Encoder::new(tok, AnchorData::Ac { ac: AC }, None).is_err());
}

/// The token runs between `<AC>`s, decoded and trimmed.
fn between_anchors(tok: &Tokenizer, ids: &[TokenId]) -> Vec<String> {
    ids.split(|&t| t == AC)
        .map(|run| tok.decode(run, true).unwrap().trim().to_string())
        .collect()
}

#[test]
fn ac_goes_after_every_sentence_end() {
    let tok = with_ac();
    let split = splitter();
    let body = "The cat sat on the mat. Then it slept.\n\nIt was happy.";
    let open = Encoder::new(tok, AnchorData::Ac { ac: AC }, Some(&split)).unwrap();
    let enc = open.encode(&text(body)).unwrap();
    let sentences = ["The cat sat on the mat.", "Then it slept.", "It was happy."];
    assert_eq!(between_anchors(tok, &enc.tokens[1..]), sentences);
    assert!(
        enc.loss_mask[1..].iter().all(|&t| t),
        "anchors are targets too"
    );
    let plain: Vec<TokenId> = enc.tokens.iter().copied().filter(|&t| t != AC).collect();
    assert_eq!(&plain[1..], tok.encode(body, false).unwrap().as_slice());

    let anchored = open.clone().with_final_sentence(FinalSentence::Anchored);
    let enc = anchored.encode(&text(body)).unwrap();
    assert_eq!(enc.tokens.iter().filter(|&&t| t == AC).count(), 3);
    assert_eq!(enc.tokens.last(), Some(&AC));
}

#[test]
fn ac_alpaca_anchors_prompt_and_response_and_keeps_the_loss_on_the_response() {
    let tok = with_ac();
    let split = splitter();
    let doc = Document::Instruction {
        prompt: alpaca_prompt("Name the capital. Answer briefly.", ""),
        response: "Paris is the capital. It is in France.".into(),
    };
    let Document::Instruction { prompt, response } = &doc else {
        unreachable!()
    };
    for (last, extra) in [(FinalSentence::Open, 0), (FinalSentence::Anchored, 1)] {
        let ac = Encoder::new(tok, AnchorData::Ac { ac: AC }, Some(&split))
            .unwrap()
            .with_final_sentence(last)
            .encode(&doc)
            .unwrap();
        let plain = Encoder::new(tok, AnchorData::None, None)
            .unwrap()
            .encode(&doc)
            .unwrap();
        let kept: Vec<usize> = (0..ac.len()).filter(|&i| ac.tokens[i] != AC).collect();
        assert_eq!(
            kept.iter().map(|&i| ac.tokens[i]).collect::<Vec<_>>(),
            plain.tokens
        );
        let kept_mask: Vec<bool> = kept.iter().map(|&i| ac.loss_mask[i]).collect();
        assert_eq!(kept_mask, plain.loss_mask);
        let count = |target: bool| {
            (0..ac.len())
                .filter(|&i| ac.tokens[i] == AC && ac.loss_mask[i] == target)
                .count()
        };
        assert_eq!(count(false), split.sentences(prompt).len() - 1 + extra);
        assert_eq!(count(true), split.sentences(response).len() - 1 + extra);
        assert_eq!(ac.tokens.last(), tok.specials().eos.as_ref());
    }
}
