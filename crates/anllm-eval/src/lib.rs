//! Evaluation: the paper's eight QA benchmarks (accuracy, KV-cache reduction C⇓, testing
//! acceleration T⇑; spec §6) and perplexity over a text with a full, masked or pruned cache.
//!
//! * [`data`]: rows from Arrow IPC or JSONL files; [`load`]: scored items and demonstration pools;
//! * [`tasks`]: the lm-evaluation-harness v0.3 formatting of each task;
//! * [`prompt`]: few-shot prompts and their tokens (`<AC>` after demonstrations for AC);
//! * [`scoring`]: non-caching and shared-context scoring of one item's choices;
//! * [`qa`]: a task run, its records and summary; [`report`]: the Table-1-shaped markdown;
//! * [`kv`]: seeded long-context tasks for comparing KV policies (passkey, multi-key, variable tracking, agreement on real text);
//! * [`metrics`]: accuracy, C⇓ and T⇑ arithmetic; [`ppl`]: perplexity.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod data;
pub mod kv;
pub mod load;
pub mod metrics;
pub mod mt;
pub mod overlap;
pub mod ppl;
pub mod prompt;
pub mod qa;
pub mod report;
pub mod scoring;
pub mod tasks;

pub use qa::{EvalMode, QaConfig, Record, TaskData, TaskSummary, run_task};
pub use tasks::{Doc, Task};
