//! Corpus BLEU, chrF and the 13a tokenizer against sacrebleu 2.4.3 on the golden corpora of
//! `tests/golden/sacrebleu.json` (made by `benches/sacrebleu.sh golden`; rerun it with `--check`
//! to recompute them). Statistics and tokenizations must agree exactly, scores to 1e-9: sacrebleu's
//! float operations are mirrored one for one (bit-identical to the 3.11 golden), but serde_json's
//! default float parser can be 1 ulp off the printed value, and under Python >= 3.12 `sum()`
//! adds the BLEU log-precisions with Neumaier compensation (again a last-bit difference).

use std::path::Path;

use anllm_eval::mt::bleu::{corpus_bleu, tokenize_13a};
use anllm_eval::mt::chrf::corpus_chrf;
use serde_json::Value;

const TOLERANCE: f64 = 1e-9;

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/sacrebleu.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("missing golden file {}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden file is JSON")
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string"))
        .collect()
}

fn usizes(v: &Value) -> [usize; 4] {
    let vals: Vec<usize> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("count") as usize)
        .collect();
    vals.try_into().expect("4 orders")
}

fn num(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

fn corpora() -> Vec<Value> {
    let corpora = golden()["corpora"].as_array().expect("corpora").clone();
    assert!(corpora.len() >= 8, "the golden file lost corpora");
    corpora
}

#[test]
fn mt_metrics_golden_was_made_by_the_sacrebleu_peer() {
    let g = golden();
    assert_eq!(g["sacrebleu"], "2.4.3");
    assert!(
        g["made_by"]
            .as_str()
            .expect("made_by")
            .contains("benches/sacrebleu.sh")
    );
}

#[test]
fn mt_metrics_bleu_matches_sacrebleu_on_golden_corpora() {
    for corpus in corpora() {
        let name = corpus["name"].as_str().expect("name");
        let (hyps, refs) = (
            strings(&corpus["hypotheses"]),
            strings(&corpus["references"]),
        );
        let want = &corpus["bleu"];
        let got = corpus_bleu(&hyps, &refs).expect("bleu");
        assert_eq!(got.counts, usizes(&want["counts"]), "{name}: counts");
        assert_eq!(got.totals, usizes(&want["totals"]), "{name}: totals");
        assert_eq!(
            got.sys_len,
            want["sys_len"].as_u64().expect("sys_len") as usize,
            "{name}"
        );
        assert_eq!(
            got.ref_len,
            want["ref_len"].as_u64().expect("ref_len") as usize,
            "{name}"
        );
        assert!(
            (got.bp - num(&want["bp"])).abs() < TOLERANCE,
            "{name}: bp {}",
            got.bp
        );
        for (p, w) in got
            .precisions
            .iter()
            .zip(want["precisions"].as_array().expect("p"))
        {
            assert!(
                (p - num(w)).abs() < TOLERANCE,
                "{name}: precisions {:?}",
                got.precisions
            );
        }
        let (score, want) = (got.score, num(&want["score"]));
        assert!(
            (score - want).abs() < TOLERANCE,
            "{name}: BLEU {score} vs sacrebleu {want}"
        );
    }
}

#[test]
fn mt_metrics_chrf_matches_sacrebleu_on_golden_corpora() {
    for corpus in corpora() {
        let name = corpus["name"].as_str().expect("name");
        let (hyps, refs) = (
            strings(&corpus["hypotheses"]),
            strings(&corpus["references"]),
        );
        let got = corpus_chrf(&hyps, &refs).expect("chrf");
        let want = num(&corpus["chrf"]);
        assert!(
            (got - want).abs() < TOLERANCE,
            "{name}: chrF {got} vs sacrebleu {want}"
        );
    }
}

#[test]
fn mt_metrics_tokenize_13a_matches_sacrebleu() {
    let g = golden();
    let cases = g["tokenize_13a"].as_array().expect("tokenize_13a");
    assert!(cases.len() > 40, "the golden file lost tokenizer cases");
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let input = c["input"].as_str().expect("input");
            let want = c["output"].as_str().expect("output");
            let got = tokenize_13a(input);
            (got != want).then(|| format!("{input:?}: got {got:?}, sacrebleu {want:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
