//! `anllm eval kv`: KV policies × budgets on seeded long-context tasks, each cell compared with
//! the full cache on the same items (protocol in `anllm_eval::kv::run`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use anllm::chat::{ChatTemplate, Message};
use anllm::policy::{Budget, PolicyConfig};
use anllm::{AnchorSet, AnchorSpec, LoadedModel, SessionConfig, TokenId};
use anllm_eval::kv::run::{Cell, CellRecord, KvRunConfig, Prepared, budget_entries, run_item};
use anllm_eval::kv::{GenSpec, KvItem, KvTask, generate};

use super::kv_report;
use super::progress::Progress;
use crate::config;
use crate::kv_args::KvArgs;

/// Policies `--policies` accepts.
const KNOWN: [&str; 11] = [
    "full",
    "anchor",
    "streaming",
    "sepllm",
    "h2o",
    "tova",
    "tova_layer",
    "snapkv",
    "snapkv_head",
    "knorm",
    "knorm_head",
];

/// Runs the subcommand.
pub fn run_kv(mut args: KvArgs) -> Result<()> {
    let tasks = parse_list(&args.tasks, |s| {
        KvTask::parse(s).map_err(anyhow::Error::msg)
    })?;
    let lengths = parse_list(&args.lengths, |s| {
        s.parse::<usize>()
            .with_context(|| format!("--lengths: `{s}`"))
    })?;
    let shares = parse_list(&args.budgets, |s| match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x < 1.0 => Ok(x),
        _ => bail!("--budgets: `{s}` is not a share strictly between 0 and 1"),
    })?;
    let policies = parse_list(&args.policies, |s| {
        let (name, aware) = split_query_aware(s);
        match (
            KNOWN.contains(&name),
            aware && matches!(name, "full" | "anchor"),
        ) {
            (true, false) => Ok(s.to_string()),
            (true, true) => bail!("--policies: `{s}`: `+q` goes with a budgeted policy"),
            (false, _) => bail!(
                "--policies: `{s}`; known: {} (a budgeted one with `+q`: query-aware)",
                KNOWN.join(", ")
            ),
        }
    })?;
    if args.items == 0 {
        bail!("--items must be at least 1");
    }
    if args.chunked == Some(0) {
        bail!("--chunked must be at least 1");
    }
    if let Some(path) = &args.summarize {
        return report(&args, &read_records(path)?);
    }
    config::set_threads(args.common.threads)?;
    let auto = args.anchors == config::AUTO_ANCHORS;
    let model = config::load(
        &args.common,
        &mut args.anchors,
        &mut args.anchor_window,
        &mut args.mask_rule,
    )?;
    // A model trained without anchors: the `anchor` policy still needs some, EP's by default.
    if auto && args.anchors == "none" {
        args.anchors = "ep".into();
    }
    let items = prepare_all(&args, &model, &tasks, &lengths)?;
    let max_len = model.llama.config().max_position_embeddings;
    if let Some(long) = items.iter().find(|p| total_len(p, &args) > max_len) {
        bail!(
            "a {}-token item plus its question and answer exceeds the model's context ({max_len})",
            long.item.length
        );
    }
    if let Some(path) = &args.export_items {
        export(path, &items)?;
    }
    if args.export_only {
        return Ok(());
    }
    let cfg = run_config(&args, &model)?;
    let mut out = match &args.output {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let mut progress = Progress::new("kv items", items.len() as u64);
    let mut records: Vec<CellRecord> = Vec::new();
    for p in &items {
        let cells = cells_for(&policies, &shares, p)?;
        let got = run_item(&model.llama, &model.tokenizer, p, &cells, &cfg).with_context(|| {
            format!(
                "{} item {} at {}",
                p.item.task.name(),
                p.item.id,
                p.item.length
            )
        })?;
        if let Some(w) = out.as_mut() {
            for r in &got {
                writeln!(w, "{}", serde_json::to_string(r)?)?;
            }
            w.flush()?;
        }
        records.extend(got);
        progress.inc();
    }
    progress.finish();
    report(&args, &records)
}

/// The table on stdout, the plots, and the JSON summary.
fn report(args: &KvArgs, records: &[CellRecord]) -> Result<()> {
    let summary = kv_report::summarize(records);
    println!("{}", kv_report::table(&summary));
    if let Some(prefix) = &args.plot {
        for path in kv_report::plots(prefix, &summary)? {
            eprintln!("anllm: wrote {}", path.display());
        }
    }
    if args.common.json {
        println!("{}", serde_json::json!({ "summary": summary }));
    }
    Ok(())
}

fn read_records(path: &Path) -> Result<Vec<CellRecord>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let records = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a kv record", path.display(), i + 1))
        })
        .collect::<Result<Vec<CellRecord>>>()?;
    if records.is_empty() {
        bail!("{} holds no records", path.display());
    }
    Ok(records)
}

fn parse_list<T>(text: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let items: Vec<T> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse)
        .collect::<Result<_>>()?;
    if items.is_empty() {
        bail!("empty list: `{text}`");
    }
    Ok(items)
}

fn total_len(p: &Prepared, args: &KvArgs) -> usize {
    p.context_ids.len() + p.question_ids.len() + p.answer_ids.len() + args.max_new_tokens
}

/// `snapkv+q` → (`snapkv`, true): the query-aware form of a policy.
fn split_query_aware(name: &str) -> (&str, bool) {
    match name.strip_suffix("+q") {
        Some(base) => (base, true),
        None => (name, false),
    }
}

/// The cells of one item: each policy at each budget, resolved against the tokens it
/// compresses (the context, plus the question when query-aware).
fn cells_for(policies: &[String], shares: &[f64], p: &Prepared) -> Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for spec in policies {
        let (name, query_aware) = split_query_aware(spec);
        let compressed = match query_aware {
            true => p.context_ids.len() + p.question_ids.len(),
            false => p.context_ids.len(),
        };
        match name {
            "full" => {}
            "anchor" => cells.push(Cell {
                policy: PolicyConfig::Anchor,
                share: None,
                query_aware: false,
            }),
            _ => {
                for &share in shares {
                    let budget = Budget::Entries(budget_entries(share, compressed));
                    cells.push(Cell {
                        policy: PolicyConfig::with_budget(name, budget)?,
                        share: Some(share),
                        query_aware,
                    });
                }
            }
        }
    }
    Ok(cells)
}

fn run_config(args: &KvArgs, model: &LoadedModel) -> Result<KvRunConfig> {
    let tok = &model.tokenizer;
    let separators = AnchorSet::from_spec(&args.separators.parse::<AnchorSpec>()?, tok)?;
    let spec: AnchorSpec = args.anchors.parse()?;
    if spec == AnchorSpec::None && args.policies.contains("anchor") {
        bail!("the anchor policy needs --anchors (ep, ep-sentence, ac, …)");
    }
    let anchors = AnchorSet::from_spec(&spec, tok)?;
    let specials = tok.specials();
    let mut stop: Vec<TokenId> = specials
        .eos
        .into_iter()
        .chain(specials.eot.clone())
        .collect();
    if let Ok(end) = ChatTemplate::of(tok).and_then(|t| t.answer_terminator()) {
        stop.push(end);
    }
    Ok(KvRunConfig {
        separators,
        anchored: SessionConfig::anchored(anchors, args.chunk_size).with_rule(config::mask_rule(
            args.mask_rule.unwrap_or_default(),
            args.anchor_window.unwrap_or(0),
        )?),
        max_new_tokens: args.max_new_tokens,
        stop,
        chunked: args.chunked,
    })
}

/// Every item of every task and length, generated and rendered to token ids.
fn prepare_all(
    args: &KvArgs,
    model: &LoadedModel,
    tasks: &[KvTask],
    lengths: &[usize],
) -> Result<Vec<Prepared>> {
    let tok = &model.tokenizer;
    let count = |s: &str| tok.encode(s, false).map_or(usize::MAX, |ids| ids.len());
    let text = match tasks.contains(&KvTask::Agreement) {
        true => Some(read_text(&args.text.clone().unwrap_or_else(|| {
            config::anllm_home().join("corpus").join("heldout.txt")
        }))?),
        false => None,
    };
    let mut out = Vec::new();
    for &task in tasks {
        for &length in lengths {
            let spec = GenSpec {
                task,
                length,
                items: args.items,
                seed: args.seed,
                real_text: text.as_deref(),
            };
            let items = generate(&spec, &count).map_err(anyhow::Error::msg)?;
            for item in items {
                out.push(render(model, item)?);
            }
        }
    }
    Ok(out)
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {} (the agreement task's text; run scripts/fetch-assets.sh or pass --text)",
            path.display()
        )
    })
}

/// Token ids of an item: a chat turn (the model's template, its default system prompt) whose
/// user text is the context then the question, the answer prefix opening the assistant's
/// answer; agreement items are plain text.
fn render(model: &LoadedModel, item: KvItem) -> Result<Prepared> {
    let tok = &model.tokenizer;
    let enc = |s: &str| tok.encode(s, true).map_err(anyhow::Error::from);
    if item.question.is_empty() {
        return Ok(Prepared {
            context_ids: enc(&item.context)?,
            question_ids: Vec::new(),
            answer_ids: enc(&item.answer)?,
            item,
        });
    }
    let user = format!("{}\n\n{}", item.context, item.question);
    let rendered = ChatTemplate::of(tok)?.render(&[Message {
        role: "user".into(),
        content: user.clone(),
    }])?;
    let at = rendered
        .find(&user)
        .context("the chat template does not contain the user's text verbatim")?;
    let split = at + item.context.len();
    let mut context_ids = Vec::new();
    if tok.add_bos()
        && let Some(bos) = tok.specials().bos
    {
        context_ids.push(bos);
    }
    context_ids.extend(enc(&rendered[..split])?);
    // A numeric answer's leading space joins the question: the tokenizer splits digits, so the
    // ids are the same, and the model starts its answer at the first digit.
    let digits = item
        .answer
        .trim_start()
        .starts_with(|c: char| c.is_ascii_digit());
    let (space, answer) = match digits {
        true => item
            .answer
            .split_at(item.answer.len() - item.answer.trim_start().len()),
        false => ("", item.answer.as_str()),
    };
    let question = format!("{}{}{space}", &rendered[split..], item.answer_prefix);
    Ok(Prepared {
        context_ids,
        question_ids: enc(&question)?,
        answer_ids: enc(answer)?,
        item,
    })
}

fn export(path: &PathBuf, items: &[Prepared]) -> Result<()> {
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for p in items {
        writeln!(w, "{}", serde_json::to_string(p)?)?;
    }
    w.flush()?;
    eprintln!("anllm: wrote {} items to {}", items.len(), path.display());
    Ok(())
}
