//! `anllm eval overlap`: refuses training data that holds a scored evaluation item
//! ([`anllm_eval::overlap`]): prints each contaminated item and exits non-zero.

use anyhow::{Context, Result, bail};

use anllm_eval::overlap::{ItemGrams, MIN_WORDS, NGRAM};
use anllm_eval::tasks::{Task, default_path, load_docs};
use anllm_train::data::{DocSplit, Document, read_documents};

use crate::args::OverlapArgs;
use crate::config;

/// The text of a training document, as a contamination check reads it.
fn text_of(doc: &Document) -> String {
    match doc {
        Document::Text(t) => t.clone(),
        Document::Instruction { prompt, response } => format!("{prompt}\n{response}"),
        Document::Chat { messages, .. } => messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Runs the check.
pub fn run(args: OverlapArgs) -> Result<()> {
    let tasks = Task::parse_list(&args.tasks)?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| config::anllm_home().join("eval"));
    let mut grams = ItemGrams::default();
    for &task in &tasks {
        let path = default_path(&dir, task, task.scored_split());
        let docs = load_docs(task, &path)
            .with_context(|| format!("reading {} (scripts/fetch-eval.sh)", path.display()))?;
        grams.add(task, &docs);
    }
    let mut hits = Vec::new();
    for file in &args.data {
        let docs = read_documents(file, DocSplit::BlankLine)
            .with_context(|| format!("reading {}", file.display()))?;
        for doc in &docs {
            for hit in grams.find_in(&text_of(doc)) {
                println!(
                    "{}: {} item {} shares \"{}\"",
                    file.display(),
                    hit.task.name(),
                    hit.item,
                    hit.words
                );
                hits.push(hit);
            }
        }
    }
    eprintln!(
        "anllm: {} scored items against {} files (runs of {NGRAM} words; {} items under \
         {MIN_WORDS} words not checked): {} contaminated",
        grams.items,
        args.data.len(),
        grams.skipped,
        hits.len()
    );
    if !hits.is_empty() {
        bail!(
            "{} scored evaluation items occur in the training data",
            hits.len()
        );
    }
    Ok(())
}
