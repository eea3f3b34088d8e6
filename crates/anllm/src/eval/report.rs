//! The markdown table of a QA run, shaped like the paper's Table 1: one column per task plus
//! the average, rows Acc, C⇓ and T⇑.

use super::metrics::mean;
use super::qa::TaskSummary;
use super::tasks::Task;

/// Renders `tasks` (in the given order) with an `Avg` column.
pub fn markdown_table(tasks: &[TaskSummary]) -> String {
    let label = |name: &str| -> &'static str { name.parse::<Task>().map_or("?", Task::label) };
    let mut out = String::from("| |");
    for t in tasks {
        out.push_str(&format!(" {} |", label(t.task)));
    }
    out.push_str(" Avg |\n|---|");
    out.push_str(&"---:|".repeat(tasks.len() + 1));
    out.push('\n');
    let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1}", 100.0 * v));
    let ratio = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}×"));
    let rows: [(
        &str,
        &dyn Fn(&TaskSummary) -> Option<f64>,
        &dyn Fn(Option<f64>) -> String,
    ); 8] = [
        ("Acc", &|t| Some(t.acc), &pct),
        ("Acc (norm)", &|t| t.acc_norm, &pct),
        ("C⇓ demos (Σ)", &|t| t.c_demos.ratio_of_sums(), &pct),
        ("C⇓ demos (mean)", &|t| t.c_demos.mean_of_ratios(), &pct),
        ("C⇓ context (Σ)", &|t| t.c_context.ratio_of_sums(), &pct),
        ("C⇓ context (mean)", &|t| t.c_context.mean_of_ratios(), &pct),
        ("T⇑", &|t| t.speedup, &ratio),
        (
            "full / anchor cache time",
            &|t| t.full_vs_anchor_cache,
            &ratio,
        ),
    ];
    for (name, get, show) in rows {
        let values: Vec<Option<f64>> = tasks.iter().map(get).collect();
        if values.iter().all(Option::is_none) {
            continue;
        }
        out.push_str(&format!("| {name} |"));
        for v in &values {
            out.push_str(&format!(" {} |", show(*v)));
        }
        out.push_str(&format!(" {} |\n", show(mean(values))));
    }
    out
}
