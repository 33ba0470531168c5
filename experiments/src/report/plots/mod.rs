//! Charts of runs, drawn with plotters: SVG strings for the GUI, PNG files for reports.
//!
//! Every chart is first computed into a figure (plain numbers: panels, bars, lines, legend) and then drawn by
//! one generic function over plotters' `DrawingBackend`, once as SVG and once as PNG, so the two always show the
//! same thing:
//!
//! - `figure`: the description of a chart (panels, axes, series, legend) and the colours, [`palette`] among them;
//! - `charts`: one builder per [`Chart`], from runs to a figure;
//! - `drawing`: a figure to SVG or PNG.
//!
//! Charts ([`Chart`]): loss per step, loss per epoch (train solid, held-out dashed), p(label) before → after per
//! sample (slope chart), its distribution before vs after (histogram), mean p(label) and accuracy before/after ×
//! train/held-out (grouped bars), reliability diagram with ECE, accuracy per answer letter A–E; and a sweep's
//! held-out metric against each swept hyperparameter ([`SweepData`]).
//!
//! Each run has ONE colour in every chart: [`palette`]`(run_index)`. The legend sits outside the plot, on the
//! right, so it never covers data; with many runs it wraps into more columns and the image grows.

mod charts;
mod drawing;
mod figure;

use std::path::{Path, PathBuf};

pub use charts::{SLOPE_CAP, STEP_POINTS_CAP};
pub use figure::{hex, palette, palette_hex};

use crate::report::analysis::{pad, summarize, RunData};
use crate::{Error, Result};
use drawing::{png_of, svg_of};

/// The charts, each with a stable file name ([`Chart::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chart {
    /// Training loss after each optimizer step, one line per run.
    LossSteps,
    /// Loss per epoch: train solid, held-out dashed.
    LossEpochs,
    /// p(label) before → after: one line per sample (one run) or per run's mean (several runs).
    LabelProbSlope,
    /// Distribution of p(label) before vs after.
    LabelProbHist,
    /// Mean p(label) and accuracy, before/after, train/held-out, runs side by side.
    Metrics,
    /// Reliability diagram (accuracy vs top-choice confidence) with ECE.
    Calibration,
    /// Accuracy per answer letter A–E, before/after.
    Letters,
    /// A sweep's held-out metric against each swept hyperparameter (drawn from [`SweepData`], not from runs:
    /// not in [`Chart::ALL`]).
    Sweep,
}

impl Chart {
    /// Every chart, in the order they are written.
    pub const ALL: [Chart; 7] = [
        Chart::LossSteps,
        Chart::LossEpochs,
        Chart::LabelProbSlope,
        Chart::LabelProbHist,
        Chart::Metrics,
        Chart::Calibration,
        Chart::Letters,
    ];

    /// File stem: `loss_steps`, `loss_epochs`, `label_prob_slope`, `label_prob_hist`, `metrics`, `calibration`,
    /// `letters`.
    pub fn name(self) -> &'static str {
        match self {
            Chart::LossSteps => "loss_steps",
            Chart::LossEpochs => "loss_epochs",
            Chart::LabelProbSlope => "label_prob_slope",
            Chart::LabelProbHist => "label_prob_hist",
            Chart::Metrics => "metrics",
            Chart::Calibration => "calibration",
            Chart::Letters => "letters",
            Chart::Sweep => "sweep",
        }
    }

    /// The chart's title.
    pub fn title(self) -> &'static str {
        match self {
            Chart::LossSteps => "Training loss per step",
            Chart::LossEpochs => "Loss per epoch",
            Chart::LabelProbSlope => "Probability of the right caption, before → after",
            Chart::LabelProbHist => "Distribution of the probability of the right caption",
            Chart::Metrics => "Mean p(right caption) and accuracy, before and after fine-tuning",
            Chart::Calibration => "Calibration (reliability diagram)",
            Chart::Letters => "Accuracy by answer letter",
            Chart::Sweep => "Sweep: held-out accuracy against each swept hyperparameter",
        }
    }

    /// The chart whose [`Chart::name`] is `name`.
    pub fn from_name(name: &str) -> Option<Chart> {
        Chart::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A sweep's runs for [`Chart::Sweep`]: each run's value of every swept key and its metric.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweepData {
    /// The sweep's name.
    pub name: String,
    /// The swept keys (`train.lr`, ...).
    pub axes: Vec<String>,
    /// What the y axis shows (`held-out accuracy after`).
    pub metric_name: String,
    pub runs: Vec<SweepRunPoint>,
}

/// One run of a sweep: its values (as typed, in axis order) and its metric (`None`: not measured).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SweepRunPoint {
    pub run_id: i64,
    pub values: Vec<String>,
    pub metric: Option<f64>,
}

/// [`Chart::Sweep`] as an SVG document (run `i` of the sweep in `palette(i)`).
pub fn sweep_svg(data: &SweepData) -> Result<String> {
    svg_of(&charts::sweep_figure(data))
}

/// Writes `sweep.svg` and `sweep.png` into `out_dir` (created if needed); returns their paths.
pub fn render_sweep_chart(data: &SweepData, out_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let fig = charts::sweep_figure(data);
    let name = Chart::Sweep.name();
    let svg_path = out_dir.join(format!("{name}.svg"));
    crate::fsio::write_file(&svg_path, svg_of(&fig)?.as_bytes())?;
    let png_path = out_dir.join(format!("{name}.png"));
    crate::fsio::write_file(&png_path, &png_of(&fig)?)?;
    Ok(vec![svg_path, png_path])
}

/// One chart of runs as an SVG document. `runs` pairs each run with its colour index ([`palette`]).
pub fn chart_svg(chart: Chart, runs: &[(usize, &RunData)]) -> Result<String> {
    svg_of(&charts::build(chart, runs))
}

/// One chart of runs as PNG bytes.
pub fn chart_png(chart: Chart, runs: &[(usize, &RunData)]) -> Result<Vec<u8>> {
    png_of(&charts::build(chart, runs))
}

/// Pairs each run with its position as colour index.
pub fn indexed(runs: &[RunData]) -> Vec<(usize, &RunData)> {
    runs.iter().enumerate().collect()
}

/// [`Chart::LossSteps`] of `runs` (run i in `palette(i)`), as SVG.
pub fn loss_steps_svg(runs: &[RunData]) -> Result<String> {
    chart_svg(Chart::LossSteps, &indexed(runs))
}

/// [`Chart::LossEpochs`] of `runs`, as SVG.
pub fn loss_epochs_svg(runs: &[RunData]) -> Result<String> {
    chart_svg(Chart::LossEpochs, &indexed(runs))
}

/// [`Chart::Metrics`] of `runs`, as SVG.
pub fn metrics_svg(runs: &[RunData]) -> Result<String> {
    chart_svg(Chart::Metrics, &indexed(runs))
}

/// [`Chart::LabelProbSlope`] of one run (colour `palette(index)`), as SVG.
pub fn label_prob_slope_svg(run: &RunData, index: usize) -> Result<String> {
    chart_svg(Chart::LabelProbSlope, &[(index, run)])
}

/// Writes `<name>.svg` and `<name>.png` of each chart into `out_dir` (created if needed); returns the paths,
/// SVG then PNG per chart.
pub fn render_charts(charts: &[Chart], runs: &[(usize, &RunData)], out_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut out = Vec::with_capacity(charts.len() * 2);
    for &chart in charts {
        let fig = charts::build(chart, runs);
        let svg_path = out_dir.join(format!("{}.svg", chart.name()));
        crate::fsio::write_file(&svg_path, svg_of(&fig)?.as_bytes())?;
        let png_path = out_dir.join(format!("{}.png", chart.name()));
        crate::fsio::write_file(&png_path, &png_of(&fig)?)?;
        out.push(svg_path);
        out.push(png_path);
    }
    Ok(out)
}

/// Every chart of one run, coloured `palette(index)`, as `.svg` and `.png` in `out_dir`.
pub fn render_run_charts(run: &RunData, index: usize, out_dir: &Path) -> Result<Vec<PathBuf>> {
    render_charts(&Chart::ALL, &[(index, run)], out_dir)
}

/// Every chart comparing `runs` (run i in `palette(i)`), as `.svg` and `.png` in `out_dir`. The slope chart
/// shows each run's mean p(label) before → after; the histogram the base model's "before" and each run's
/// "after".
pub fn render_comparison(runs: &[RunData], out_dir: &Path) -> Result<Vec<PathBuf>> {
    render_charts(&Chart::ALL, &indexed(runs), out_dir)
}

/// A fixed-width text table for the CLI: per run, samples, mean p(label) and accuracy before → after, for train
/// and held-out.
pub fn summary_table(runs: &[RunData]) -> String {
    const RUN_W: usize = 30;
    let prob = |x: Option<f64>| x.map_or("—".to_string(), |x| format!("{x:.3}"));
    let pct = |x: Option<f64>| x.map_or("—".to_string(), |x| format!("{:.1}%", 100.0 * x));
    let arrow = |a: String, b: String, w: usize| format!("{a:>w$} → {b}");
    let mut s = String::new();
    let block = |title: &str| format!("{:-^45}", format!(" {title} "));
    s.push_str(&format!("{}  {}   {}\n", " ".repeat(RUN_W), block("train"), block("held-out")));
    let cols = format!("{:>6}  {:<16}  {:<19}", "n", "p(label)", "accuracy");
    s.push_str(format!("{}  {}   {}", pad("run", RUN_W), cols, cols).trim_end());
    s.push('\n');
    for r in runs {
        let sum = summarize(r);
        let name = if r.label.is_empty() { format!("run {}", r.id) } else { r.label.clone() };
        let mut line = pad(&name, RUN_W);
        for (k, m) in [sum.train, sum.heldout].iter().enumerate() {
            line.push_str(if k == 0 { "  " } else { "   " });
            line.push_str(&format!(
                "{:>6}  {:<16}  {:<19}",
                m.n,
                arrow(prob(m.mean_label_prob_before), prob(m.mean_label_prob_after), 5),
                arrow(pct(m.accuracy_before), pct(m.accuracy_after), 5),
            ));
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_names_round_trip() {
        for c in Chart::ALL {
            assert_eq!(Chart::from_name(c.name()), Some(c));
        }
    }
}
