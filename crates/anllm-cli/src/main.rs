//! The `anllm` binary: `main` → `run` → one subcommand; exit 0 on success, 1 on error, 2 on
//! bad flags (clap's own code).

mod alloc;
mod args;
mod cmd;
mod config;
mod kv_args;
mod logit_args;
mod mt_args;
mod plot;
mod train_args;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("anllm: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Generate(a) => cmd::generate::run(a),
        Command::Score(a) => cmd::score::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Train(a) => cmd::train::run(*a),
        Command::Export(a) => cmd::export::run(a),
        Command::Average(a) => cmd::average::run(a),
        Command::Serve(a) => cmd::serve::run(*a),
        Command::Plot(a) => cmd::plot::run(a),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
