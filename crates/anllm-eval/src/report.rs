//! The markdown table of a QA run, shaped like the paper's Table 1: one column per task plus
//! the average, rows Acc, C⇓ and T⇑.

use super::metrics::mean;
use super::qa::TaskSummary;
use super::tasks::Task;

/// A table row: its name, the value of a task, and how a value is shown.
type Row = (
    &'static str,
    fn(&TaskSummary) -> Option<f64>,
    fn(Option<f64>) -> String,
);

fn pct(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{:.1}", 100.0 * v))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.2}×"))
}

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
    let rows: [Row; 8] = [
        ("Acc", |t| Some(t.acc), pct),
        ("Acc (norm)", |t| t.acc_norm, pct),
        ("C⇓ demos (Σ)", |t| t.c_demos.ratio_of_sums(), pct),
        ("C⇓ demos (mean)", |t| t.c_demos.mean_of_ratios(), pct),
        ("C⇓ context (Σ)", |t| t.c_context.ratio_of_sums(), pct),
        ("C⇓ context (mean)", |t| t.c_context.mean_of_ratios(), pct),
        ("T⇑", |t| t.speedup, ratio),
        (
            "full / anchor cache time",
            |t| t.full_vs_anchor_cache,
            ratio,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Reduction;

    fn summary(task: &'static str, acc: f64, speedup: Option<f64>) -> TaskSummary {
        let mut c = Reduction::default();
        c.add(1, 4);
        TaskSummary {
            task,
            items: 10,
            acc,
            acc_norm: None,
            c_demos: Reduction::default(),
            c_context: c,
            seconds: 1.0,
            seconds_nocache: None,
            seconds_fullcache: None,
            speedup,
            full_vs_anchor_cache: None,
            timed_items: 0,
            mask_agreement: None,
            mask_max_diff: None,
            truncated: 0,
        }
    }

    #[test]
    fn table_has_paper_columns_an_average_and_skips_empty_rows() {
        let table = markdown_table(&[summary("obqa", 0.5, Some(2.0)), summary("piqa", 0.7, None)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "| | OBQA | PIQA | Avg |");
        assert_eq!(lines[2], "| Acc | 50.0 | 70.0 | 60.0 |");
        assert!(
            table.contains("| C⇓ context (Σ) | 75.0 | 75.0 | 75.0 |"),
            "{table}"
        );
        assert!(table.contains("| T⇑ | 2.00× | – | 2.00× |"), "{table}");
        assert!(
            !table.contains("Acc (norm)") && !table.contains("C⇓ demos"),
            "{table}"
        );
    }
}
