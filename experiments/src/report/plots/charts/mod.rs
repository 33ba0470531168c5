//! One builder per [`Chart`]: runs in, a [`Figure`] out (no drawing here).
//!
//! This module holds what several charts share: the run names and the runs' legend, the "base model" (the run
//! whose "before" scores stand for the model before fine-tuning) and the chance level of guessing.

mod calibration;
mod hist;
mod letters;
mod loss;
mod metrics;
mod slope;
mod sweep;

pub use loss::STEP_POINTS_CAP;
pub use slope::SLOPE_CAP;
pub(super) use sweep::sweep_figure;

use crate::report::analysis::{chance_level, RunData};

use super::figure::{palette, Figure, LegendItem, Line, Mark, Panel, BEFORE, REFERENCE};
use super::Chart;

/// The figure of `chart` over `runs` (each paired with its colour index).
pub(super) fn build(chart: Chart, runs: &[(usize, &RunData)]) -> Figure {
    let mut fig = match chart {
        Chart::LossSteps => loss::loss_steps_figure(runs),
        Chart::LossEpochs => loss::loss_epochs_figure(runs),
        Chart::LabelProbSlope if runs.len() == 1 => slope::slope_one_figure(runs[0]),
        Chart::LabelProbSlope => slope::slope_many_figure(runs),
        Chart::LabelProbHist => hist::hist_figure(runs),
        Chart::Metrics => metrics::metrics_figure(runs),
        Chart::Calibration => calibration::calibration_figure(runs),
        Chart::Letters => letters::letters_figure(runs),
        // Drawn from a sweep (`sweep_figure`); from bare runs it has nothing to show.
        Chart::Sweep => sweep::sweep_figure(&super::SweepData {
            name: String::new(),
            axes: Vec::new(),
            metric_name: String::new(),
            runs: Vec::new(),
        }),
    };
    if runs.is_empty() {
        fig.subtitle = "no runs selected".to_string();
    }
    fig
}

/// A figure of the default height, titled after its chart.
pub(super) fn base_figure(
    chart: Chart,
    subtitle: String,
    legend: Vec<LegendItem>,
    grid: (usize, usize),
    panels: Vec<Panel>,
) -> Figure {
    Figure { chart, title: chart.title().to_string(), subtitle, legend, base_h: 520, grid, panels }
}

fn run_name(run: &RunData) -> String {
    if run.label.trim().is_empty() {
        format!("run {}", run.id)
    } else {
        run.label.clone()
    }
}

/// A "run"/"runs" heading, then one swatch per run in its colour.
fn run_legend(runs: &[(usize, &RunData)]) -> Vec<LegendItem> {
    let mut items = vec![LegendItem::heading(if runs.len() == 1 { "run" } else { "runs" })];
    items.extend(run_swatches(runs));
    items
}

fn run_swatches<'a>(runs: &'a [(usize, &RunData)]) -> impl Iterator<Item = LegendItem> + 'a {
    runs.iter().map(|&(i, r)| LegendItem::new(Mark::Swatch(palette(i)), run_name(r)))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn mean_of(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The base model: "before" is taken from the first run that has it.
fn base_run<'a>(runs: &[(usize, &'a RunData)]) -> Option<(usize, &'a RunData)> {
    runs.iter().find(|(_, r)| r.samples.iter().any(|s| s.before.is_some())).copied()
}

/// The "before fine-tuning" legend section of a chart that shows the base model in grey.
fn before_legend(legend: &mut Vec<LegendItem>, base: Option<(usize, &RunData)>, runs: usize) {
    if let Some((_, r)) = base {
        legend.push(LegendItem::heading("before fine-tuning"));
        let text = if runs == 1 { "before".to_string() } else { format!("base model ({})", run_name(r)) };
        legend.push(LegendItem::new(Mark::Swatch(BEFORE), text));
    }
}

/// Mean of 1 / (number of choices) over the samples: the accuracy of guessing.
fn chance(runs: &[(usize, &RunData)]) -> Option<f64> {
    chance_level(runs.iter().flat_map(|(_, r)| &r.samples))
}

/// The chance level as a dashed line across the panel.
fn chance_line(p: &mut Panel, chance: Option<f64>) {
    if let Some(c) = chance {
        let mut l = Line::solid(vec![(p.x.start, c), (p.x.end, c)], REFERENCE, 1);
        l.dashed = true;
        p.lines.push(l);
    }
}

fn chance_legend(legend: &mut Vec<LegendItem>, chance: Option<f64>) {
    if let Some(c) = chance {
        legend.push(LegendItem::new(Mark::Dashed(REFERENCE), format!("chance ({:.0}%)", 100.0 * c)));
    }
}
