//! Charts and analysis of runs: content checks on synthetic, deterministic runs.
//!
//! To look at the charts: `cargo run -p experiments --example charts -- <folder>`.

use std::time::Instant;

use experiments::report::analysis::{
    calibration, flips_before_after, flips_between_runs, hyperparameter_diff, letter_accuracy, run_calibration,
    split_metrics, summarize, write_samples_csv, RunData, SampleResult, CSV_COLUMNS,
};
use experiments::report::plots::{
    chart_png, chart_svg, indexed, label_prob_slope_svg, loss_epochs_svg, loss_steps_svg, metrics_svg, palette_hex,
    render_comparison, render_run_charts, summary_table, Chart,
};
use experiments::vocab::{Split, Stage};

#[path = "support/runs.rs"]
mod runs;
use runs::{synth_run, three_runs};

/// `<polyline .../>` elements whose stroke is `hex`.
fn polylines<'a>(svg: &'a str, hex: &str) -> Vec<&'a str> {
    let needle = format!("stroke=\"{hex}\"");
    svg.lines().filter(|l| l.starts_with("<polyline") && l.contains(&needle)).collect()
}

fn points_in(polyline: &str) -> usize {
    polyline.split("points=\"").nth(1).and_then(|s| s.split('"').next()).map_or(0, |p| p.split_whitespace().count())
}

/// The label as the SVG writes it.
fn escaped(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn decode(png: &[u8]) -> image::RgbImage {
    image::load_from_memory(png).expect("PNG decodes").to_rgb8()
}

fn distinct_colours(img: &image::RgbImage) -> usize {
    let mut set = std::collections::HashSet::new();
    for p in img.pixels() {
        set.insert(p.0);
    }
    set.len()
}

/// Pixels within `tol` of `hex` (per channel).
fn pixels_like(img: &image::RgbImage, hex: &str, tol: i32) -> usize {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).expect("hex");
    let (r, g, b) = ((v >> 16) as i32, ((v >> 8) & 0xFF) as i32, (v & 0xFF) as i32);
    img.pixels()
        .filter(|p| {
            (p.0[0] as i32 - r).abs() <= tol && (p.0[1] as i32 - g).abs() <= tol && (p.0[2] as i32 - b).abs() <= tol
        })
        .count()
}

// ---------------------------------------------------------------------------------------------------------------
// Charts
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn loss_chart_has_one_line_per_run_in_its_colour_and_names_runs() {
    let mut runs = three_runs();
    runs[1].label = "run 2 · <lr> 3e-5 & wd 0.1".to_string();
    let svg = loss_steps_svg(&runs).expect("svg");
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    for (i, r) in runs.iter().enumerate() {
        let hex = palette_hex(i);
        let lines = polylines(&svg, &hex);
        assert_eq!(lines.len(), 1, "run {i} ({hex}) should have exactly one polyline");
        assert_eq!(points_in(lines[0]), r.step_losses.len(), "every step is on the line");
        assert!(svg.contains(&escaped(&r.label)), "legend names run {i}: {}", r.label);
        // The legend swatch is a filled rectangle in the same colour.
        assert!(svg.contains(&format!("fill=\"{hex}\"")), "legend swatch of run {i}");
    }
    // No fourth run colour.
    assert!(polylines(&svg, &palette_hex(3)).is_empty());
    assert!(svg.contains("Training loss per step"));
    assert!(svg.contains(">\nstep\n</text>") || svg.contains("step"), "x axis label");
}

#[test]
fn epoch_chart_has_solid_train_and_dashed_heldout_lines() {
    let runs = three_runs();
    let svg = loss_epochs_svg(&runs).expect("svg");
    for i in 0..runs.len() {
        let lines = polylines(&svg, &palette_hex(i));
        // One solid train line through all 6 epochs; the held-out line is drawn as dashes (short pieces).
        let full: Vec<_> = lines.iter().filter(|l| points_in(l) == 6).collect();
        assert_eq!(full.len(), 1, "run {i}: one solid train line");
        assert!(lines.len() > 3, "run {i}: dashed held-out line");
    }
    assert!(svg.contains("held-out") && svg.contains("train"));
}

#[test]
fn run_colour_is_the_same_in_every_chart() {
    let runs = three_runs();
    let loss = loss_steps_svg(&runs).expect("loss");
    let metrics = metrics_svg(&runs).expect("metrics");
    let letters = chart_svg(Chart::Letters, &indexed(&runs)).expect("letters");
    let calib = chart_svg(Chart::Calibration, &indexed(&runs)).expect("calibration");
    for (i, run) in runs.iter().enumerate() {
        let hex = palette_hex(i);
        assert_eq!(polylines(&loss, &hex).len(), 1);
        for (name, svg) in [("metrics", &metrics), ("letters", &letters), ("calibration", &calib)] {
            assert!(svg.contains(&format!("fill=\"{hex}\"")), "{name} uses {hex} for run {i}");
            assert!(svg.contains(&escaped(&run.label)), "{name} names run {i}");
        }
    }
    // Metrics: 4 panels × 2 bars (before, after) per run; "after" bars in the run colour.
    let after_bars = metrics
        .lines()
        .filter(|l| l.starts_with("<rect") && l.contains(&format!("fill=\"{}\"", palette_hex(0))))
        .count();
    assert_eq!(after_bars, 4 + 1, "four after-bars and one legend swatch for run 0");
    // A single run's charts keep the colour of its index.
    let one = label_prob_slope_svg(&runs[2], 7).expect("slope");
    assert_eq!(polylines(&one, &palette_hex(7)).len(), 2 + 1, "mean line per panel + legend line");
}

#[test]
fn letters_chart_has_one_bar_per_letter_and_stage_in_the_run_colour() {
    let run = synth_run(1, 300, 60, 3);
    let svg = chart_svg(Chart::Letters, &[(3, &run)]).expect("letters");
    assert!(svg.contains("Accuracy by answer letter"));
    let rects =
        |hex: &str| svg.lines().filter(|l| l.starts_with("<rect") && l.contains(&format!("fill=\"{hex}\""))).count();
    // Two panels (train, held-out) × five letters, plus the legend swatch: after in the run's colour, before grey.
    assert_eq!(rects(&palette_hex(3)), 2 * 5 + 1, "after bars in colour 3");
    assert_eq!(rects("#9A9A9A"), 2 * 5 + 1, "before bars in grey");
    for split in Split::ALL {
        for l in letter_accuracy(&run, Some(split)) {
            assert!(svg.contains(&format!("{} (n={})", l.letter, l.n)), "tick of letter {} ({split:?})", l.letter);
        }
    }
    assert!(svg.contains(&escaped(&run.label)));
}

#[test]
fn calibration_chart_draws_one_reliability_line_per_split_and_names_the_ece() {
    let run = synth_run(2, 300, 60, 3);
    let svg = chart_svg(Chart::Calibration, &[(5, &run)]).expect("calibration");
    assert!(svg.contains("Calibration (reliability diagram)"));
    assert_eq!(polylines(&svg, &palette_hex(5)).len(), 2, "one reliability line per split");
    assert_eq!(polylines(&svg, "#9A9A9A").len(), 2, "the 'before' line per split");
    let ece = |stage| {
        let [t, h] = Split::ALL.map(|s| format!("{:.3}", run_calibration(&run, stage, Some(s)).ece.expect("ece")));
        format!("{t} / {h}")
    };
    assert!(svg.contains(&ece(Stage::After)), "ECE after: {}", ece(Stage::After));
    assert!(svg.contains(&ece(Stage::Before)), "ECE before: {}", ece(Stage::Before));
}

#[test]
fn histogram_of_one_run_shows_the_means_before_and_after() {
    let run = synth_run(3, 300, 60, 3);
    let svg = chart_svg(Chart::LabelProbHist, &[(2, &run)]).expect("hist");
    assert!(svg.contains("Distribution of the probability of the right caption"));
    assert_eq!(polylines(&svg, &palette_hex(2)).len(), 2, "one 'after' outline per split");
    for split in Split::ALL {
        let m = split_metrics(&run, Some(split));
        let (b, a) = (m.mean_label_prob_before.expect("before"), m.mean_label_prob_after.expect("after"));
        assert!(svg.contains(&format!("mean {b:.2} → {a:.2}")), "{split:?}: mean {b:.2} → {a:.2}");
    }
}

#[test]
fn png_decodes_with_the_right_size_and_is_not_blank() {
    let runs = three_runs();
    let png = chart_png(Chart::LossSteps, &indexed(&runs)).expect("png");
    let img = decode(&png);
    assert_eq!(img.dimensions(), (900, 520));
    assert!(distinct_colours(&img) > 50, "anti-aliased lines and text give many colours");
    for i in 0..runs.len() {
        assert!(pixels_like(&img, &palette_hex(i), 8) > 200, "run {i} colour is drawn");
    }
    // Mostly white background, but far from all of it.
    let white = pixels_like(&img, "#FFFFFF", 0);
    let total = (img.width() * img.height()) as usize;
    assert!(white > total / 2 && white < total * 97 / 100, "{white} of {total} white");
}

#[test]
fn render_run_charts_writes_every_chart_as_svg_and_png() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = synth_run(1, 200, 100, 4);
    let paths = render_run_charts(&run, 4, dir.path()).expect("render");
    assert_eq!(paths.len(), 14);
    for chart in Chart::ALL {
        let svg = dir.path().join(format!("{}.svg", chart.name()));
        let png = dir.path().join(format!("{}.png", chart.name()));
        assert!(paths.contains(&svg) && paths.contains(&png));
        let text = std::fs::read_to_string(&svg).expect("svg");
        assert!(text.contains(chart.title().split(' ').next().unwrap_or("")), "{} has its title", chart.name());
        let img = decode(&std::fs::read(&png).expect("png"));
        assert!(img.width() >= 900 && img.height() >= 520);
        assert!(distinct_colours(&img) > 20, "{} is not blank", chart.name());
        assert!(pixels_like(&img, &palette_hex(4), 6) > 50, "{} draws the run in colour 4", chart.name());
    }
}

#[test]
fn fifty_runs_render() {
    let runs: Vec<RunData> = (0..50).map(|i| synth_run(i, 100, 300, 5)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let paths = render_comparison(&runs, dir.path()).expect("render");
    assert_eq!(paths.len(), 14);
    eprintln!("50 runs: every chart (svg + png) in {:?}", t.elapsed());
    let svg = std::fs::read_to_string(dir.path().join("loss_steps.svg")).expect("svg");
    let mut colours = std::collections::HashSet::new();
    for i in 0..50 {
        assert_eq!(polylines(&svg, &palette_hex(i)).len(), 1, "run {i}");
        colours.insert(palette_hex(i));
        // Names may be cut to fit the legend, but each starts there.
        assert!(svg.contains(&format!(">\nrun {i} ·")), "legend entry of run {i}");
    }
    assert_eq!(colours.len(), 50, "50 distinct colours");
    let img = decode(&std::fs::read(dir.path().join("metrics.png")).expect("png"));
    assert!(img.width() > 900, "the legend wraps into more columns");
}

#[test]
fn ten_thousand_samples_render_quickly_and_cap_the_slope_chart() {
    let run = synth_run(1, 10_000, 5_000, 10);
    let t = Instant::now();
    let svg = label_prob_slope_svg(&run, 0).expect("slope");
    // Sample lines are the translucent ones (mean lines and legend keys are opaque).
    let sample_lines = |svg: &str, split_x: Option<(i32, i32)>| {
        svg.lines()
            .filter(|l| l.starts_with("<polyline") && l.contains("opacity=\"0."))
            .filter(|l| {
                split_x.is_none_or(|(lo, hi)| {
                    let x: i32 = l
                        .split("points=\"")
                        .nth(1)
                        .and_then(|p| p.split(',').next())
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(-1);
                    lo <= x && x < hi
                })
            })
            .count()
    };
    assert_eq!(sample_lines(&svg, None), 2000);
    // Both panels (train left, held-out right) get lines, in proportion to their size (8,000 : 2,000).
    let (train, held) = (sample_lines(&svg, Some((0, 340))), sample_lines(&svg, Some((340, 900))));
    assert!(train > 1400 && held > 250, "train {train}, held-out {held}");
    assert!(svg.contains("showing 2,000 of 10,000 samples"));
    let t_png = Instant::now();
    let png = chart_png(Chart::LabelProbSlope, &[(0, &run)]).expect("png");
    let png_time = t_png.elapsed();
    assert_eq!(decode(&png).dimensions(), (900, 520));
    eprintln!("10k samples: slope svg+png in {:?} (png {:?})", t.elapsed(), png_time);
    assert!(png_time.as_secs_f64() < 5.0, "slope PNG took {png_time:?}");
    // Per-step loss: 5,000 steps are averaged down.
    let loss = chart_svg(Chart::LossSteps, &[(0, &run)]).expect("loss");
    let l = polylines(&loss, &palette_hex(0));
    assert_eq!(l.len(), 1);
    assert!(points_in(l[0]) <= 1200);
    assert!(loss.contains("averaged over windows"));
    for chart in Chart::ALL {
        let t = Instant::now();
        chart_png(chart, &[(0, &run)]).expect("png");
        assert!(t.elapsed().as_secs_f64() < 5.0, "{} PNG took {:?}", chart.name(), t.elapsed());
    }
}

#[test]
fn empty_runs_and_runs_without_data_still_render() {
    let empty = RunData { id: 9, label: "empty".into(), ..Default::default() };
    for chart in Chart::ALL {
        let svg = chart_svg(chart, &[(0, &empty)]).expect("svg");
        assert!(svg.contains("empty"), "{}", chart.name());
        chart_png(chart, &[]).expect("png of no runs");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Analysis
// ---------------------------------------------------------------------------------------------------------------

fn sample(id: i64, split: Split, label: usize, before: [f32; 3], after: [f32; 3]) -> SampleResult {
    SampleResult {
        sample_id: id,
        split,
        label,
        choices: vec!["a dog".into(), "a cat".into(), "a car".into()],
        filename: format!("{id}.png"),
        before: Some(before.to_vec()),
        after: Some(after.to_vec()),
    }
}

const R0: [f32; 3] = [0.7, 0.2, 0.1]; // top choice A
const R1: [f32; 3] = [0.2, 0.7, 0.1]; // top choice B
const R2: [f32; 3] = [0.1, 0.2, 0.7]; // top choice C

#[test]
fn flips_two_by_two_by_hand() {
    let a = RunData {
        id: 1,
        samples: vec![
            sample(1, Split::Train, 0, R0, R0),   // right → right
            sample(2, Split::Train, 0, R0, R1),   // right → wrong
            sample(3, Split::Train, 1, R0, R1),   // wrong → right
            sample(4, Split::Heldout, 2, R0, R1), // wrong → wrong
            sample(5, Split::Heldout, 2, R1, R2), // wrong → right
        ],
        ..Default::default()
    };
    let t = flips_before_after(&a, None);
    assert_eq!([t.right_right, t.right_wrong, t.wrong_right, t.wrong_wrong], [1, 1, 2, 1]);
    assert_eq!(t.gained.len(), 2);
    assert_eq!(t.lost[0].sample_id, 2);
    assert!((t.lost[0].delta + 0.5).abs() < 1e-6);
    // Both gains are +0.5 and +0.6: largest first.
    assert_eq!(t.gained.iter().map(|f| f.sample_id).collect::<Vec<_>>(), vec![5, 3]);
    let held = flips_before_after(&a, Some(Split::Heldout));
    assert_eq!([held.right_right, held.right_wrong, held.wrong_right, held.wrong_wrong], [0, 0, 1, 1]);

    // Run B (after) against run A (after), matched by sample id; sample 7 only in B.
    let b = RunData {
        id: 2,
        samples: vec![
            sample(5, Split::Heldout, 2, R0, R0), // A right → B wrong
            sample(4, Split::Heldout, 2, R0, R2), // A wrong → B right
            sample(1, Split::Train, 0, R0, R0),   // right → right
            sample(7, Split::Train, 0, R0, R0),
        ],
        ..Default::default()
    };
    let t = flips_between_runs(&a, &b, None);
    assert_eq!([t.right_right, t.right_wrong, t.wrong_right, t.wrong_wrong], [1, 1, 1, 0]);
    assert_eq!(t.lost[0].sample_id, 5);
    assert_eq!(t.gained[0].sample_id, 4);
    assert_eq!((t.gained[0].choice_a, t.gained[0].choice_b), (1, 2));
}

#[test]
fn per_letter_accuracy_catches_a_positional_shortcut() {
    // After fine-tuning the model always answers B.
    let samples = (0..30)
        .map(|i| {
            let label = i % 3;
            let before = [R0, R1, R2][label];
            sample(i as i64, Split::Train, label, before, R1)
        })
        .collect();
    let run = RunData { id: 1, samples, ..Default::default() };
    let la = letter_accuracy(&run, Some(Split::Train));
    assert_eq!(la.len(), 5);
    assert_eq!(la.iter().map(|l| l.letter.as_str()).collect::<Vec<_>>(), vec!["A", "B", "C", "D", "E"]);
    assert_eq!(la[0].n, 10);
    assert_eq!(la[0].accuracy(Stage::Before), Some(1.0));
    assert_eq!(la[0].accuracy(Stage::After), Some(0.0));
    assert_eq!(la[1].accuracy(Stage::After), Some(1.0));
    assert_eq!(la[2].accuracy(Stage::After), Some(0.0));
    assert_eq!(la[1].predicted_after, 30);
    assert_eq!(la[3].n, 0);
    assert_eq!(la[3].accuracy(Stage::After), None);
    assert!(letter_accuracy(&run, Some(Split::Heldout)).iter().all(|l| l.n == 0));
}

#[test]
fn ece_of_a_perfectly_calibrated_model_is_zero() {
    // Confidence 0.9: 9 of 10 right; 0.5: 2 of 4 right; 0.7: 7 of 10 right.
    let mut items: Vec<(Vec<f32>, usize)> = Vec::new();
    for (conf, n, right) in [(0.9f32, 10, 9), (0.5, 4, 2), (0.7, 10, 7)] {
        for k in 0..n {
            let probs = vec![conf, 1.0 - conf];
            items.push((probs, if k < right { 0 } else { 1 }));
        }
    }
    let c = calibration(items.iter().map(|(p, l)| (p.as_slice(), *l)), 10);
    assert_eq!(c.n, 24);
    assert!(c.ece.expect("ece") < 1e-6);
    assert_eq!(c.bins.len(), 10);
    assert_eq!(c.bins[9].count, 10);
    assert_eq!(c.bins[7].accuracy, Some(0.7));
    // Overconfident: confidence 0.9, half right → ECE 0.4.
    let c = calibration((0..10).map(|k| (&[0.9f32, 0.1][..], k % 2)), 10);
    assert!((c.ece.expect("ece") - 0.4).abs() < 1e-6);
}

#[test]
fn summary_metrics_and_table() {
    let run = RunData {
        id: 3,
        label: "run 3 · adamw lr 1e-4".into(),
        samples: vec![
            sample(1, Split::Train, 0, R1, R0),
            sample(2, Split::Train, 1, R1, R1),
            sample(3, Split::Heldout, 2, R0, R2),
            sample(4, Split::Heldout, 2, R0, R0),
        ],
        ..Default::default()
    };
    let s = summarize(&run);
    assert_eq!(s.train.n, 2);
    assert_eq!(s.train.accuracy_before, Some(0.5));
    assert_eq!(s.train.accuracy_after, Some(1.0));
    assert!((s.train.mean_label_prob_before.expect("p") - 0.45).abs() < 1e-6);
    assert!((s.train.mean_label_prob_after.expect("p") - 0.7).abs() < 1e-6);
    assert_eq!(s.heldout.accuracy_before, Some(0.0));
    assert_eq!(s.heldout.accuracy_after, Some(0.5));
    let table = summary_table(std::slice::from_ref(&run));
    assert!(table.contains("run 3 · adamw lr 1e-4"), "{table}");
    assert!(table.contains("0.450 → 0.700"), "{table}");
    assert!(table.contains("50.0% → 100.0%"), "{table}");
    assert!(table.contains("held-out") && table.contains("accuracy"), "{table}");
    assert_eq!(table.lines().count(), 3);
}

#[test]
fn hyperparameter_diff_lists_only_differing_keys() {
    let runs = three_runs();
    let keys: Vec<String> = hyperparameter_diff(&runs).into_iter().map(|d| d.key).collect();
    // Runs 1..3: optimizer adam/adamw/adam, lr 3e-5/1e-5/1e-4, freeze.text true only for run 1.
    assert_eq!(keys, vec!["freeze.text", "lr", "optimizer"]);
    let same = hyperparameter_diff(&[runs[0].clone(), runs[0].clone()]);
    assert!(same.is_empty());
}

#[test]
fn csv_has_one_row_per_run_and_sample() {
    let runs: Vec<RunData> = (1..=2).map(|i| synth_run(i, 25, 10, 2)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("samples.csv");
    write_samples_csv(&path, &runs).expect("csv");
    let mut rd = csv::Reader::from_path(&path).expect("read");
    let header: Vec<String> = rd.headers().expect("header").iter().map(String::from).collect();
    let mut expected: Vec<String> = CSV_COLUMNS.iter().map(|s| s.to_string()).collect();
    for stage in ["before", "after"] {
        expected.extend(["A", "B", "C", "D", "E"].iter().map(|l| format!("p_{stage}_{l}")));
    }
    assert_eq!(header, expected);
    let rows: Vec<csv::StringRecord> = rd.records().collect::<Result<_, _>>().expect("rows");
    assert_eq!(rows.len(), 50);
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    let first = &rows[0];
    let s = &runs[0].samples[0];
    assert_eq!(&first[col("run")], "1");
    assert_eq!(&first[col("sample_id")], s.sample_id.to_string());
    assert_eq!(&first[col("split")], "heldout");
    assert_eq!(&first[col("label")], ["A", "B", "C", "D", "E"][s.label]);
    let pb: f64 = first[col("p_label_before")].parse().expect("number");
    assert!((pb - f64::from(s.before.as_ref().expect("b")[3])).abs() < 1e-5);
    let d: f64 = first[col("delta")].parse().expect("number");
    assert!((d - s.delta().expect("delta")).abs() < 1e-5);
    assert!(["0", "1"].contains(&&first[col("correct_after")]));
    assert_eq!(&rows[25][col("run")], "2");
    let sum: f64 = (0..5)
        .map(|k| rows[3][col(&format!("p_after_{}", ["A", "B", "C", "D", "E"][k]))].parse::<f64>().expect("p"))
        .sum();
    assert!((sum - 1.0).abs() < 1e-4);
}
