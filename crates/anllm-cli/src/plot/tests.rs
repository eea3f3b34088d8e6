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

/// A decoded PNG: width, height and RGB pixels.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

fn decode(path: &Path) -> Image {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).unwrap();
    assert_eq!(
        (frame.color_type, frame.bit_depth),
        (png::ColorType::Rgb, png::BitDepth::Eight),
        "{}",
        path.display()
    );
    let rgb = buf[..frame.buffer_size()]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Image {
        width: frame.width,
        height: frame.height,
        rgb,
    }
}

impl Image {
    /// Pixels of exactly `color`.
    fn count(&self, color: RGBColor) -> usize {
        let c = [color.0, color.1, color.2];
        self.rgb.iter().filter(|&&p| p == c).count()
    }
}

/// Writes the sample plots (to `$ANLLM_PLOT_SAMPLE_DIR` when set, to keep them for a look by
/// eye; else to a temporary folder) and checks what they show: a white chart of the promised
/// size with each series in its palette colour (measured: 2100–3400 pixels per loss curve).
#[test]
fn plot_samples_draw_each_series_in_its_colour() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("ANLLM_PLOT_SAMPLE_DIR")
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let s = loss_curves();
    let one = [series("one", vec![(3.0, 2.5)])];
    let draw = |name: &str, p: &Plot, font: Option<&str>| {
        let path = dir.join(name);
        write_png_with_font(&path, p, font).unwrap();
        let image = decode(&path);
        assert_eq!((image.width, image.height), (WIDTH, HEIGHT), "{name}");
        let white = image.count(WHITE);
        assert!(
            2 * white > image.rgb.len(),
            "{name}: only {white} white pixels"
        );
        image
    };
    let linear = draw("plot-sample.png", &plot(&s, false), font_family());
    let log = draw("plot-sample-log.png", &plot(&s, true), font_family());
    let nofont = draw("plot-sample-nofont.png", &plot(&s, false), None);
    for (name, image) in [("linear", &linear), ("log", &log), ("no font", &nofont)] {
        for (k, &colour) in PALETTE[..2].iter().enumerate() {
            let n = image.count(colour);
            assert!(
                n >= 1000,
                "{name}: series {k} has only {n} pixels of its colour"
            );
        }
    }
    assert!(linear.rgb != log.rgb, "the log axis changed nothing");
    if font_family().is_some() {
        assert!(linear.rgb != nofont.rgb, "the font drew no text");
    }
    let point = draw("plot-sample-one.png", &plot(&one, false), font_family());
    assert!(point.count(PALETTE[0]) > 0, "the single point is not drawn");
    assert_eq!(point.count(PALETTE[1]), 0, "a second series appeared");
}
