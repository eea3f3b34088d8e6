//! `anllm eval qa`: the paper's Table 1 for one model, mode and shot count.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;

use anllm::{AnchorSpec, TokenId};
use anllm_eval::load::{TaskFiles, load_task};
use anllm_eval::metrics::mean;
use anllm_eval::report::markdown_table;
use anllm_eval::{QaConfig, Task, TaskSummary, run_task};

use super::eval_session;
use super::progress::Progress;
use crate::args::QaArgs;
use crate::config;

/// Runs the subcommand.
pub fn run(mut args: QaArgs) -> Result<()> {
    config::set_threads(args.common.threads)?;
    let tasks = Task::parse_list(&args.tasks)?;
    let files = task_files(&args, &tasks)?;
    let model = config::load(
        &args.common,
        &mut args.session.anchors,
        &mut args.session.anchor_window,
        &mut args.session.mask_rule,
    )?;
    let tok = &model.tokenizer;
    let (mode, anchored, spec) = eval_session(&args.session, tok)?;
    // AC: one <AC> after each demonstration (spec §6.3), in every mode.
    let insert: Option<TokenId> = (spec == AnchorSpec::Ac).then(|| anchored.anchors.ids()[0]);
    let cfg = QaConfig {
        mode,
        anchored,
        insert,
        speedup_items: args.speedup_items.unwrap_or(usize::MAX),
    };
    let mut summaries: Vec<TaskSummary> = Vec::new();
    let mut records = Vec::new();
    for (task, files) in tasks.iter().zip(&files) {
        let data = load_task(*task, files, args.shots, args.seed)
            .with_context(|| format!("loading {task}"))?;
        let n = args
            .limit
            .map_or(data.docs.len(), |l| l.min(data.docs.len()));
        let mut progress = Progress::new(task.name(), n as u64);
        let (summary, recs) = run_task(&model.llama, tok, &data, &cfg, args.limit, &mut || {
            progress.inc()
        })
        .with_context(|| format!("scoring {task}"))?;
        progress.finish();
        eprintln!("{}", task_line(&summary));
        summaries.push(summary);
        records.extend(recs);
    }
    let title = format!(
        "model {} ({:?}) | mode {:?} | anchors {} | {}-shot | {} items per task at most",
        model.info.path.display(),
        args.common.dtype,
        mode,
        args.session.flags(),
        args.shots,
        args.limit.map_or("all".to_string(), |l| l.to_string()),
    );
    println!("{title}\n\n{}", markdown_table(&summaries));
    let summary = json!({
        "model": model.info.path,
        "dtype": format!("{:?}", args.common.dtype).to_lowercase(),
        "mode": mode,
        "anchors": args.session.anchors,
        "anchor_window": args.session.window(),
        "mask_rule": cfg.anchored.rule,
        "shots": args.shots,
        "seed": args.seed,
        "limit": args.limit,
        "tasks": summaries,
        "average": average(&summaries),
    });
    if let Some(path) = &args.output {
        let out = json!({ "summary": summary, "records": records });
        write_json(path, &out)?;
        eprintln!(
            "anllm: wrote {} records to {}",
            records.len(),
            path.display()
        );
    }
    if args.common.json {
        println!("{summary}");
    }
    Ok(())
}

/// The files of each task: the standard layout, with `--data` / `--shots-data` overrides.
fn task_files(args: &QaArgs, tasks: &[Task]) -> Result<Vec<TaskFiles>> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| config::anllm_home().join("eval"));
    let scored = overrides(&args.data, "--data")?;
    let pools = overrides(&args.shots_data, "--shots-data")?;
    for task in scored.keys().chain(pools.keys()) {
        if !tasks.contains(task) {
            bail!("--data/--shots-data names {task}, which is not in --tasks");
        }
    }
    Ok(tasks
        .iter()
        .map(|&task| {
            let mut files = TaskFiles::standard(&dir, task);
            if let Some(path) = scored.get(&task) {
                files.scored = path.clone();
                if task.scored_split() != "test" {
                    files.pool = None;
                }
            }
            if let Some(path) = pools.get(&task) {
                files.pool = Some(path.clone());
            }
            files
        })
        .collect())
}

/// `TASK=FILE` flags.
fn overrides(flags: &[String], name: &str) -> Result<HashMap<Task, PathBuf>> {
    flags
        .iter()
        .map(|f| {
            let Some((task, path)) = f.split_once('=') else {
                bail!("{name} {f}: expected TASK=FILE");
            };
            Ok((task.trim().parse::<Task>()?, PathBuf::from(path)))
        })
        .collect()
}

fn average(tasks: &[TaskSummary]) -> serde_json::Value {
    json!({
        "acc": mean(tasks.iter().map(|t| Some(t.acc))),
        "acc_norm": mean(tasks.iter().map(|t| t.acc_norm)),
        "c_demos_ratio_of_sums": mean(tasks.iter().map(|t| t.c_demos.ratio_of_sums())),
        "c_context_ratio_of_sums": mean(tasks.iter().map(|t| t.c_context.ratio_of_sums())),
        "speedup": mean(tasks.iter().map(|t| t.speedup)),
        "full_vs_anchor_cache": mean(tasks.iter().map(|t| t.full_vs_anchor_cache)),
        "seconds": tasks.iter().map(|t| t.seconds).sum::<f64>(),
    })
}

fn task_line(t: &TaskSummary) -> String {
    let mut line = format!(
        "anllm: {}: {} items, acc {:.1}%, {:.1}s",
        t.task,
        t.items,
        100.0 * t.acc,
        t.seconds
    );
    if let (Some(s), Some(agree), Some(diff)) = (t.speedup, t.mask_agreement, t.mask_max_diff) {
        line.push_str(&format!(
            ", T⇑ {s:.2}×, mask/cache agree on {:.1}% (max |Δll| {diff:.2e})",
            100.0 * agree
        ));
    }
    line
}

/// Writes `value` to `path` atomically (temp file + rename).
pub(super) fn write_json(path: &std::path::Path, value: &serde_json::Value) -> Result<()> {
    let tmp = path.with_extension("json.part");
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
