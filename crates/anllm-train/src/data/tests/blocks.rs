//! Truncation, packing, shuffling and resuming.

use super::*;

/// A document of `len` tokens: BOS, then `tag * 100 + k`, every later token a target.
fn doc(len: usize, tag: u32) -> TokenizedDoc {
    let tokens = std::iter::once(1)
        .chain((1..len as u32).map(|k| tag * 100 + k))
        .collect();
    let loss_mask = (0..len).map(|k| k > 0).collect();
    TokenizedDoc {
        tokens,
        loss_mask,
        pinned: Vec::new(),
    }
}

fn config(
    block_size: usize,
    batch_size: usize,
    mode: BlockMode,
    pad: Option<TokenId>,
) -> DataConfig {
    DataConfig {
        block_mode: mode,
        pad,
        ..DataConfig::new(block_size, batch_size)
    }
}

#[test]
fn packing_never_loses_tokens_and_marks_document_boundaries() {
    let docs: Vec<TokenizedDoc> = [5, 12, 3, 7, 9]
        .iter()
        .zip(1..)
        .map(|(&n, t)| doc(n, t))
        .collect();
    for pad in [Some(0), None] {
        let data = TrainData::new(docs.clone(), config(8, 2, BlockMode::Pack, pad)).unwrap();
        let rows = data.epoch_examples(0);
        assert_eq!(rows.len(), data.examples_per_epoch());
        assert_eq!(rows.len(), if pad.is_some() { 5 } else { 4 });
        // The expected stream: documents in epoch order, each token with its document.
        let stream: Vec<(TokenId, bool, u32)> = data
            .epoch_order(0)
            .into_iter()
            .flat_map(|i| {
                let d = &docs[i];
                (0..d.len()).map(move |k| (d.tokens[k], d.loss_mask[k], i as u32))
            })
            .collect();
        let got: Vec<(usize, TokenId, bool, u32)> = rows
            .iter()
            .flat_map(|r| (0..r.len()).map(move |k| (k, r.tokens[k], r.loss_mask[k], r.doc[k])))
            .filter(|&(_, _, _, d)| d != Example::PAD_DOC)
            .collect();
        assert!(rows.iter().all(|r| r.len() == 8));
        assert_eq!(got.len(), if pad.is_some() { 36 } else { 32 });
        for (&(k, id, target, d), &(want_id, want_target, want_doc)) in got.iter().zip(&stream) {
            assert_eq!((id, d), (want_id, want_doc));
            assert_eq!(target, want_target && k > 0, "row start is never a target");
        }
        for row in &rows {
            for k in 1..row.len() {
                if row.doc[k] != row.doc[k - 1] && row.doc[k] != Example::PAD_DOC {
                    assert_eq!(row.tokens[k], 1, "a new document starts with BOS");
                    assert!(!row.loss_mask[k]);
                }
            }
        }
        if pad.is_some() {
            let last = rows.last().unwrap();
            assert_eq!(last.pad_count(), 4);
            assert!(
                last.tokens[4..].iter().all(|&t| t == 0) && !last.loss_mask[4..].contains(&true)
            );
        }
    }
}

/// Best-fit decreasing, derived by hand for blocks of 8 and documents of 5, 12, 3, 7, 9, 2 and
/// 8 tokens (tags 1–7): the pieces, longest first, are d2[0..8], d5[0..8], d7, d4 (7), d1 (5),
/// d2[8..12], d3 (3), d6 (2); each goes to the row with the least room that holds it. d5[8..9],
/// one token and no target, is left out.
#[test]
fn fit_packs_whole_documents_best_fit_decreasing() {
    let docs: Vec<TokenizedDoc> = [5, 12, 3, 7, 9, 2, 8]
        .iter()
        .zip(1..)
        .map(|(&n, t)| doc(n, t))
        .collect();
    let c = DataConfig {
        shuffle: false,
        ..config(8, 2, BlockMode::Fit, Some(0))
    };
    let data = TrainData::new(docs.clone(), c).unwrap();
    let rows = data.epoch_examples(0);
    // (document index, first token, length) of each piece of each row, pads left out.
    let pieces = |row: &Example| {
        let mut out: Vec<(u32, usize, usize)> = Vec::new();
        for k in 0..row.len() {
            let d = row.doc[k];
            if d == Example::PAD_DOC {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.0 == d && k > 0 && row.doc[k - 1] == d => last.2 += 1,
                _ => {
                    let start = docs[d as usize]
                        .tokens
                        .iter()
                        .position(|&t| t == row.tokens[k]);
                    out.push((d, start.unwrap(), 1));
                }
            }
        }
        out
    };
    let got: Vec<Vec<(u32, usize, usize)>> = rows.iter().map(pieces).collect();
    let want = vec![
        vec![(1, 0, 8)],
        vec![(4, 0, 8)],
        vec![(6, 0, 8)],
        vec![(3, 0, 7)],
        vec![(0, 0, 5), (2, 0, 3)],
        vec![(1, 8, 4), (5, 0, 2)],
    ];
    assert_eq!(got, want);
    assert_eq!(data.examples_per_epoch(), 6);
    assert!(rows.iter().all(|r| r.len() == 8));
    assert_eq!((rows[3].pad_count(), rows[5].pad_count()), (1, 2));
    assert!((data.fit_pad_share() - 3.0 / 48.0).abs() < 1e-12);
    // Tokens keep their targets, but the first token of every piece is none (its document's
    // earlier tokens are in another row): 46 tokens, 7 documents, 2 continued pieces.
    let targets: usize = rows.iter().map(Example::target_count).sum();
    assert_eq!(targets, 46 - 7 - 2);
    assert!(!rows[5].loss_mask[0], "d2[8] starts its piece");
    assert!(rows.iter().all(|r| r.target_count() > 0));
    // Pack cuts documents that fit in a block (in file order d4 and d7); fit cuts none.
    assert_eq!(data.cut_documents(), 0);
    let packed = DataConfig {
        shuffle: false,
        ..config(8, 2, BlockMode::Pack, Some(0))
    };
    let packed = TrainData::new(docs.clone(), packed).unwrap();
    assert_eq!(packed.cut_documents(), 2);
    let note = packed.block_note().unwrap();
    assert!(note.starts_with("packing cuts 2 of 7 documents"), "{note}");
    let note = data.block_note().unwrap();
    assert!(
        note.starts_with("--block-mode fit: 6 rows of 8 tokens, "),
        "{note}"
    );
    assert_eq!(packed.config().held_out().block_mode, BlockMode::Pack);
    assert_eq!(data.config().held_out().block_mode, BlockMode::Pack);
    assert!(!data.config().held_out().shuffle);
    // Epochs shuffle the rows, not what is in them; fit needs a pad id.
    let shuffled = TrainData::new(docs.clone(), config(8, 2, BlockMode::Fit, Some(0))).unwrap();
    let mut a: Vec<_> = shuffled.epoch_examples(1).iter().map(pieces).collect();
    assert_ne!(a, want, "seed 34, epoch 1 reorders the rows");
    a.sort();
    let mut b = want.clone();
    b.sort();
    assert_eq!(a, b);
    let err = TrainData::new(docs, config(8, 2, BlockMode::Fit, None)).unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
}

#[test]
fn truncation_keeps_one_document_per_row_cut_to_the_block() {
    let docs = vec![doc(5, 1), doc(20, 2), doc(3, 3)];
    let data = TrainData::new(docs.clone(), config(8, 1, BlockMode::Truncate, None)).unwrap();
    let rows = data.epoch_examples(0);
    for (row, i) in rows.iter().zip(data.epoch_order(0)) {
        let n = docs[i].len().min(8);
        assert_eq!(row.tokens, docs[i].tokens[..n]);
        assert_eq!(row.loss_mask, docs[i].loss_mask[..n]);
        assert!(row.doc.iter().all(|&d| d == i as u32));
    }
    // Batches of three are padded to their longest row.
    let padded = TrainData::new(docs.clone(), config(8, 3, BlockMode::Truncate, Some(0))).unwrap();
    let batch = padded.batches().next().unwrap();
    assert_eq!(batch.seq_len(), 8);
    assert!(batch.examples.iter().all(|r| r.len() == 8));
    assert_eq!(batch.token_count(), 5 + 8 + 3);
    assert_eq!(batch.target_count(), 4 + 7 + 2);
    // Without a pad id, rows of different lengths cannot share a batch.
    let err = TrainData::new(docs, config(8, 2, BlockMode::Truncate, None)).unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
}

#[test]
fn documents_without_targets_are_skipped() {
    let prompt_only = TokenizedDoc {
        tokens: vec![1; 10],
        loss_mask: (0..10).map(|k| k >= 9).collect(),
        pinned: Vec::new(),
    };
    let docs = vec![doc(1, 1), prompt_only.clone(), doc(4, 2)];
    let data = TrainData::new(docs, config(8, 1, BlockMode::Truncate, None)).unwrap();
    assert_eq!(data.documents().len(), 2, "the BOS-only document is gone");
    assert_eq!(
        data.examples_per_epoch(),
        1,
        "the response past the block is cut"
    );
    assert!(TrainData::new(vec![doc(1, 1)], config(8, 1, BlockMode::Pack, Some(0))).is_err());
    assert!(TrainData::new(vec![doc(5, 1)], config(8, 1, BlockMode::Pack, None)).is_err());
    assert!(TrainData::new(vec![doc(5, 1)], config(1, 1, BlockMode::Pack, None)).is_err());
}

fn many_docs() -> Vec<TokenizedDoc> {
    (1..=20)
        .map(|t| doc(3 + (t as usize * 7) % 11, t))
        .collect()
}

#[test]
fn shuffling_is_deterministic_per_seed_and_epoch() {
    let make = |seed: u64, shuffle: bool| {
        let c = DataConfig {
            seed,
            shuffle,
            ..config(16, 4, BlockMode::Pack, Some(0))
        };
        TrainData::new(many_docs(), c).unwrap()
    };
    let (a, b, c) = (make(34, true), make(34, true), make(35, true));
    for epoch in 0..3 {
        assert_eq!(a.epoch_examples(epoch), b.epoch_examples(epoch));
        assert_ne!(a.epoch_order(epoch), c.epoch_order(epoch));
    }
    assert_ne!(a.epoch_order(0), a.epoch_order(1));
    assert_eq!(make(34, false).epoch_order(2), (0..20).collect::<Vec<_>>());
}

#[test]
fn resuming_from_a_saved_position_repeats_the_rest_of_the_run() {
    for mode in [BlockMode::Truncate, BlockMode::Pack, BlockMode::Fit] {
        let data = TrainData::new(many_docs(), config(16, 3, mode, Some(0))).unwrap();
        let run: Vec<Batch> = data
            .batches()
            .take(3 * data.batches_per_epoch() + 2)
            .collect();
        assert_eq!(run[0].position, DataPosition::default());
        for pair in run.windows(2) {
            assert_eq!(pair[0].next, pair[1].position, "batches are contiguous");
        }
        let ends = run.iter().filter(|b| b.next.index == 0).count();
        assert_eq!(
            ends, 3,
            "{mode:?}: an epoch ends every batches_per_epoch batches"
        );
        for k in 0..run.len() {
            let saved = if k == 0 {
                DataPosition::default()
            } else {
                run[k - 1].next
            };
            let json = serde_json::to_string(&saved).unwrap();
            let position: DataPosition = serde_json::from_str(&json).unwrap();
            let rest: Vec<Batch> = data
                .batches_from(position)
                .unwrap()
                .take(run.len() - k)
                .collect();
            assert_eq!(rest, run[k..], "{mode:?}: resumed after {k} batches");
        }
        // Resuming mid-batch (e.g. after changing the batch size) starts at that example.
        let odd = DataPosition { epoch: 1, index: 1 };
        let first = data.batches_from(odd).unwrap().next().unwrap();
        let want = &data.epoch_examples(1)[1];
        assert_eq!(first.examples[0].tokens[..want.len()], want.tokens[..]);
        let end = DataPosition {
            epoch: 0,
            index: data.examples_per_epoch(),
        };
        let wrapped = data.batches_from(end).unwrap().next().unwrap();
        assert_eq!(wrapped.position, DataPosition { epoch: 1, index: 0 });
        let past = DataPosition {
            epoch: 0,
            index: data.examples_per_epoch() + 1,
        };
        assert!(data.batches_from(past).is_err());
    }
}

#[test]
fn files_become_batches() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("train.txt");
    std::fs::write(&corpus, "A cat. A dog.\n\nThe sun rose.\n\nIt set.\n").unwrap();
    let sft = dir.path().join("sft.jsonl");
    std::fs::write(
        &sft,
        "{\"instruction\": \"Say hi.\", \"output\": \"Hi.\"}\n",
    )
    .unwrap();
    let c = config(32, 2, BlockMode::Pack, Some(0));
    let data = TrainData::from_files(&[&corpus, &sft], tiny(), None, c).unwrap();
    assert_eq!(data.documents().len(), 4);
    let eos = tiny().specials().eos.unwrap();
    assert_eq!(data.documents()[3].tokens.last(), Some(&eos));
    let total: usize = data.documents().iter().map(TokenizedDoc::len).sum();
    let batch = data.batches().next().unwrap();
    assert_eq!(batch.seq_len(), 32);
    assert_eq!(data.examples_per_epoch(), total.div_ceil(32));
}
