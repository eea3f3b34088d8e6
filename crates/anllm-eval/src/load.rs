//! Which rows are scored and which are demonstrations, per task.
//!
//! * OBQA, ARC-Easy, ARC-Challenge: the test split is scored (as the harness did) and the
//!   validation split is the demonstration pool.
//! * PIQA, BoolQ, HellaSwag, WinoGrande, SciQ: the harness scored validation and drew shots from
//!   train, which is not available offline. The last [`POOL_ROWS`] validation rows are the pool
//!   and are never scored, in zero-shot runs too, so that 0- and 5-shot score the same items.

use std::path::{Path, PathBuf};

use super::prompt::FewShot;
use super::qa::TaskData;
use super::tasks::{Task, default_path, load_docs};
use anllm::{Error, Result};

/// Validation rows held out as the demonstration pool of the validation-scored tasks.
pub const POOL_ROWS: usize = 100;

/// Where a task's rows come from.
#[derive(Debug, Clone)]
pub struct TaskFiles {
    /// The scored rows.
    pub scored: PathBuf,
    /// A separate demonstration pool, or `None` to take the last [`POOL_ROWS`] scored rows.
    pub pool: Option<PathBuf>,
}

impl TaskFiles {
    /// The files `scripts/fetch-eval.sh` lays out under `eval_dir`.
    pub fn standard(eval_dir: &Path, task: Task) -> Self {
        let scored = default_path(eval_dir, task, task.scored_split());
        let pool =
            (task.scored_split() == "test").then(|| default_path(eval_dir, task, "validation"));
        TaskFiles { scored, pool }
    }
}

/// Loads `task` with `k` demonstrations per prompt drawn with `seed`.
pub fn load_task(task: Task, files: &TaskFiles, k: usize, seed: u64) -> Result<TaskData> {
    let missing = |p: &Path| Error::Format {
        path: p.to_path_buf(),
        reason: "no such file (run scripts/fetch-assets.sh, or pass --data TASK=FILE)".into(),
    };
    if !files.scored.exists() {
        return Err(missing(&files.scored));
    }
    let mut docs = load_docs(task, &files.scored)?;
    let pool = match &files.pool {
        Some(path) if path.exists() => load_docs(task, path)?,
        Some(path) => return Err(missing(path)),
        None => {
            if docs.len() <= POOL_ROWS {
                return Err(Error::Format {
                    path: files.scored.clone(),
                    reason: format!(
                        "{} rows: need more than {POOL_ROWS} (the last {POOL_ROWS} are the \
                         demonstration pool) or a separate pool file",
                        docs.len()
                    ),
                });
            }
            docs.split_off(docs.len() - POOL_ROWS)
        }
    };
    Ok(TaskData {
        task,
        docs,
        shots: FewShot { pool, k, seed },
    })
}
