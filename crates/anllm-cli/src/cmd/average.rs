//! `anllm average`: the weight average of checkpoints of one run ([`anllm_train::average`]).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use anllm_train::average::average_checkpoints;
use anllm_train::checkpoint::list_checkpoints;

/// `anllm average`.
#[derive(Debug, Args)]
pub struct AverageArgs {
    /// The checkpoints to average (directories of `train`'s output; two or more).
    #[arg(conflicts_with_all = ["run", "last"])]
    pub checkpoints: Vec<PathBuf>,
    /// A `train --out` directory: average its newest --last checkpoints.
    #[arg(long, requires = "last")]
    pub run: Option<PathBuf>,
    /// How many of --run's newest checkpoints to average (two or more).
    #[arg(long, requires = "run")]
    pub last: Option<usize>,
    /// The model directory to write (must not exist yet).
    #[arg(long)]
    pub out: PathBuf,
}

/// The checkpoints named on the command line, or the newest `--last` of `--run`.
fn sources(args: &AverageArgs) -> Result<Vec<PathBuf>> {
    let (Some(run), Some(last)) = (&args.run, args.last) else {
        if args.checkpoints.len() < 2 {
            bail!("name two or more checkpoints, or --run DIR --last N");
        }
        return Ok(args.checkpoints.clone());
    };
    if !run.is_dir() {
        bail!("--run {}: not a directory", run.display());
    }
    let all = list_checkpoints(run)?;
    if last < 2 {
        bail!("--last {last}: an average needs two or more checkpoints");
    }
    if all.len() < last {
        bail!(
            "--last {last}: {} has {} checkpoints",
            run.display(),
            all.len()
        );
    }
    Ok(all[all.len() - last..]
        .iter()
        .map(|(_, d)| d.clone())
        .collect())
}

/// Runs the average.
pub fn run(args: AverageArgs) -> Result<()> {
    let sources = sources(&args)?;
    let done = average_checkpoints(&sources, &args.out)?;
    eprintln!(
        "anllm: wrote {} ({} tensors, {} parameters), the mean of {} checkpoints:",
        done.dir.display(),
        done.tensors,
        done.parameters,
        sources.len()
    );
    for dir in &sources {
        eprintln!("anllm:   {}", dir.display());
    }
    Ok(())
}
