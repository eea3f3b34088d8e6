//! PNG line plots (loss curves and the like) with `plotters`.
//!
//! Text needs a TrueType font, which is loaded at run time (never downloaded, never embedded):
//! the first readable, valid file of `$ANLLM_FONT`, `$ANLLM_HOME/fonts/DejaVuSans.ttf` and
//! `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf`. The search runs once per process. With no
//! font the plot is still written, with axes, grid and lines but no text (no title, tick labels,
//! axis names or legend).

use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

/// Image width in pixels.
pub const WIDTH: u32 = 900;
/// Image height in pixels.
pub const HEIGHT: u32 = 540;

/// The family name the loaded font is registered under in plotters' font table.
const FONT_FAMILY: &str = "anllm-plot-sans";
/// Font files larger than this are not loaded (a font is read once and kept for the process).
const MAX_FONT_BYTES: u64 = 32 << 20;

/// Distinct line colours (the Tableau 10 palette), cycled when there are more series.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One named line: `(x, y)` points, drawn in the given order.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend entry; an empty name gets no legend entry.
    pub name: String,
    /// The points; those with a non-finite coordinate (and, with `log_y`, a non-positive `y`)
    /// are skipped.
    pub points: Vec<(f64, f64)>,
}

/// What to draw.
#[derive(Debug, Clone, Copy)]
pub struct Plot<'a> {
    /// Caption above the chart; empty for none.
    pub title: &'a str,
    /// Name of the x axis; empty for none.
    pub x_label: &'a str,
    /// Name of the y axis; empty for none.
    pub y_label: &'a str,
    /// The lines, coloured in order.
    pub series: &'a [Series],
    /// A logarithmic y axis.
    pub log_y: bool,
}

/// Writes `plot` as a [`WIDTH`]×[`HEIGHT`] PNG to `path`, atomically: it is drawn to a temporary
/// file in the same directory, which is then renamed over `path`. The directory must exist.
///
/// Bad points (NaN, infinite, non-positive on a log axis) are skipped; empty or one-point series
/// and constant values give a sensible empty or padded chart. A missing font only drops the
/// text. Errors are I/O or encoding failures; nothing is logged.
pub fn write_png(path: &Path, plot: &Plot) -> Result<()> {
    write_png_with_font(path, plot, font_family())
}

/// [`write_png`] with an explicit font family (`None`: draw no text).
fn write_png_with_font(path: &Path, plot: &Plot, font: Option<&str>) -> Result<()> {
    let tmp = temp_path(path)?;
    // `render` owns the bitmap backend, so the temporary file is complete (or abandoned) when it
    // returns.
    let result = render(&tmp, plot, font).and_then(|()| {
        std::fs::rename(&tmp, path)
            .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing the plot {}", path.display()))
}

/// A fresh `.NAME.PID.N.tmp.png` beside `path` (the `.png` suffix picks the encoder).
fn temp_path(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let Some(name) = path.file_name() else {
        bail!("the plot path {} has no file name", path.display());
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_name = format!(
        ".{}.{}.{n}.tmp.png",
        name.to_string_lossy(),
        std::process::id()
    );
    Ok(path.with_file_name(tmp_name))
}

/// The registered font family, searching for and loading the font on first use.
fn font_family() -> Option<&'static str> {
    static LOADED: OnceLock<bool> = OnceLock::new();
    let loaded = *LOADED.get_or_init(|| font_candidates().iter().any(|p| register_font(p)));
    loaded.then_some(FONT_FAMILY)
}

/// Where to look for a TTF, in order.
fn font_candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(p) = std::env::var_os("ANLLM_FONT").filter(|p| !p.is_empty()) {
        paths.push(PathBuf::from(p));
    }
    paths.push(
        crate::config::anllm_home()
            .join("fonts")
            .join("DejaVuSans.ttf"),
    );
    paths.push(PathBuf::from(
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    ));
    paths
}

/// Reads `path` and registers it as [`FONT_FAMILY`]; false if unreadable, too big or invalid.
fn register_font(path: &Path) -> bool {
    let small = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= MAX_FONT_BYTES);
    let Some(bytes) = small.then(|| std::fs::read(path).ok()).flatten() else {
        return false;
    };
    // plotters keeps `&'static` font data; this runs at most once per candidate per process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok()
}

fn draw_err(e: impl Display) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

/// The drawable points of `points`.
fn clean(points: &[(f64, f64)], log_y: bool) -> Vec<(f64, f64)> {
    points
        .iter()
        .copied()
        .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0))
        .collect()
}

/// Points outside the axes (the ranges cap huge values and a log axis's decades) drawn at
/// their edge: plotters' pixel arithmetic overflows on points far outside its ranges.
fn clamp_into(
    series: Vec<Vec<(f64, f64)>>,
    x: &Range<f64>,
    y: &Range<f64>,
) -> Vec<Vec<(f64, f64)>> {
    let inside = |(px, py): (f64, f64)| (px.clamp(x.start, x.end), py.clamp(y.start, y.end));
    series
        .into_iter()
        .map(|points| points.into_iter().map(inside).collect())
        .collect()
}

/// `[lo, hi]` of `values`, or `None` when empty.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A non-empty linear axis range around `[lo, hi]` (finite), padded by `pad` of its span.
fn linear_range(b: Option<(f64, f64)>, pad: f64) -> Range<f64> {
    let Some((lo, hi)) = b else { return 0.0..1.0 };
    // Halves first so that the span of huge values cannot overflow.
    let half_span = hi / 2.0 - lo / 2.0;
    let (lo, hi) = if half_span > 0.0 {
        (lo - 2.0 * pad * half_span, hi + 2.0 * pad * half_span)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    };
    let (lo, hi) = (lo.max(f64::MIN / 4.0), hi.min(f64::MAX / 4.0));
    if lo < hi { lo..hi } else { 0.0..1.0 }
}

/// Most decades a log axis spans.
const MAX_DECADES: i32 = 30;

/// A non-empty log axis range around `[lo, hi]` (positive, finite).
fn log_range(b: Option<(f64, f64)>) -> Range<f64> {
    let Some((lo, hi)) = b else { return 1.0..10.0 };
    let (lo, hi) = if hi > lo {
        // A twentieth of the span in log space on either side.
        let f = (hi / lo).powf(0.05).clamp(1.0 + 1e-9, 1e10);
        (lo / f, hi * f)
    } else {
        (lo / 2.0, hi * 2.0)
    };
    let hi = hi.min(f64::MAX / 4.0);
    // plotters walks every decade of a log axis: keep at most `MAX_DECADES` of them (lower
    // points fall off the chart rather than the drawing taking forever).
    let lo = lo.max(f64::MIN_POSITIVE).max(hi / 10f64.powi(MAX_DECADES));
    if lo < hi { lo..hi } else { 1.0..10.0 }
}

/// Tick label formatter for a linear axis over `range`, about `ticks` labels.
fn linear_formatter(range: &Range<f64>, ticks: usize) -> impl Fn(&f64) -> String + use<> {
    let step = ((range.end - range.start) / ticks as f64).abs();
    let step_exp = if step > 0.0 && step.is_finite() {
        step.log10().floor() as i32
    } else {
        0
    };
    let max_abs = range.start.abs().max(range.end.abs());
    let max_exp = if max_abs > 0.0 {
        max_abs.log10().floor() as i32
    } else {
        0
    };
    let scientific = !(-4..6).contains(&max_exp);
    move |&v: &f64| {
        if scientific {
            let prec = (max_exp - step_exp).clamp(0, 12) as usize;
            format!("{v:.prec$e}")
        } else {
            let decimals = (1 - step_exp).clamp(0, 15) as usize;
            trim_zeros(format!("{v:.decimals$}"))
        }
    }
}

/// Tick labels for a log axis: three significant digits.
fn log_label(&v: &f64) -> String {
    let exp = if v > 0.0 { v.log10().floor() as i32 } else { 0 };
    if !(-3..5).contains(&exp) {
        format!("{v:.1e}")
    } else {
        let decimals = (2 - exp).clamp(0, 15) as usize;
        trim_zeros(format!("{v:.decimals$}"))
    }
}

/// `"2.500"` → `"2.5"`, `"3.000"` → `"3"`, `"-0"` → `"0"`.
fn trim_zeros(s: String) -> String {
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".to_string() } else { s }
}

/// Draws `plot` into the PNG file `path` (its extension picks the encoder).
fn render(path: &Path, plot: &Plot, font: Option<&str>) -> Result<()> {
    let series: Vec<Vec<(f64, f64)>> = plot
        .series
        .iter()
        .map(|s| clean(&s.points, plot.log_y))
        .collect();
    let all = || series.iter().flatten();
    let x_range = linear_range(bounds(all().map(|p| p.0)), 0.02);
    let y_bounds = bounds(all().map(|p| p.1));
    let y_range = match plot.log_y {
        true => log_range(y_bounds),
        false => linear_range(y_bounds, 0.05),
    };
    let series = clamp_into(series, &x_range, &y_range);

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    if plot.log_y {
        draw_chart(
            &root,
            plot,
            &series,
            x_range,
            y_range.log_scale(),
            &log_label,
            font,
        )?;
    } else {
        let y_fmt = linear_formatter(&y_range, 8);
        draw_chart(&root, plot, &series, x_range, y_range, &y_fmt, font)?;
    }
    root.present().map_err(draw_err)
}

/// The chart itself, for a linear or logarithmic y coordinate.
fn draw_chart<Y>(
    root: &DrawingArea<BitMapBackend, Shift>,
    plot: &Plot,
    series: &[Vec<(f64, f64)>],
    x_range: Range<f64>,
    y_range: Y,
    y_fmt: &dyn Fn(&f64) -> String,
    font: Option<&str>,
) -> Result<()>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let x_fmt = linear_formatter(&x_range, 10);
    let mut builder = ChartBuilder::on(root);
    builder.margin(18);
    if let Some(f) = font {
        if !plot.title.is_empty() {
            builder.caption(plot.title, (f, 24));
        }
        builder.x_label_area_size(if plot.x_label.is_empty() { 30 } else { 52 });
        builder.y_label_area_size(if plot.y_label.is_empty() { 64 } else { 88 });
    }
    let mut chart = builder
        .build_cartesian_2d(x_range, y_range)
        .map_err(draw_err)?;

    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(RGBColor(205, 205, 205))
        .light_line_style(RGBColor(238, 238, 238))
        .axis_style(BLACK.stroke_width(1))
        .x_labels(10)
        .y_labels(8);
    if let Some(f) = font {
        mesh.label_style((f, 14))
            .axis_desc_style((f, 16))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(y_fmt);
        if !plot.x_label.is_empty() {
            mesh.x_desc(plot.x_label);
        }
        if !plot.y_label.is_empty() {
            mesh.y_desc(plot.y_label);
        }
    }
    mesh.draw().map_err(draw_err)?;
    if font.is_none() {
        // Without label areas plotters draws no axis lines: frame the plotting area instead.
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        let frame = [(xs.start, ys.start), (xs.end - 1, ys.end - 1)];
        root.draw(&Rectangle::new(frame, BLACK.stroke_width(1)))
            .map_err(draw_err)?;
    }

    let mut labelled = false;
    for (i, (s, points)) in plot.series.iter().zip(series).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line = color.stroke_width(2);
        let anno = chart
            .draw_series(LineSeries::new(points.iter().copied(), line))
            .map_err(draw_err)?;
        if font.is_some() && !s.name.is_empty() {
            labelled = true;
            anno.label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 22, y)], line));
        }
        if points.len() == 1 {
            // A lone point draws no line segment: mark it.
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(draw_err)?;
        }
    }
    if let (Some(f), true) = (font, labelled) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((f, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()
            .map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
