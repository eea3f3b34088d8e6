//! The table and plots of `anllm eval kv`: records averaged per task, length, policy and budget.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use anllm::MaskRule;
use anllm_eval::kv::run::CellRecord;

use crate::plot::{Plot, Series, write_png};

/// Means over the items of one (task, length, policy, budget).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Task name.
    pub task: String,
    /// Target length.
    pub length: usize,
    /// Policy name.
    pub policy: String,
    /// Budget as a share of the context (`None`: the policy's own rule).
    pub share: Option<f64>,
    /// The `anchor` policy's attention rule (its local window), `None` for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_rule: Option<MaskRule>,
    /// Items averaged.
    pub items: usize,
    /// Entries held after compression ÷ context tokens.
    pub kv_kept: f64,
    /// Most K/V bytes held at once after compression.
    pub kv_peak_bytes: f64,
    /// Accuracy of the greedy answers (`None` for agreement).
    pub accuracy: Option<f64>,
    /// Mean negative log-likelihood per gold answer token.
    pub nll: f64,
    /// Top-1 agreement with the full cache.
    pub top1: f64,
    /// KL(full ‖ policy), nats per answer token.
    pub kl: f64,
    /// Decode steps per second.
    pub decode_tok_s: Option<f64>,
}

impl Row {
    /// The task's score: accuracy where answers are generated, else top-1 agreement.
    pub fn score(&self) -> f64 {
        self.accuracy.unwrap_or(self.top1)
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for x in xs {
        sum += x;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// Rows in order of task, length, policy (the full cache first) and budget.
pub fn summarize(records: &[CellRecord]) -> Vec<Row> {
    let key = |r: &CellRecord| {
        let share = r.share.map_or(u64::MAX, |s| (s * 1e6) as u64);
        let first = u8::from(r.policy != "full");
        (r.task.clone(), r.length, first, r.policy.clone(), share)
    };
    let mut groups: BTreeMap<_, Vec<&CellRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(key(r)).or_default().push(r);
    }
    groups
        .into_values()
        .map(|g| {
            let f = |get: fn(&CellRecord) -> f64| mean(g.iter().map(|r| get(r))).unwrap_or(0.0);
            Row {
                task: g[0].task.clone(),
                length: g[0].length,
                policy: g[0].policy.clone(),
                share: g[0].share,
                mask_rule: g[0].mask_rule,
                items: g.len(),
                kv_kept: f(|r| r.kv_entries as f64 / r.context.max(1) as f64),
                kv_peak_bytes: f(|r| r.kv_peak_bytes as f64),
                // RULER's string_match_all where recorded (the share of the answer's words
                // found: partial credit for vt's five variables), else all-or-nothing.
                accuracy: mean(
                    g.iter()
                        .filter_map(|r| r.recall.or(r.correct.map(|c| f64::from(u8::from(c))))),
                ),
                nll: f(|r| r.nll),
                top1: f(|r| r.top1),
                kl: f(|r| r.kl),
                decode_tok_s: mean(g.iter().filter_map(|r| r.decode_tok_s)),
            }
        })
        .collect()
}

/// The budget column: the share of the context, or the `anchor` policy's local window.
fn budget(r: &Row) -> String {
    match (r.share, r.mask_rule.map_or(0, MaskRule::window)) {
        (Some(s), _) => format!("{:.0}%", s * 100.0),
        (None, 0) => "–".into(),
        (None, w) => format!("W {w}"),
    }
}

/// A markdown table, one line per row.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| task | length | policy | budget | items | KV kept | KV MiB | accuracy | gold NLL | top-1 | KL | decode tok/s |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let opt = |x: Option<f64>, d: usize| x.map_or("–".into(), |x| format!("{x:.d$}"));
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1}% | {:.1} | {} | {:.3} | {:.3} | {:.3} | {} |\n",
            r.task,
            r.length,
            r.policy,
            budget(r),
            r.items,
            r.kv_kept * 100.0,
            r.kv_peak_bytes / (1 << 20) as f64,
            opt(r.accuracy, 3),
            r.nll,
            r.top1,
            r.kl,
            opt(r.decode_tok_s, 1),
        ));
    }
    out
}

/// One PNG per task: the task's score against the share of KV kept, one line per policy,
/// averaged over lengths; returns the paths written (`PREFIX-TASK.png`).
pub fn plots(prefix: &Path, rows: &[Row]) -> Result<Vec<PathBuf>> {
    let mut by_task: BTreeMap<&str, BTreeMap<&str, BTreeMap<u64, Vec<&Row>>>> = BTreeMap::new();
    for r in rows {
        let share = r.share.map_or(u64::MAX, |s| (s * 1e6) as u64);
        by_task
            .entry(&r.task)
            .or_default()
            .entry(&r.policy)
            .or_default()
            .entry(share)
            .or_default()
            .push(r);
    }
    let mut written = Vec::new();
    for (task, policies) in by_task {
        let series: Vec<Series> = policies
            .into_iter()
            .map(|(policy, budgets)| Series {
                name: policy.to_string(),
                points: budgets
                    .into_values()
                    .map(|g| {
                        let x = mean(g.iter().map(|r| r.kv_kept * 100.0)).unwrap_or(0.0);
                        (x, mean(g.iter().map(|r| r.score())).unwrap_or(0.0))
                    })
                    .collect(),
            })
            .collect();
        let name = format!("{}-{task}.png", prefix.display());
        let path = PathBuf::from(name);
        let y = match task {
            "agreement" => "top-1 agreement with the full cache",
            _ => "accuracy",
        };
        let title = format!("anllm eval kv: {task}");
        write_png(
            &path,
            &Plot {
                title: &title,
                x_label: "KV kept after the context (% of its tokens)",
                y_label: y,
                series: &series,
                log_y: false,
            },
        )?;
        written.push(path);
    }
    Ok(written)
}
