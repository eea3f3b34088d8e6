//! Tests of the PNG plots: odd data never panics nor hangs, and files are valid PNGs.

use super::*;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

fn series(name: &str, points: Vec<(f64, f64)>) -> Series {
    Series {
        name: name.to_string(),
        points,
    }
}

fn loss_curves() -> Vec<Series> {
    let train = (0..=200)
        .map(|i| {
            let x = i as f64 * 5.0;
            let noise = 0.15 * ((i * 7919 % 97) as f64 / 97.0 - 0.5);
            (x, 2.1 + 8.0 * (-x / 180.0).exp() + noise)
        })
        .collect();
    let val = (0..=10)
        .map(|i| {
            let x = i as f64 * 100.0;
            (x, 2.3 + 8.0 * (-x / 200.0).exp())
        })
        .collect();
    vec![series("train", train), series("validation", val)]
}

fn plot<'a>(series: &'a [Series], log_y: bool) -> Plot<'a> {
    Plot {
        title: "Training loss",
        x_label: "step",
        y_label: "loss",
        series,
        log_y,
    }
}

/// Writes with `font`, checks the PNG signature and that no temporary file is left.
fn check(plot: &Plot, font: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loss.png");
    write_png_with_font(&path, plot, font).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > PNG_SIGNATURE.len());
    assert_eq!(bytes[..8], PNG_SIGNATURE);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["loss.png"], "temporary file left behind");
}

/// Both with the machine's font (when any) and without.
fn check_both(plot: &Plot) {
    check(plot, font_family());
    check(plot, None);
}

#[test]
fn plot_normal_data() {
    let s = loss_curves();
    check_both(&plot(&s, false));
    check_both(&plot(&s, true));
}

#[test]
fn plot_empty() {
    check_both(&plot(&[], false));
    check_both(&plot(&[], true));
    let s = [series("empty", vec![]), series("", vec![])];
    check_both(&plot(&s, false));
    check_both(&plot(&s, true));
}

#[test]
fn plot_single_point() {
    for p in [(3.0, 2.5), (0.0, 0.0), (-1.0, -7.0)] {
        let s = [series("one", vec![p])];
        check_both(&plot(&s, false));
        check_both(&plot(&s, true));
    }
}

#[test]
fn plot_nan_inf_and_nonpositive() {
    let s = [
        series(
            "bad",
            vec![
                (0.0, f64::NAN),
                (1.0, 3.0),
                (f64::NAN, 2.0),
                (2.0, f64::INFINITY),
                (3.0, 0.0),
                (4.0, -1.0),
                (f64::NEG_INFINITY, 1.0),
                (5.0, 1.5),
            ],
        ),
        series("all nan", vec![(f64::NAN, f64::NAN); 3]),
    ];
    check_both(&plot(&s, false));
    check_both(&plot(&s, true));
}

#[test]
fn plot_constant_and_extreme_values() {
    let cases = [
        vec![(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)],
        vec![(5.0, 1.0), (5.0, 3.0)],
        vec![(0.0, 0.0), (1.0, 0.0)],
        vec![(0.0, 1.0), (1.0, 1.0 + 1e-12)],
        vec![(0.0, 1e-300), (1.0, 1e300)],
        vec![(-f64::MAX, -f64::MAX), (f64::MAX, f64::MAX)],
        vec![(f64::MIN_POSITIVE, 5e-324), (1.0, 2e-323)],
    ];
    for points in cases {
        let s = [series("c", points)];
        check_both(&plot(&s, false));
        check_both(&plot(&s, true));
    }
}

#[test]
fn plot_many_series_and_no_text() {
    let s: Vec<Series> = (0..13)
        .map(|k| {
            let pts = (0..50).map(|i| (i as f64, (i * (k + 1)) as f64)).collect();
            series(&format!("series {k}"), pts)
        })
        .collect();
    let untitled = Plot {
        title: "",
        x_label: "",
        y_label: "",
        series: &s,
        log_y: false,
    };
    check_both(&untitled);
}

#[test]
fn plot_errors_on_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("loss.png");
    assert!(write_png(&path, &plot(&loss_curves(), false)).is_err());
    assert!(write_png(Path::new("/"), &plot(&[], false)).is_err());
}

#[test]
fn plot_labels() {
    let f = linear_formatter(&(0.0..10.0), 8);
    assert_eq!(f(&2.5), "2.5");
    assert_eq!(f(&3.0), "3");
    let f = linear_formatter(&(0.0..1e7), 8);
    assert_eq!(f(&2e6), "2.0e6");
    assert_eq!(log_label(&0.5), "0.5");
    assert_eq!(log_label(&20.0), "20");
    assert_eq!(log_label(&1e-5), "1.0e-5");
}

/// Writes the sample plots to `$ANLLM_PLOT_SAMPLE_DIR` for a look by eye.
#[test]
fn plot_sample_to_dir() {
    let Some(dir) = std::env::var_os("ANLLM_PLOT_SAMPLE_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let s = loss_curves();
    write_png(&dir.join("plot-sample.png"), &plot(&s, false)).unwrap();
    write_png(&dir.join("plot-sample-log.png"), &plot(&s, true)).unwrap();
    write_png_with_font(&dir.join("plot-sample-nofont.png"), &plot(&s, false), None).unwrap();
    let one = [series("one", vec![(3.0, 2.5)])];
    write_png(&dir.join("plot-sample-one.png"), &plot(&one, false)).unwrap();
}
