//! The core equivalence (spec §10.5): chunked prefill plus decode with anchor pruning gives the
//! logits of one masked full-sequence forward, and the final cache holds exactly the anchors,
//! the pinned tokens and the open segment. Property-tested on a tiny seeded GQA model over
//! random token streams with random anchors, pads and pins, for chunkings {1, 2, 3, 5, all},
//! with `ep-nodigit`'s rule on (an anchor right after a "digit" id is an ordinary token, so a
//! segment's role can depend on the chunk before it) and `ep-list`'s (that token pinned),
//! with an f32 and an f16 cache, and with a local window on the AnSAN rule
//! ([`MaskRule::AnSanWindow`]: the cache also keeps what the window still shows). The tiled (sparse) prefill attention, which the one-shot
//! forward takes, is checked against the dense masked GEMM grid.

use std::ops::Range;
use std::sync::Arc;

use anllm::policy::PolicyConfig;
use anllm::testutil::{ANCHOR, PAD, max_abs_diff, tiny_anchors, tiny_model};
use anllm::{
    AnchorSet, AttentionStats, ForwardInput, KvDtype, Llama, MaskRule, OutputRows, Pos, Role,
    Session, SessionConfig, TokenId,
};
use proptest::prelude::*;

/// f32 tolerance of the issue.
const TOL: f32 = 1e-4;
/// With an f16 cache both sides store rounded K/V, but the f32 reassociation noise between a
/// chunked and a one-shot forward (about 1e-6) can flip the f16 rounding of a key or value by
/// one ulp (2^-11 relative) a few layers later. Measured: 1.2e-4 on 4.5-sized logits in most
/// streams, 1.13e-3 in the worst one proptest found (the last case of
/// `equivalence.proptest-regressions`, 13 tokens, several flips), so the tolerance is twenty
/// times the f32 one: still far below the cache's own rounding effect on logits, which this
/// test does not measure (the HF golden test does).
const TOL_F16: f32 = 2e-3;

/// The ids playing digits: an anchor right after one of them is an ordinary token.
const DIGIT: [TokenId; 2] = [20, 21];

/// The tiny model's anchors and pad, with `ep-nodigit`'s rule over [`DIGIT`] (`marks`:
/// `ep-list`'s, where an anchor id after a digit is a pinned mark).
fn anchors(marks: bool) -> AnchorSet {
    tiny_anchors()
        .with_not_after(DIGIT)
        .with_pinned_marks(marks)
}

/// A random stream: mostly ordinary ids, some anchors and digits, a few pads.
fn stream() -> impl Strategy<Value = Vec<TokenId>> {
    let token = prop_oneof![
        12 => 22u32..384,
        2 => prop::sample::select(DIGIT.to_vec()),
        3 => prop::sample::select(ANCHOR.to_vec()),
        1 => Just(PAD),
    ];
    prop::collection::vec(token, 2..48)
}

/// The tiny model with `kv` caches.
fn model(kv: KvDtype) -> Arc<Llama> {
    Arc::new(tiny_model().llama.as_ref().clone().with_kv_dtype(kv))
}

/// Logits of every position of `tokens`: one masked full-sequence forward, nothing dropped.
fn masked_full(
    tokens: &[TokenId],
    pins: &[Range<u32>],
    rule: MaskRule,
    marks: bool,
    kv: KvDtype,
) -> Vec<Vec<f32>> {
    let cfg = SessionConfig {
        policy: PolicyConfig::Full,
        pins: pins.to_vec(),
        rule,
        ..SessionConfig::anchored(anchors(marks), tokens.len())
    };
    let mut session = Session::new(model(kv), cfg, tokens.len()).unwrap();
    session.prefill(tokens, 0).unwrap().to_vec2().unwrap()
}

/// The same forward through the dense path: the batched-GEMM grid (scores `[heads, t, n]` +
/// the additive mask + softmax), which the CPU kernels replace.
fn masked_full_dense(tokens: &[TokenId], kv: KvDtype) -> Vec<Vec<f32>> {
    let cfg = SessionConfig::anchored(anchors(false), tokens.len());
    let dense = Arc::new(model(kv).as_ref().clone().with_dense_attention());
    let mut session = Session::new(
        dense,
        SessionConfig {
            policy: PolicyConfig::Full,
            ..cfg
        },
        tokens.len(),
    )
    .unwrap();
    session.prefill(tokens, 0).unwrap().to_vec2().unwrap()
}

/// Logits of every position: the first `prefill` tokens in chunks of `chunk`, then one decode
/// step per token, pruning after every step. Returns the session for cache checks.
fn pruned(
    tokens: &[TokenId],
    prefill: usize,
    chunk: usize,
    pins: &[Range<u32>],
    rule: MaskRule,
    marks: bool,
    kv: KvDtype,
) -> (Vec<Vec<f32>>, Session) {
    let cfg = SessionConfig {
        pins: pins.to_vec(),
        rule,
        ..SessionConfig::anchored(anchors(marks), chunk)
    };
    let mut session = Session::new(model(kv), cfg, 4).unwrap();
    let mut rows = session
        .prefill(&tokens[..prefill], 0)
        .unwrap()
        .to_vec2()
        .unwrap();
    for &t in &tokens[prefill..] {
        let step = session.forward(&[t], OutputRows::Last).unwrap();
        rows.extend(step.to_vec2::<f32>().unwrap());
        session.cache().cells().check_invariants().unwrap();
    }
    (rows, session)
}

/// Positions the anchor policy must keep: anchors, pinned non-pads, the open segment's non-pads,
/// the non-pads of the last `w - 1` positions (the next query at `tokens.len()` sees them), and
/// with `marks` every anchor id right after a digit.
fn expected_kept(tokens: &[TokenId], pins: &[Range<u32>], w: u32, marks: bool) -> Vec<Pos> {
    // Hand-derived roles, not `AnchorSet::classify`: a pad is a pad; an anchor id is an anchor
    // unless the token before it is a digit.
    let roles: Vec<Role> = (0..tokens.len())
        .map(|i| match tokens[i] {
            PAD => Role::Pad,
            t if ANCHOR.contains(&t) && !(i > 0 && DIGIT.contains(&tokens[i - 1])) => Role::Anchor,
            _ => Role::Token,
        })
        .collect();
    let open_from = roles
        .iter()
        .rposition(|&r| r == Role::Anchor)
        .map_or(0, |i| i + 1);
    (0..tokens.len())
        .filter(|&i| {
            let mark =
                marks && ANCHOR.contains(&tokens[i]) && i > 0 && DIGIT.contains(&tokens[i - 1]);
            let pinned = mark || pins.iter().any(|r| r.contains(&(i as u32)));
            match roles[i] {
                Role::Anchor => true,
                Role::Pad => false,
                Role::Token => i >= open_from || pinned || tokens.len() - i < w as usize,
            }
        })
        .map(|i| Pos(i as u32))
        .collect()
}

/// Compares the non-pad rows (a pad row attends to nothing; its output is not defined).
fn assert_rows_match(
    tokens: &[TokenId],
    got: &[Vec<f32>],
    want: &[Vec<f32>],
    tol: f32,
    what: &str,
) {
    let keep = |rows: &[Vec<f32>]| -> Vec<Vec<f32>> {
        (rows.iter().zip(tokens))
            .filter(|&(_, &t)| t != PAD)
            .map(|(r, _)| r.clone())
            .collect()
    };
    let diff = max_abs_diff(&keep(got), &keep(want));
    assert!(
        diff <= tol,
        "{what}: max |Δ| = {diff} > {tol} for {tokens:?}"
    );
}

fn check(
    tokens: &[TokenId],
    frac: f64,
    pins: &[Range<u32>],
    rule: MaskRule,
    marks: bool,
    kv: KvDtype,
) {
    let w = rule.window();
    let reference = masked_full(tokens, pins, rule, marks, kv);
    let prefill = ((tokens.len() as f64 * frac) as usize).clamp(1, tokens.len());
    for chunk in [1, 2, 3, 5, tokens.len()] {
        let (rows, session) = pruned(tokens, prefill, chunk, pins, rule, marks, kv);
        let what = format!(
            "{kv:?} cache, chunk {chunk}, prefill {prefill}, pins {pins:?}, {rule:?}, marks {marks}"
        );
        let tol = if kv == KvDtype::F16 { TOL_F16 } else { TOL };
        assert_rows_match(tokens, &rows, &reference, tol, &what);
        let kept: Vec<Pos> = session.cache().cells().iter().map(|(_, c)| c.pos).collect();
        assert_eq!(
            kept,
            expected_kept(tokens, pins, w, marks),
            "{what}: final cache"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn pruned_cache_equals_masked_full_forward(tokens in stream(), frac in 0.0f64..1.0) {
        check(&tokens, frac, &[], MaskRule::AnSan, false, KvDtype::F32);
    }

    #[test]
    fn pruned_cache_with_pinned_list_marks_equals_masked_full_forward(
        tokens in stream(),
        frac in 0.0f64..1.0,
        w in 0u32..6,
    ) {
        check(&tokens, frac, &[], MaskRule::ansan_window(w), true, KvDtype::F32);
    }

    #[test]
    fn pruned_cache_with_a_window_equals_masked_full_forward(
        tokens in stream(),
        frac in 0.0f64..1.0,
        w in 1u32..12,
    ) {
        check(&tokens, frac, &[], MaskRule::ansan_window(w), false, KvDtype::F32);
    }

    /// The legacy rule, alone and with a window: anchors also see earlier anchors (and the
    /// window), which the anchor cache keeps, so pruning stays exact.
    #[test]
    fn pruned_cache_under_the_legacy_rule_equals_masked_full_forward(
        tokens in stream(),
        frac in 0.0f64..1.0,
        w in 0u32..12,
    ) {
        let rule = match w {
            0 => MaskRule::AnSanLegacy,
            w => MaskRule::AnSanLegacyWindow(w),
        };
        check(&tokens, frac, &[], rule, w % 2 == 1, KvDtype::F32);
    }

    #[test]
    fn pruned_f16_cache_equals_masked_full_forward_on_f16(
        tokens in stream(),
        frac in 0.0f64..1.0,
    ) {
        check(&tokens, frac, &[], MaskRule::AnSan, false, KvDtype::F16);
    }

    /// Streams past the decode kernel's 16 rows, so the one-shot forward is tiled.
    #[test]
    fn tiled_masked_forward_equals_the_dense_masked_grid(
        tokens in prop::collection::vec(20u32..384, 17..40).prop_flat_map(|base| {
            let n = base.len();
            (Just(base), prop::collection::vec((0..n, prop::sample::select(ANCHOR.to_vec())), 1..8))
        }).prop_map(|(mut base, anchors)| {
            for (i, a) in anchors { base[i] = a; }
            base
        }),
    ) {
        for kv in [KvDtype::F32, KvDtype::F16] {
            let (tiled, dense) =
                (masked_full(&tokens, &[], MaskRule::AnSan, false, kv), masked_full_dense(&tokens, kv));
            // The same f32 sums in another order. With an f16 cache that noise can flip the
            // rounding of a later layer's K/V by one ulp, as between chunkings (TOL_F16).
            let tol = if kv == KvDtype::F16 { TOL_F16 } else { TOL };
            assert_rows_match(&tokens, &tiled, &dense, tol, &format!("{kv:?} tiled vs dense"));
        }
    }

    #[test]
    fn pruned_cache_with_pins_equals_masked_full_forward(
        tokens in stream(),
        frac in 0.0f64..1.0,
        pin in (0u32..40, 1u32..12),
    ) {
        let pins: Vec<Range<u32>> = std::iter::once(pin.0..pin.0 + pin.1).collect();
        check(&tokens, frac, &pins, MaskRule::AnSan, false, KvDtype::F32);
    }
}

#[test]
fn causal_rule_with_full_policy_equals_plain_causal_forward() {
    // spec §10.7: without anchors the masked forward is the plain causal forward.
    let tokens: Vec<TokenId> = (0..40).map(|i| 20 + (i * 37) % 300).collect();
    let model = &tiny_model().llama;
    let plain = {
        let mut s = Session::new(Arc::clone(model), SessionConfig::causal(40), 40).unwrap();
        s.prefill(&tokens, 0).unwrap().to_vec2::<f32>().unwrap()
    };
    let masked = {
        let cfg = SessionConfig {
            rule: MaskRule::AnSan,
            ..SessionConfig::causal(7)
        };
        let mut s = Session::new(Arc::clone(model), cfg, 40).unwrap();
        s.prefill(&tokens, 0).unwrap().to_vec2::<f32>().unwrap()
    };
    assert!(max_abs_diff(&plain, &masked) <= TOL);
}

/// The attention mass that H2O, TOVA and SnapKV score by, from the CPU kernels (one pass per
/// observed row) against the dense probability grid: a 30-row prefill (tiled path) observing
/// its last 5 rows, then two decode steps (decode path) observing their row, on f32 and f16
/// caches. Each layer's mass sums to rows × heads, so the same tolerance as the logits holds.
#[test]
fn observed_attention_mass_equals_the_dense_grid() {
    let tokens: Vec<TokenId> = (0..32).map(|i| 20 + (i * 53) % 350).collect();
    for kv in [KvDtype::F32, KvDtype::F16] {
        let kernel = model(kv);
        let dense = Arc::new(model(kv).as_ref().clone().with_dense_attention());
        let run = |llama: &Llama| -> Vec<AttentionStats> {
            let mut cache = llama.new_cache(32).unwrap();
            let steps: [(usize, usize, usize); 3] = [(0, 30, 5), (30, 31, 1), (31, 32, 1)];
            steps
                .iter()
                .map(|&(from, to, rows)| {
                    let pos: Vec<Pos> = (from..to).map(|p| Pos(p as u32)).collect();
                    let input = ForwardInput::causal(&tokens[from..to], &pos, OutputRows::Last);
                    llama
                        .forward_observed(&input, &mut cache, Some(rows))
                        .unwrap()
                        .1
                })
                .collect()
        };
        for (step, (got, want)) in run(&kernel).iter().zip(run(&dense)).enumerate() {
            assert_eq!(got.num_layers(), want.num_layers());
            for l in 0..want.num_layers() {
                let (g, w) = (got.layer(l).unwrap(), want.layer(l).unwrap());
                let diff = g
                    .iter()
                    .zip(w)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(
                    diff <= TOL,
                    "{kv:?} step {step} layer {l}: max |Δ| = {diff}"
                );
            }
        }
    }
}
