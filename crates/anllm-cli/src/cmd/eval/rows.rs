//! `anllm eval rows`: prints benchmark rows (Arrow IPC stream or JSON Lines) as JSON Lines, so
//! scripts without an Arrow library can read the evaluation wheel's unscored datasets (the
//! AnLLM-EP-135M recipe builds its few-shot training text from them).

use std::io::{BufWriter, Write};

use anyhow::{Context, Result};

use anllm_eval::data::read_rows;

use crate::args::RowsArgs;

/// Runs the command.
pub fn run(args: RowsArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for file in &args.files {
        let rows = read_rows(file).with_context(|| format!("reading {}", file.display()))?;
        for row in rows {
            serde_json::to_writer(&mut out, &row)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}
