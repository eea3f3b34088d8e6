//! One test per item of spec §9 that applies to inference, named `spec9_<n>_…`, plus the
//! worked examples of spec §10 (items 2–4 and 6) on the tiny seeded model.

use std::sync::Arc;

use anllm::anchor::AnchorSpec;
use anllm::mask::{self, MaskRule};
use anllm::policy::PolicyConfig;
use anllm::score::{ScoreMode, score};
use anllm::testutil::{ANCHOR, PAD, max_abs_diff, tiny_anchors, tiny_model};
use anllm::testutil::{HfLayout, anllm_llama2_spec, write_hf_dir};
use anllm::{AnchorSet, OutputRows, Pos, PositionMode, Session, SessionConfig, TokenId};

/// Ordinary ids of the tiny model.
const T: [TokenId; 12] = [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31];
/// An anchor id.
const A: TokenId = 10;
/// An ordinary id of the tiny model, made the pad instead of [`PAD`] where a test says so.
const OTHER_PAD: TokenId = 13;

/// The spec's 9-token example t0 t1 t2 A3 t4 t5 t6 A7 t8.
fn spec_example() -> Vec<TokenId> {
    vec![T[0], T[1], T[2], A, T[4], T[5], T[6], A, T[8]]
}

fn anchored(chunk: usize) -> SessionConfig {
    SessionConfig::anchored(tiny_anchors(), chunk)
}

fn session(cfg: SessionConfig) -> Session {
    Session::new(Arc::clone(&tiny_model().llama), cfg, 16).unwrap()
}

fn cached_positions(s: &Session) -> Vec<u32> {
    s.cache().cells().iter().map(|(_, c)| c.pos.0).collect()
}

/// Keys (stream positions) visible to a one-token step `token` after `s`'s cache.
fn visible_to_next(s: &Session, token: TokenId) -> Vec<u32> {
    let cells = s.cache().cells();
    let role = tiny_anchors().classify(None, token);
    let query = anllm::Cell {
        role,
        segment: cells.open_segment(),
        ..anllm::Cell::token(token, cells.next_pos())
    };
    let all: Vec<_> = cells.iter().map(|(_, c)| *c).chain([query]).collect();
    let grid = mask::step_mask(MaskRule::AnSan, &all[..all.len() - 1], &[query]);
    (0..grid.cols())
        .filter(|&k| grid.get(0, k))
        .map(|k| all[k].pos.0)
        .collect()
}

#[test]
fn spec10_2_prefill_of_the_example_keeps_anchors_and_open_segment() {
    let mut s = session(anchored(512));
    s.prefill(&spec_example(), 8).unwrap();
    assert_eq!(cached_positions(&s), vec![3, 7, 8]);
    assert_eq!(s.cache().cells().open_segment().0, 2);
}

#[test]
fn spec10_3_decoding_collapses_the_cache_at_each_anchor() {
    let mut s = session(anchored(512));
    s.prefill(&spec_example(), 8).unwrap();
    let steps = [
        (T[9], vec![3, 7, 8, 9], vec![3, 7, 8, 9]),
        (A, vec![8, 9, 10], vec![3, 7, 10]),
        (T[11], vec![3, 7, 10, 11], vec![3, 7, 10, 11]),
    ];
    for (token, visible, cache_after) in steps {
        assert_eq!(
            visible_to_next(&s, token),
            visible,
            "visible keys of {token}"
        );
        s.forward(&[token], OutputRows::Last).unwrap();
        assert_eq!(cached_positions(&s), cache_after, "cache after {token}");
    }
}

#[test]
fn spec9_2_chunked_prefill_has_no_past_mask_leak() {
    // spec §9.2 / §10.4: [t0 t1 A2 t3 t4] then [t5 A6 t7]: t7 sees only A2, A6 and itself (the
    // authors' past mask would let it see t3, t4), and the cache ends as [A2, A6, t7].
    let tokens = [T[0], T[1], A, T[3], T[4], T[5], A, T[7]];
    let mut s = session(anchored(5));
    s.prefill(&tokens[..5], 4).unwrap();
    let cells: Vec<_> = s.cache().cells().iter().map(|(_, c)| *c).collect();
    let mut next = Vec::new();
    for (i, &t) in tokens[5..].iter().enumerate() {
        let segment = anllm::SegmentId(1 + u32::from(i > 1));
        let role = tiny_anchors().classify(None, t);
        next.push(anllm::Cell {
            role,
            segment,
            ..anllm::Cell::token(t, Pos(5 + i as u32))
        });
    }
    let grid = mask::step_mask(MaskRule::AnSan, &cells, &next);
    let keys: Vec<_> = cells.iter().chain(&next).map(|c| c.pos.0).collect();
    let seen: Vec<u32> = (0..keys.len())
        .filter(|&k| grid.get(2, k))
        .map(|k| keys[k])
        .collect();
    assert_eq!(seen, vec![2, 6, 7]);
    s.prefill(&tokens[5..], 2).unwrap();
    assert_eq!(cached_positions(&s), vec![2, 6, 7]);
}

#[test]
fn spec9_1_rope_positions_are_absolute_unless_compressed_is_asked() {
    // spec §9.1 / §10.6: compressed mode reuses the cache length (3, 4, 3 in the §3.3 table).
    for (mode, want) in [
        (PositionMode::Absolute, [9, 10, 11]),
        (PositionMode::Compressed, [3, 4, 3]),
    ] {
        let mut s = session(SessionConfig {
            positions: mode,
            ..anchored(512)
        });
        s.prefill(&spec_example(), 8).unwrap();
        let mut got = Vec::new();
        for token in [T[9], A, T[11]] {
            s.forward(&[token], OutputRows::Last).unwrap();
            let last = s.cache().cells().as_slice().last().unwrap();
            got.push(last.rope.0);
        }
        assert_eq!(got, want, "{mode:?}");
    }
}

#[test]
fn spec9_3_sessions_are_independent() {
    // spec §9.3: no global state; interleaving two sessions changes nothing.
    let (a, b) = (spec_example(), [T[5], A, T[6], T[7], A, T[8]]);
    let alone = |tokens: &[TokenId]| {
        let mut s = session(anchored(2));
        s.prefill(tokens, 0).unwrap().to_vec2::<f32>().unwrap()
    };
    let (mut sa, mut sb) = (session(anchored(2)), session(anchored(2)));
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for i in 0..a.len().max(b.len()) {
        if let Some(&t) = a.get(i) {
            ra.extend(
                sa.forward(&[t], OutputRows::All)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap(),
            );
        }
        if let Some(&t) = b.get(i) {
            rb.extend(
                sb.forward(&[t], OutputRows::All)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap(),
            );
        }
    }
    assert!(max_abs_diff(&ra, &alone(&a)) <= 1e-4);
    assert!(max_abs_diff(&rb, &alone(&b)) <= 1e-4);
}

#[test]
fn spec9_4_pads_are_masked_even_without_an_anchor_in_the_step() {
    // spec §9.4: the authors masked pads only in steps holding an anchor. Here the whole stream
    // t0 PAD t1 t2 is one step (chunk 4) without an anchor. Rows 2 and 3 come after the pad: if
    // they could see it, they would depend on what it holds. So run the stream again with
    // another id (its own embedding, hence other keys and values) in the pad role: the rows
    // after it must not move.
    let rows = |id: TokenId, anchors: AnchorSet| {
        let mut s = session(SessionConfig::anchored(anchors, 4));
        let rows = s
            .prefill(&[T[0], id, T[1], T[2]], 0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        (rows, cached_positions(&s))
    };
    let (with_pad, kept) = rows(PAD, tiny_anchors());
    let (with_other_pad, _) = rows(OTHER_PAD, AnchorSet::new(ANCHOR, Some(OTHER_PAD)));
    let diff = max_abs_diff(&with_pad[2..], &with_other_pad[2..]);
    assert!(diff <= 1e-4, "rows after the pad moved by {diff}");
    // The comparison can fail: with both ids as ordinary, visible tokens the same rows differ.
    let no_pad = || AnchorSet::new(ANCHOR, None);
    let (seen, _) = rows(PAD, no_pad());
    let (seen_other, _) = rows(OTHER_PAD, no_pad());
    let visible = max_abs_diff(&seen[2..], &seen_other[2..]);
    assert!(
        visible > 1e-2,
        "swapping a visible token moved the rows only by {visible}"
    );
    assert!(!kept.contains(&1), "the pad was evicted");
    assert!(with_pad.iter().flatten().all(|x| x.is_finite()));
}

#[test]
fn spec9_5_state_is_reset_per_sequence() {
    // spec §9.5: stale anchor indices leaked across prompts in the authors' inference.py.
    let mut s = session(anchored(3));
    let first = s
        .prefill(&spec_example(), 0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    s.reset();
    assert!(s.cache().is_empty());
    assert_eq!(s.cache().cells().open_segment().0, 0);
    let again = s
        .prefill(&spec_example(), 0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert!(max_abs_diff(&first, &again) <= 1e-6);
}

#[test]
fn spec9_8_bos_is_not_kept_after_the_first_anchor_unless_pinned() {
    // spec §9.8: no attention sink survives; pinning position 0 is the experiment.
    let mut s = session(anchored(512));
    s.prefill(&spec_example(), 8).unwrap();
    assert!(!cached_positions(&s).contains(&0));
    let mut pinned = session(SessionConfig {
        pins: std::iter::once(0..1).collect(),
        ..anchored(512)
    });
    pinned.prefill(&spec_example(), 8).unwrap();
    assert_eq!(cached_positions(&pinned), vec![0, 3, 7, 8]);
}

#[test]
fn spec9_9_anchor_rows_cannot_see_earlier_anchors() {
    // spec §9.9: the `_new` rule; the legacy variant is only an explicit option.
    let mut s = session(anchored(512));
    s.prefill(&spec_example(), 8).unwrap();
    let visible = visible_to_next(&s, A);
    assert!(!visible.contains(&3) && !visible.contains(&7));
}

#[test]
fn spec9_11_cached_scoring_equals_the_masked_forward() {
    // spec §9.11: the paper's accuracy came from a masked full forward; ours must agree.
    let model = &tiny_model().llama;
    let context = [T[0], T[1], A, T[3], T[4], A, T[5], T[6]];
    let continuation = [T[7], A, T[8], T[9]];
    for chunk in [1, 3, 512] {
        let cached = score(
            model,
            &context,
            &continuation,
            &anchored(chunk),
            ScoreMode::Cached,
        );
        let masked = score(
            model,
            &context,
            &continuation,
            &anchored(chunk),
            ScoreMode::MaskOnly,
        );
        let (cached, masked) = (cached.unwrap(), masked.unwrap());
        assert!(
            (cached.logprob - masked.logprob).abs() < 1e-4,
            "chunk {chunk}"
        );
        assert!(cached.cache.entries < masked.cache.entries);
    }
}

#[test]
fn spec9_16_fully_masked_pad_rows_stay_finite() {
    // spec §9.16: a pad row attends to nothing; a -inf bias would give NaN.
    let mut s = session(SessionConfig {
        policy: PolicyConfig::Full,
        ..anchored(512)
    });
    let rows = s
        .prefill(&[PAD, PAD, T[0], PAD], 0)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert!(rows.iter().flatten().all(|x| x.is_finite()));
}

#[test]
fn spec9_17_pad_and_ac_ids_come_from_the_tokenizer() {
    // spec §9.17 and §1.1: [PAD] = 32000 and <AC> = 32001 in the AnLLM Llama-2 vocabulary,
    // looked up by piece, never bound as constants.
    let dir = tempfile::tempdir().unwrap();
    write_hf_dir(dir.path(), &anllm_llama2_spec(32002), HfLayout::Safetensors).unwrap();
    let tok = anllm::tokenizer::Tokenizer::from_hf_dir(dir.path()).unwrap();
    let ac = AnchorSet::from_spec(&AnchorSpec::Ac, &tok).unwrap();
    assert_eq!((ac.ids(), ac.pad()), (&[32001][..], Some(32000)));
    let small = tempfile::tempdir().unwrap();
    write_hf_dir(
        small.path(),
        &anllm_llama2_spec(32001),
        HfLayout::Safetensors,
    )
    .unwrap();
    let tok = anllm::tokenizer::Tokenizer::from_hf_dir(small.path()).unwrap();
    let err = AnchorSet::from_spec(&AnchorSpec::Ac, &tok)
        .unwrap_err()
        .to_string();
    assert!(err.contains("<AC>"), "{err}");
}
