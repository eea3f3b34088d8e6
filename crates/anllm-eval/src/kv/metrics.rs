//! Teacher-forced agreement of a cell with the full cache: gold log-likelihood, top-1
//! agreement and KL(full ‖ cell) over the answer positions; and the recall of a greedy answer.

use anllm::TokenId;
use candle_core::Tensor;

/// Teacher-forced metrics of `rows` against the full cache's `reference` (log-softmax rows).
pub(super) fn compare(
    rows: &Tensor,
    reference: &Tensor,
    answer: &[TokenId],
) -> anllm::Result<(f64, f64, f64)> {
    let (x, r): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (rows.to_vec2()?, reference.to_vec2()?);
    let (mut ll, mut agree, mut kl) = (0.0f64, 0usize, 0.0f64);
    for ((x, r), &gold) in x.iter().zip(&r).zip(answer) {
        ll += f64::from(x[gold as usize]);
        agree += usize::from(argmax(x) == argmax(r));
        kl += r
            .iter()
            .zip(x)
            .map(|(&lr, &lx)| f64::from(lr.exp()) * f64::from(lr - lx))
            .sum::<f64>();
    }
    let n = answer.len().max(1) as f64;
    Ok((ll, agree as f64 / n, kl / n))
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
        .unwrap_or(0)
}

/// Share of the words of `answer` that occur in `generated` (RULER's `string_match_all`).
pub fn answer_recall(answer: &str, generated: &str) -> f64 {
    let words: Vec<&str> = answer.split_whitespace().collect();
    let found = words.iter().filter(|w| generated.contains(*w)).count();
    found as f64 / words.len().max(1) as f64
}
