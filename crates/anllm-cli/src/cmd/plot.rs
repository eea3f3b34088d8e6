//! `anllm plot`: a PNG line chart of fields of JSON records (a JSON array of objects, or one
//! object per line), e.g. the perplexity curves of a training run against tokens trained.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

use crate::plot::{Plot, Series, write_png};

/// `anllm plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The records: a JSON array of objects, or JSON Lines.
    #[arg(long)]
    pub json: PathBuf,
    /// Field of the x axis.
    #[arg(long)]
    pub x: String,
    /// Fields to draw as lines, comma-separated (`field` or `field=legend name`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub y: Vec<String>,
    /// Where to write the PNG.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Caption above the chart.
    #[arg(long, default_value = "")]
    pub title: String,
    /// Name of the y axis.
    #[arg(long, default_value = "")]
    pub y_label: String,
    /// A logarithmic y axis.
    #[arg(long)]
    pub log_y: bool,
}

/// Runs the subcommand.
pub fn run(args: PlotArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.json)
        .with_context(|| format!("reading {}", args.json.display()))?;
    let records = parse(&text).with_context(|| format!("parsing {}", args.json.display()))?;
    let series: Vec<Series> = args
        .y
        .iter()
        .map(|spec| series(&records, &args.x, spec))
        .collect::<Result<_>>()?;
    let plot = Plot {
        title: &args.title,
        x_label: &args.x,
        y_label: &args.y_label,
        series: &series,
        log_y: args.log_y,
    };
    write_png(&args.out, &plot)?;
    eprintln!("anllm: wrote {}", args.out.display());
    Ok(())
}

/// A JSON array of records, or one record per non-empty line.
fn parse(text: &str) -> Result<Vec<Value>> {
    if text.trim_start().starts_with('[') {
        return Ok(serde_json::from_str(text)?);
    }
    (text.lines().filter(|l| !l.trim().is_empty()))
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("line {}", i + 1)))
        .collect()
}

/// The points (x, field) of the records holding both as numbers (a record missing one, or with
/// null, is skipped); an error when no record has them.
fn series(records: &[Value], x: &str, spec: &str) -> Result<Series> {
    let (field, name) = spec.split_once('=').unwrap_or((spec, spec));
    let points: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| Some((r.get(x)?.as_f64()?, r.get(field)?.as_f64()?)))
        .collect();
    if points.is_empty() {
        bail!("no record has numbers in both {x:?} and {field:?}");
    }
    Ok(Series {
        name: name.to_string(),
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arrays_and_json_lines_and_skips_records_without_the_fields() {
        let array = r#"[{"t": 0, "a": 5.0}, {"t": 10, "a": null}, {"t": 20, "a": 3.5}]"#;
        let lines = "{\"t\": 0, \"a\": 5.0}\n\n{\"t\": 10}\n{\"t\": 20, \"a\": 3.5}\n";
        for text in [array, lines] {
            let s = series(&parse(text).unwrap(), "t", "a=anchored").unwrap();
            assert_eq!(s.name, "anchored");
            assert_eq!(s.points, vec![(0.0, 5.0), (20.0, 3.5)]);
        }
        assert!(series(&parse(array).unwrap(), "t", "missing").is_err());
        assert!(parse("{not json").is_err());
    }
}
