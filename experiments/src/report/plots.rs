//! Charts of runs, drawn with plotters: SVG strings for the GUI, PNG files for reports.
//!
//! Every chart is first computed into a [`Figure`] (plain numbers: panels, bars, lines, legend) and then drawn by
//! one generic function over plotters' `DrawingBackend`, once with `SVGBackend` and once with `BitMapBackend`, so
//! the SVG and the PNG always show the same thing.
//!
//! Charts ([`Chart`]): loss per step, loss per epoch (train solid, held-out dashed), p(label) before → after per
//! sample (slope chart), its distribution before vs after (histogram), mean p(label) and accuracy before/after ×
//! train/held-out (grouped bars), reliability diagram with ECE, accuracy per answer letter A–E.
//!
//! Each run has ONE colour in every chart: [`palette`]`(run_index)`. The legend sits outside the plot, on the
//! right, so it never covers data; with many runs it wraps into more columns and the image grows.
//!
//! Text needs a font and plotters has no system fonts here: the bundled DejaVu Sans is registered as
//! `sans-serif` on first use.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use crate::vocab::{letter, Split, Stage};
use crate::report::analysis::{
    label_prob_deltas, letter_accuracy, pad, run_calibration, split_metrics, summarize, Calibration, RunData,
};
use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------------------

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
        }
    }

    /// The chart whose [`Chart::name`] is `name`.
    pub fn from_name(name: &str) -> Option<Chart> {
        Chart::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The colour of run number `run_index` (the same in every chart): ten hand-picked, well separated colours, then
/// colours spread around the hue circle (golden angle) with varying lightness, all distinct for the first
/// several hundred indices. Never grey (grey means "before").
pub fn palette(run_index: usize) -> RGBColor {
    const FIXED: [RGBColor; 10] = [
        RGBColor(0x1F, 0x77, 0xB4), // blue
        RGBColor(0xFF, 0x7F, 0x0E), // orange
        RGBColor(0x2C, 0xA0, 0x2C), // green
        RGBColor(0xD6, 0x27, 0x28), // red
        RGBColor(0x94, 0x67, 0xBD), // purple
        RGBColor(0x8C, 0x56, 0x4B), // brown
        RGBColor(0xE3, 0x77, 0xC2), // pink
        RGBColor(0x17, 0xBE, 0xCF), // cyan
        RGBColor(0xBC, 0xBD, 0x22), // olive
        RGBColor(0x7B, 0x41, 0x73), // plum
    ];
    if let Some(&c) = FIXED.get(run_index) {
        return c;
    }
    let j = run_index - FIXED.len();
    let hue = (15.0 + j as f64 * 137.507_764) % 360.0;
    let sat = [0.72, 0.55, 0.85][j % 3];
    let light = [0.42, 0.55, 0.33][(j / 3) % 3];
    hsl(hue, sat, light)
}

/// [`palette`] as the `#RRGGBB` string the SVG uses.
pub fn palette_hex(run_index: usize) -> String {
    hex(palette(run_index))
}

/// `#RRGGBB` of a colour (upper case, as plotters writes it in SVG).
pub fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// One chart of runs as an SVG document. `runs` pairs each run with its colour index ([`palette`]).
pub fn chart_svg(chart: Chart, runs: &[(usize, &RunData)]) -> Result<String> {
    svg_of(&figure(chart, runs))
}

/// One chart of runs as PNG bytes.
pub fn chart_png(chart: Chart, runs: &[(usize, &RunData)]) -> Result<Vec<u8>> {
    png_of(&figure(chart, runs))
}

/// Pairs each run with its position as colour index.
pub fn indexed(runs: &[RunData]) -> Vec<(usize, &RunData)> {
    runs.iter().enumerate().collect()
}

/// Loss curves per step of several runs (run i in `palette(i)`), as SVG. Same as [`loss_steps_svg`].
pub fn loss_chart_svg(runs: &[RunData]) -> Result<String> {
    loss_steps_svg(runs)
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

/// [`Chart::Calibration`] of `runs` (one run: before and after; several: before of the first, after of each).
pub fn calibration_svg(runs: &[RunData]) -> Result<String> {
    chart_svg(Chart::Calibration, &indexed(runs))
}

/// [`Chart::Letters`] of `runs`, as SVG.
pub fn letters_svg(runs: &[RunData]) -> Result<String> {
    chart_svg(Chart::Letters, &indexed(runs))
}

/// [`Chart::LabelProbSlope`] of one run (colour `palette(index)`), as SVG.
pub fn label_prob_slope_svg(run: &RunData, index: usize) -> Result<String> {
    chart_svg(Chart::LabelProbSlope, &[(index, run)])
}

/// [`Chart::LabelProbHist`] of one run (colour `palette(index)`), as SVG.
pub fn label_prob_hist_svg(run: &RunData, index: usize) -> Result<String> {
    chart_svg(Chart::LabelProbHist, &[(index, run)])
}

/// Writes `<name>.svg` and `<name>.png` of each chart into `out_dir` (created if needed); returns the paths,
/// SVG then PNG per chart.
pub fn render_charts(charts: &[Chart], runs: &[(usize, &RunData)], out_dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut out = Vec::with_capacity(charts.len() * 2);
    for &chart in charts {
        let fig = figure(chart, runs);
        let svg_path = out_dir.join(format!("{}.svg", chart.name()));
        std::fs::write(&svg_path, svg_of(&fig)?).map_err(|e| Error::io(&svg_path, e))?;
        let png_path = out_dir.join(format!("{}.png", chart.name()));
        std::fs::write(&png_path, png_of(&fig)?).map_err(|e| Error::io(&png_path, e))?;
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

// ---------------------------------------------------------------------------------------------------------------
// Figure model: what to draw, computed once, drawn on any backend
// ---------------------------------------------------------------------------------------------------------------

const FONT: &str = "sans-serif";
const WIDTH: u32 = 900;
const HEADER_H: u32 = 62;
const LEGEND_COL_W: u32 = 220;
const LEGEND_ROW_H: u32 = 18;
/// Most lines in the per-sample slope chart.
pub const SLOPE_CAP: usize = 2000;
/// Most points per run in the per-step loss chart (longer runs are averaged over windows).
pub const STEP_POINTS_CAP: usize = 1200;

const BEFORE: RGBColor = RGBColor(0x9A, 0x9A, 0x9A);
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
const MUTED: RGBColor = RGBColor(0x5F, 0x5F, 0x5F);
const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);
const GAIN: RGBColor = RGBColor(0x1B, 0x9E, 0x3E);
const LOSS: RGBColor = RGBColor(0xD2, 0x2B, 0x2B);
const SAME: RGBColor = RGBColor(0xB4, 0xB4, 0xB4);
const REFERENCE: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// Everything one chart draws.
struct Figure {
    chart: Chart,
    title: String,
    subtitle: String,
    legend: Vec<LegendItem>,
    /// Height before the legend asks for more.
    base_h: u32,
    /// Panel grid (rows, cols), filled row by row.
    grid: (usize, usize),
    panels: Vec<Panel>,
}

#[derive(Clone, Copy)]
enum Mark {
    /// Section heading: no mark, muted text.
    Heading,
    Swatch(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
}

struct LegendItem {
    mark: Mark,
    text: String,
    /// Shown after the text, never cut (e.g. the ECE).
    detail: Option<String>,
}

impl LegendItem {
    fn new(mark: Mark, text: impl Into<String>) -> Self {
        Self { mark, text: text.into(), detail: None }
    }
    fn heading(text: impl Into<String>) -> Self {
        Self::new(Mark::Heading, text)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Num {
    /// Fixed decimals.
    Dec(usize),
    /// Whole numbers (ticks that are not are left blank).
    Int,
    /// Percent of a fraction.
    Pct,
}

impl Num {
    fn fmt(self, x: f64) -> String {
        match self {
            Num::Dec(d) => format!("{x:.d$}"),
            Num::Int => {
                if (x - x.round()).abs() < 1e-6 {
                    format!("{}", x.round() as i64)
                } else {
                    String::new()
                }
            }
            Num::Pct => format!("{:.0}%", 100.0 * x),
        }
    }
}

struct Bar {
    x: Range<f64>,
    y: Range<f64>,
    colour: RGBColor,
    alpha: f64,
}

#[derive(Clone)]
enum Markers {
    None,
    Filled(u32),
    Hollow(u32),
    /// One radius per point (0 = none).
    Sized(Vec<u32>),
}

struct Line {
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    alpha: f64,
    width: u32,
    dashed: bool,
    markers: Markers,
}

impl Line {
    fn solid(points: Vec<(f64, f64)>, colour: RGBColor, width: u32) -> Self {
        Self { points, colour, alpha: 1.0, width, dashed: false, markers: Markers::None }
    }
}

/// Text at a data point (moved by `offset` pixels).
struct Note {
    at: (f64, f64),
    text: String,
    anchor: (HPos, VPos),
    colour: RGBColor,
    offset: (i32, i32),
}

impl Note {
    fn new(at: (f64, f64), text: String, anchor: (HPos, VPos), colour: RGBColor) -> Self {
        Self { at, text, anchor, colour, offset: (0, 0) }
    }
    fn offset(mut self, dx: i32, dy: i32) -> Self {
        self.offset = (dx, dy);
        self
    }
}

struct Panel {
    caption: String,
    x: Range<f64>,
    y: Range<f64>,
    x_desc: String,
    y_desc: String,
    /// `None`: automatic ticks formatted with `x_num`; `Some`: these labels at these x (no automatic ones).
    x_ticks: Option<Vec<(f64, String)>>,
    x_num: Num,
    y_num: Num,
    bars: Vec<Bar>,
    lines: Vec<Line>,
    notes: Vec<Note>,
    /// Drawn in the middle when there is nothing else to draw.
    empty: Option<String>,
}

impl Panel {
    fn new(caption: impl Into<String>, x: Range<f64>, y: Range<f64>) -> Self {
        Self {
            caption: caption.into(),
            x,
            y,
            x_desc: String::new(),
            y_desc: String::new(),
            x_ticks: None,
            x_num: Num::Dec(1),
            y_num: Num::Dec(1),
            bars: Vec::new(),
            lines: Vec::new(),
            notes: Vec::new(),
            empty: None,
        }
    }
    fn desc(mut self, x: &str, y: &str) -> Self {
        self.x_desc = x.to_string();
        self.y_desc = y.to_string();
        self
    }
}

fn run_name(run: &RunData) -> String {
    if run.label.trim().is_empty() {
        format!("run {}", run.id)
    } else {
        run.label.clone()
    }
}

fn run_legend(runs: &[(usize, &RunData)]) -> Vec<LegendItem> {
    let mut items = vec![LegendItem::heading(if runs.len() == 1 { "run" } else { "runs" })];
    items.extend(runs.iter().map(|&(i, r)| LegendItem::new(Mark::Swatch(palette(i)), run_name(r))));
    items
}

fn fmt_count(n: usize) -> String {
    let s = n.to_string();
    // Digits before the first comma: 1 to 3.
    let head = match s.len() % 3 {
        0 => 3.min(s.len()),
        r => r,
    };
    let mut out = s[..head].to_string();
    for group in s.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(&String::from_utf8_lossy(group));
    }
    out
}

/// `[lo, hi]` padded by 5% (a flat range gets ±0.5, or ±5%).
fn padded(lo: f64, hi: f64) -> Range<f64> {
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let d = (hi.abs() * 0.05).max(0.5);
        return (lo - d)..(hi + d);
    }
    (lo - span * 0.05)..(hi + span * 0.05)
}

/// Decimals for ticks over a span.
fn decimals_for(span: f64) -> usize {
    if span >= 20.0 {
        0
    } else if span >= 2.0 {
        1
    } else if span >= 0.2 {
        2
    } else {
        3
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn figure(chart: Chart, runs: &[(usize, &RunData)]) -> Figure {
    let mut fig = match chart {
        Chart::LossSteps => loss_steps_figure(runs),
        Chart::LossEpochs => loss_epochs_figure(runs),
        Chart::LabelProbSlope if runs.len() == 1 => slope_one_figure(runs[0]),
        Chart::LabelProbSlope => slope_many_figure(runs),
        Chart::LabelProbHist => hist_figure(runs),
        Chart::Metrics => metrics_figure(runs),
        Chart::Calibration => calibration_figure(runs),
        Chart::Letters => letters_figure(runs),
    };
    if runs.is_empty() {
        fig.subtitle = "no runs selected".to_string();
    }
    fig
}

fn base_figure(
    chart: Chart,
    subtitle: String,
    legend: Vec<LegendItem>,
    grid: (usize, usize),
    panels: Vec<Panel>,
) -> Figure {
    Figure { chart, title: chart.title().to_string(), subtitle, legend, base_h: 520, grid, panels }
}

// --- loss ------------------------------------------------------------------------------------------------------

/// Averages consecutive points in windows so that at most `cap` remain; returns the points and the window.
fn downsample(points: &[(f64, f64)], cap: usize) -> (Vec<(f64, f64)>, usize) {
    if points.len() <= cap || cap == 0 {
        return (points.to_vec(), 1);
    }
    let window = points.len().div_ceil(cap);
    let out = points
        .chunks(window)
        .map(|c| {
            let n = c.len() as f64;
            (c.iter().map(|p| p.0).sum::<f64>() / n, c.iter().map(|p| p.1).sum::<f64>() / n)
        })
        .collect();
    (out, window)
}

fn loss_steps_figure(runs: &[(usize, &RunData)]) -> Figure {
    let mut lines = Vec::new();
    let mut max_window = 1;
    for &(i, r) in runs {
        let mut pts: Vec<(f64, f64)> =
            r.step_losses.iter().filter(|s| s.2.is_finite()).map(|&(step, _, loss)| (step as f64, loss)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.is_empty() {
            continue;
        }
        let (pts, window) = downsample(&pts, STEP_POINTS_CAP);
        max_window = max_window.max(window);
        let width = if pts.len() > 300 { 1 } else { 2 };
        lines.push(Line::solid(pts, palette(i), width));
    }
    let mut subtitle = format!("training loss after each optimizer step · {} run{}", runs.len(), plural(runs.len()));
    if max_window > 1 {
        subtitle.push_str(&format!(" · long runs averaged over windows of up to {max_window} steps"));
    }
    let panel = line_panel("", lines, "step", "loss", "no per-step losses recorded");
    base_figure(Chart::LossSteps, subtitle, run_legend(runs), (1, 1), vec![panel])
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A panel over the extent of `lines` (x: whole numbers).
fn line_panel(caption: &str, lines: Vec<Line>, x_desc: &str, y_desc: &str, empty: &str) -> Panel {
    let xs = min_max(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)));
    let ys = min_max(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let (Some((x0, x1)), Some((y0, y1))) = (xs, ys) else {
        let mut p = Panel::new(caption, 0.0..1.0, 0.0..1.0).desc(x_desc, y_desc);
        p.empty = Some(empty.to_string());
        return p;
    };
    let x = if x1 > x0 { x0..x1 } else { (x0 - 1.0)..(x1 + 1.0) };
    let y = padded(y0, y1);
    let mut p = Panel::new(caption, x, y.clone()).desc(x_desc, y_desc);
    p.x_num = Num::Int;
    p.y_num = Num::Dec(decimals_for(y.end - y.start));
    p.lines = lines;
    p
}

fn loss_epochs_figure(runs: &[(usize, &RunData)]) -> Figure {
    let mut lines = Vec::new();
    for &(i, r) in runs {
        let mut e = r.epoch_losses.clone();
        e.sort_by_key(|e| e.0);
        let markers = e.len() <= 40;
        let train: Vec<(f64, f64)> = e.iter().filter(|e| e.1.is_finite()).map(|e| (e.0 as f64, e.1)).collect();
        let held: Vec<(f64, f64)> =
            e.iter().filter_map(|e| e.2.filter(|v| v.is_finite()).map(|v| (e.0 as f64, v))).collect();
        if !train.is_empty() {
            let mut l = Line::solid(train, palette(i), 2);
            if markers {
                l.markers = Markers::Filled(3);
            }
            lines.push(l);
        }
        if !held.is_empty() {
            let mut l = Line::solid(held, palette(i), 2);
            l.dashed = true;
            if markers {
                l.markers = Markers::Hollow(3);
            }
            lines.push(l);
        }
    }
    let mut legend = run_legend(runs);
    legend.push(LegendItem::heading("lines"));
    legend.push(LegendItem::new(Mark::Line(INK), "train"));
    legend.push(LegendItem::new(Mark::Dashed(INK), "held-out"));
    let subtitle =
        format!("mean loss per epoch · solid: train, dashed: held-out · {} run{}", runs.len(), plural(runs.len()));
    let mut panel = line_panel("", lines, "epoch", "loss", "no epoch losses recorded");
    if panel.x.end - panel.x.start < 2.0 {
        panel.x = (panel.x.start - 0.5)..(panel.x.end + 0.5);
    }
    base_figure(Chart::LossEpochs, subtitle, legend, (1, 1), vec![panel])
}

// --- slope -----------------------------------------------------------------------------------------------------

/// |Δ| at most this counts as "about the same".
const SAME_BAND: f64 = 0.02;

fn before_after_ticks() -> Option<Vec<(f64, String)>> {
    Some(vec![(0.0, "before".to_string()), (1.0, "after".to_string())])
}

fn slope_one_figure((index, run): (usize, &RunData)) -> Figure {
    let mut deltas = label_prob_deltas(run);
    deltas.sort_by_key(|d| d.sample_id);
    let total = deltas.len();
    // Past the cap, a fixed pseudo-random subset of each split (in proportion to its size): evenly spaced picks
    // could alias with a periodic order of the samples.
    let mut shown: Vec<usize> = (0..total).collect();
    if total > SLOPE_CAP {
        shown.clear();
        for split in Split::ALL {
            let mut idx: Vec<usize> = (0..total).filter(|&k| deltas[k].split == split).collect();
            let keep = (idx.len() * SLOPE_CAP).div_ceil(total).min(idx.len());
            idx.sort_by_key(|&k| (mix64(deltas[k].sample_id as u64), k));
            shown.extend(idx.into_iter().take(keep));
        }
        shown.truncate(SLOPE_CAP);
    }
    let (gains, losses) =
        (deltas.iter().filter(|d| d.delta > SAME_BAND).count(), deltas.iter().filter(|d| d.delta < -SAME_BAND).count());
    let mut panels = Vec::new();
    for split in Split::ALL {
        let all: Vec<_> = deltas.iter().filter(|d| d.split == split).collect();
        let mut sub: Vec<_> = shown.iter().filter_map(|&k| deltas.get(k)).filter(|d| d.split == split).collect();
        // Small changes first, so the big ones are on top.
        sub.sort_by(|a, b| a.delta.abs().total_cmp(&b.delta.abs()));
        let mut p = Panel::new(format!("{} · {} samples", split.title(), fmt_count(all.len())), -0.12..1.12, 0.0..1.0)
            .desc("", "p(right caption)");
        p.x_ticks = before_after_ticks();
        let alpha = (6.0 / (sub.len().max(1) as f64).sqrt()).clamp(0.07, 0.7);
        for d in &sub {
            let colour = if d.delta > SAME_BAND {
                GAIN
            } else if d.delta < -SAME_BAND {
                LOSS
            } else {
                SAME
            };
            let mut l = Line::solid(vec![(0.0, d.before), (1.0, d.after)], colour, 1);
            l.alpha = alpha;
            p.lines.push(l);
        }
        if all.is_empty() {
            p.empty = Some(format!("no {} samples with before and after", split.title()));
        } else {
            let n = all.len() as f64;
            let mb = all.iter().map(|d| d.before).sum::<f64>() / n;
            let ma = all.iter().map(|d| d.after).sum::<f64>() / n;
            let mut l = Line::solid(vec![(0.0, mb), (1.0, ma)], palette(index), 3);
            l.markers = Markers::Filled(5);
            p.lines.push(l);
            p.notes.push(Note::new((0.0, mb), format!("{mb:.2}"), (HPos::Right, VPos::Center), INK).offset(-9, 0));
            p.notes.push(Note::new((1.0, ma), format!("{ma:.2}"), (HPos::Left, VPos::Center), INK).offset(9, 0));
        }
        panels.push(p);
    }
    let mut subtitle = format!("{} · one line per sample", run_name(run));
    if total > SLOPE_CAP {
        subtitle.push_str(&format!(
            " · showing {} of {} samples (a fixed random subset; means use all)",
            fmt_count(SLOPE_CAP),
            fmt_count(total)
        ));
    }
    let legend = vec![
        LegendItem::heading("samples"),
        LegendItem::new(Mark::Line(GAIN), format!("rose by > {SAME_BAND} ({})", fmt_count(gains))),
        LegendItem::new(Mark::Line(LOSS), format!("fell by > {SAME_BAND} ({})", fmt_count(losses))),
        LegendItem::new(Mark::Line(SAME), format!("within ±{SAME_BAND} ({})", fmt_count(total - gains - losses))),
        LegendItem::heading("run"),
        LegendItem::new(Mark::Line(palette(index)), format!("mean · {}", run_name(run))),
    ];
    base_figure(Chart::LabelProbSlope, subtitle, legend, (1, 2), panels)
}

fn slope_many_figure(runs: &[(usize, &RunData)]) -> Figure {
    let mut panels = Vec::new();
    for split in Split::ALL {
        let mut p = Panel::new(split.title(), -0.12..1.12, 0.0..1.0).desc("", "mean p(right caption)");
        p.x_ticks = before_after_ticks();
        for &(i, r) in runs {
            let m = split_metrics(r, Some(split));
            if let (Some(b), Some(a)) = (m.mean_label_prob_before, m.mean_label_prob_after) {
                let mut l = Line::solid(vec![(0.0, b), (1.0, a)], palette(i), 2);
                l.markers = Markers::Filled(4);
                p.lines.push(l);
            }
        }
        if p.lines.is_empty() {
            p.empty = Some(format!("no {} samples with before and after", split.title()));
        }
        panels.push(p);
    }
    let subtitle = format!("mean p(right caption) per run, before → after · {} runs", runs.len());
    base_figure(Chart::LabelProbSlope, subtitle, run_legend(runs), (1, 2), panels)
}

// --- histogram -------------------------------------------------------------------------------------------------

const HIST_BINS: usize = 20;

/// Share of `values` in each of [`HIST_BINS`] bins on [0, 1].
fn shares(values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0usize; HIST_BINS];
    for &v in values {
        let b = ((v.clamp(0.0, 1.0) * HIST_BINS as f64) as usize).min(HIST_BINS - 1);
        if let Some(c) = counts.get_mut(b) {
            *c += 1;
        }
    }
    let n = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

/// The outline of a histogram as one stepped line.
fn step_outline(shares: &[f64]) -> Vec<(f64, f64)> {
    let w = 1.0 / HIST_BINS as f64;
    let mut pts = vec![(0.0, 0.0)];
    for (i, &s) in shares.iter().enumerate() {
        pts.push((i as f64 * w, s));
        pts.push(((i + 1) as f64 * w, s));
    }
    pts.push((1.0, 0.0));
    pts
}

fn label_probs(run: &RunData, split: Split, stage: Stage) -> Vec<f64> {
    run.samples.iter().filter(|s| s.split == split).filter_map(|s| s.label_prob(stage)).collect()
}

fn mean_of(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// More runs than this: the histogram pools the runs' "after" and marks each run's mean with a tick.
const HIST_OUTLINE_RUNS: usize = 8;

fn hist_bars(p: &mut Panel, shares: &[f64], colour: RGBColor, alpha: f64) {
    let w = 1.0 / HIST_BINS as f64;
    for (b, &s) in shares.iter().enumerate() {
        if s > 0.0 {
            p.bars.push(Bar { x: b as f64 * w..(b + 1) as f64 * w, y: 0.0..s, colour, alpha });
        }
    }
}

fn hist_figure(runs: &[(usize, &RunData)]) -> Figure {
    // "before" is the base model: the first run that has it.
    let base = runs.iter().find(|(_, r)| r.samples.iter().any(|s| s.before.is_some())).copied();
    let pooled = runs.len() > HIST_OUTLINE_RUNS;
    let mut panels = Vec::new();
    let mut y_max = 0.0f64;
    // Per panel: (run colour, mean after) for the rug of means.
    let mut rugs: Vec<Vec<(RGBColor, f64)>> = Vec::new();
    for split in Split::ALL {
        let mut p = Panel::new(split.title(), 0.0..1.0, 0.0..1.0).desc("p(right caption)", "share of samples");
        p.y_num = Num::Pct;
        let before = base.map(|(_, r)| label_probs(r, split, Stage::Before)).unwrap_or_default();
        let mut rug = Vec::new();
        if !before.is_empty() {
            let sh = shares(&before);
            y_max = y_max.max(sh.iter().copied().fold(0.0, f64::max));
            hist_bars(&mut p, &sh, BEFORE, 0.45);
            p.lines.push(Line::solid(step_outline(&sh), BEFORE, 2));
        }
        let mut all_after = Vec::new();
        for &(i, r) in runs {
            let after = label_probs(r, split, Stage::After);
            if after.is_empty() {
                continue;
            }
            if let Some(m) = mean_of(&after) {
                rug.push((palette(i), m));
            }
            if pooled {
                all_after.extend(after);
                continue;
            }
            let sh = shares(&after);
            y_max = y_max.max(sh.iter().copied().fold(0.0, f64::max));
            if runs.len() == 1 {
                hist_bars(&mut p, &sh, palette(i), 0.35);
                p.caption = format!(
                    "{} · {} samples · mean {} → {}",
                    split.title(),
                    fmt_count(after.len().max(before.len())),
                    mean_of(&before).map_or("—".to_string(), |m| format!("{m:.2}")),
                    mean_of(&after).map_or("—".to_string(), |m| format!("{m:.2}")),
                );
            }
            p.lines.push(Line::solid(step_outline(&sh), palette(i), 2));
        }
        if !all_after.is_empty() {
            let sh = shares(&all_after);
            y_max = y_max.max(sh.iter().copied().fold(0.0, f64::max));
            hist_bars(&mut p, &sh, INK, 0.12);
            p.lines.push(Line::solid(step_outline(&sh), INK, 2));
        }
        if p.lines.is_empty() {
            p.empty = Some(format!("no {} samples scored", split.title()));
        }
        panels.push(p);
        rugs.push(rug);
    }
    let top = if y_max > 0.0 { (y_max * if pooled { 1.25 } else { 1.1 }).min(1.0) } else { 1.0 };
    for (p, rug) in panels.iter_mut().zip(rugs) {
        p.y = 0.0..top;
        if pooled {
            // Each run's mean "after" as a short tick along the top.
            for (colour, m) in rug {
                p.lines.push(Line::solid(vec![(m, top * 0.86), (m, top * 0.97)], colour, 2));
            }
        }
    }
    let mut legend = Vec::new();
    if let Some((_, r)) = base {
        legend.push(LegendItem::heading("before fine-tuning"));
        let text = if runs.len() == 1 { "before".to_string() } else { format!("base model ({})", run_name(r)) };
        legend.push(LegendItem::new(Mark::Swatch(BEFORE), text));
    }
    let after_heading = match runs.len() {
        1 => "after fine-tuning",
        _ if pooled => "after: all runs pooled",
        _ => "after fine-tuning (outlines)",
    };
    legend.push(LegendItem::heading(after_heading));
    if pooled {
        legend.push(LegendItem::new(Mark::Line(INK), format!("{} runs pooled", runs.len())));
        legend.push(LegendItem::heading("ticks at the top: run means"));
    }
    legend.extend(runs.iter().map(|&(i, r)| LegendItem::new(Mark::Swatch(palette(i)), run_name(r))));
    let subtitle = match runs.len() {
        1 => format!("{} · {HIST_BINS} bins · grey: before, colour: after", runs.first().map_or(String::new(), |r| run_name(r.1))),
        n if pooled => format!(
            "{HIST_BINS} bins · grey: base model before fine-tuning, dark: all {n} runs after, pooled · ticks: each run's mean after"
        ),
        n => format!("{HIST_BINS} bins · grey: base model before fine-tuning, outlines: each run after · {n} runs"),
    };
    base_figure(Chart::LabelProbHist, subtitle, legend, (1, 2), panels)
}

// --- metrics ---------------------------------------------------------------------------------------------------

/// Mixes a colour with white (`t` = 0: the colour, 1: white).
fn tint(c: RGBColor, t: f64) -> RGBColor {
    let m = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * t).round().clamp(0.0, 255.0) as u8;
    RGBColor(m(c.0), m(c.1), m(c.2))
}

/// Mean of 1 / (number of choices) over the samples: the accuracy of guessing.
fn chance(runs: &[(usize, &RunData)]) -> Option<f64> {
    let v: Vec<f64> = runs
        .iter()
        .flat_map(|(_, r)| &r.samples)
        .filter(|s| !s.choices.is_empty())
        .map(|s| 1.0 / s.choices.len() as f64)
        .collect();
    mean_of(&v)
}

/// x range for `slots` categories of width 1 starting at 0, widened so that bars do not get too fat.
fn slot_range(slots: usize) -> Range<f64> {
    let n = slots.max(1) as f64;
    let pad = ((4.0 - n) / 2.0).max(0.15);
    -pad..n + pad
}

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

fn metrics_figure(runs: &[(usize, &RunData)]) -> Figure {
    let n = runs.len();
    let summaries: Vec<_> = runs.iter().map(|(_, r)| summarize(r)).collect();
    let mut panels = Vec::new();
    let chance = chance(runs);
    for metric in 0..2 {
        for split in Split::ALL {
            let name = if metric == 0 { "mean p(right caption)" } else { "accuracy" };
            let mut p = Panel::new(format!("{name} · {}", split.title()), slot_range(n), 0.0..1.0);
            p.y_desc = name.to_string();
            p.y_num = if metric == 0 { Num::Dec(1) } else { Num::Pct };
            if n <= 12 {
                p.x_ticks = Some(
                    runs.iter().enumerate().map(|(k, (_, r))| (k as f64 + 0.5, format!("run {}", r.id))).collect(),
                );
            } else {
                p.x_ticks = Some(Vec::new());
                p.x_desc = "runs (colours: see legend)".to_string();
            }
            let mut any = false;
            for (k, (&(i, _), s)) in runs.iter().zip(&summaries).enumerate() {
                let m = s.split(split);
                for (stage, x, colour) in [
                    (Stage::Before, k as f64 + 0.1..k as f64 + 0.5, tint(palette(i), 0.6)),
                    (Stage::After, k as f64 + 0.5..k as f64 + 0.9, palette(i)),
                ] {
                    let v = if metric == 0 { m.mean_label_prob(stage) } else { m.accuracy(stage) };
                    let Some(v) = v else { continue };
                    any = true;
                    let mid = (x.start + x.end) / 2.0;
                    p.bars.push(Bar { x, y: 0.0..v, colour, alpha: 1.0 });
                    if n <= 6 {
                        let text = if metric == 0 { format!("{v:.2}") } else { format!("{:.0}%", 100.0 * v) };
                        p.notes.push(Note::new((mid, v), text, (HPos::Center, VPos::Bottom), INK));
                    }
                }
            }
            if metric == 1 {
                chance_line(&mut p, chance);
            }
            if !any {
                p.empty = Some(format!("no {} samples scored", split.title()));
            }
            panels.push(p);
        }
    }
    let mut legend = run_legend(runs);
    legend.push(LegendItem::heading("bars"));
    legend.push(LegendItem::new(Mark::Swatch(tint(INK, 0.6)), "light: before"));
    legend.push(LegendItem::new(Mark::Swatch(INK), "solid: after"));
    chance_legend(&mut legend, chance);
    let subtitle = format!("light bar: before fine-tuning · solid bar: after · {n} run{}", plural(n));
    let mut fig = base_figure(Chart::Metrics, subtitle, legend, (2, 2), panels);
    fig.base_h = 620;
    fig
}

// --- calibration -----------------------------------------------------------------------------------------------

fn reliability_line(c: &Calibration, colour: RGBColor, max_count: usize) -> Option<Line> {
    let pts: Vec<((f64, f64), usize)> =
        c.bins.iter().filter_map(|b| Some(((b.mean_confidence?, b.accuracy?), b.count))).collect();
    if pts.is_empty() {
        return None;
    }
    let sizes =
        pts.iter().map(|&(_, n)| 2 + (5.0 * (n as f64 / max_count.max(1) as f64).sqrt()).round() as u32).collect();
    let mut l = Line::solid(pts.into_iter().map(|(p, _)| p).collect(), colour, 2);
    l.markers = Markers::Sized(sizes);
    Some(l)
}

fn fmt_ece(c: &Calibration) -> String {
    c.ece.map_or("—".to_string(), |e| format!("{e:.3}"))
}

fn calibration_figure(runs: &[(usize, &RunData)]) -> Figure {
    let base = runs.iter().find(|(_, r)| r.samples.iter().any(|s| s.before.is_some())).copied();
    // (label, colour, [train, held-out])
    let mut series: Vec<(String, RGBColor, [Calibration; 2])> = Vec::new();
    if let Some((_, r)) = base {
        let label = if runs.len() == 1 { "before".to_string() } else { format!("before · {}", run_name(r)) };
        series.push((label, BEFORE, Split::ALL.map(|s| run_calibration(r, Stage::Before, Some(s)))));
    }
    for &(i, r) in runs {
        let label = if runs.len() == 1 { format!("after · {}", run_name(r)) } else { run_name(r) };
        series.push((label, palette(i), Split::ALL.map(|s| run_calibration(r, Stage::After, Some(s)))));
    }
    let max_count =
        series.iter().flat_map(|s| s.2.iter()).flat_map(|c| c.bins.iter().map(|b| b.count)).max().unwrap_or(1);
    let mut panels = Vec::new();
    for (k, split) in Split::ALL.into_iter().enumerate() {
        let n = series.iter().filter_map(|s| s.2.get(k)).map(|c| c.n).max().unwrap_or(0);
        let mut p = Panel::new(format!("{} · {} samples", split.title(), fmt_count(n)), 0.0..1.0, 0.0..1.0)
            .desc("confidence (top-choice probability)", "accuracy");
        let mut diag = Line::solid(vec![(0.0, 0.0), (1.0, 1.0)], REFERENCE, 1);
        diag.dashed = true;
        p.lines.push(diag);
        for (_, colour, cals) in &series {
            if let Some(l) = cals.get(k).and_then(|c| reliability_line(c, *colour, max_count)) {
                p.lines.push(l);
            }
        }
        if p.lines.len() == 1 {
            p.empty = Some(format!("no {} samples scored", split.title()));
        }
        panels.push(p);
    }
    let mut legend = vec![LegendItem::heading("ECE train / held-out")];
    for (label, colour, cals) in &series {
        let mut item = LegendItem::new(Mark::Swatch(*colour), label.clone());
        item.detail = Some(format!("{} / {}", fmt_ece(&cals[0]), fmt_ece(&cals[1])));
        legend.push(item);
    }
    legend.push(LegendItem::new(Mark::Dashed(REFERENCE), "perfect calibration"));
    let subtitle = format!(
        "{} bins of top-choice confidence · dot size: samples in the bin · dashed: perfect calibration",
        crate::report::analysis::CALIBRATION_BINS
    );
    base_figure(Chart::Calibration, subtitle, legend, (1, 2), panels)
}

// --- letters ---------------------------------------------------------------------------------------------------

fn letters_figure(runs: &[(usize, &RunData)]) -> Figure {
    let base = runs.iter().find(|(_, r)| r.samples.iter().any(|s| s.before.is_some())).copied();
    let chance = chance(runs);
    let mut panels = Vec::new();
    let mut top_share = String::new();
    for split in Split::ALL {
        // (colour, per-letter accuracy)
        let mut series: Vec<(RGBColor, Vec<Option<f64>>)> = Vec::new();
        let mut counts: Vec<usize> = Vec::new();
        if let Some((_, r)) = base {
            let la = letter_accuracy(r, Some(split));
            series.push((BEFORE, la.iter().map(|l| l.accuracy(Stage::Before)).collect()));
        }
        for (k, &(i, r)) in runs.iter().enumerate() {
            let la = letter_accuracy(r, Some(split));
            if k == 0 {
                counts = la.iter().map(|l| l.n).collect();
                if runs.len() == 1 && split == Split::Train {
                    let total: usize = la.iter().map(|l| l.predicted_after).sum();
                    if total > 0 {
                        top_share = la
                            .iter()
                            .map(|l| format!("{} {:.0}%", l.letter, 100.0 * l.predicted_after as f64 / total as f64))
                            .collect::<Vec<_>>()
                            .join(" · ");
                    }
                }
            }
            series.push((palette(i), la.iter().map(|l| l.accuracy(Stage::After)).collect()));
        }
        let letters = series.iter().map(|s| s.1.len()).max().unwrap_or(5).max(5);
        let mut p = Panel::new(split.title(), 0.0..letters as f64, 0.0..1.0).desc("", "accuracy");
        p.y_num = Num::Pct;
        p.x_ticks = Some(
            (0..letters)
                .map(|c| {
                    let n = counts.get(c).copied().unwrap_or(0);
                    (c as f64 + 0.5, format!("{} (n={})", letter(c), fmt_count(n)))
                })
                .collect(),
        );
        let s_count = series.len().max(1) as f64;
        let w = 0.8 / s_count;
        let labels = series.len() * letters <= 12;
        let mut any = false;
        for (k, (colour, acc)) in series.iter().enumerate() {
            for (c, v) in acc.iter().enumerate() {
                let Some(v) = *v else { continue };
                any = true;
                let x0 = c as f64 + 0.1 + k as f64 * w;
                p.bars.push(Bar { x: x0..x0 + w, y: 0.0..v, colour: *colour, alpha: 1.0 });
                if labels {
                    p.notes.push(Note::new(
                        (x0 + w / 2.0, v),
                        format!("{:.0}%", 100.0 * v),
                        (HPos::Center, VPos::Bottom),
                        INK,
                    ));
                }
            }
        }
        chance_line(&mut p, chance);
        if !any {
            p.empty = Some(format!("no {} samples scored", split.title()));
        }
        panels.push(p);
    }
    let mut legend = Vec::new();
    if let Some((_, r)) = base {
        legend.push(LegendItem::heading("before fine-tuning"));
        let text = if runs.len() == 1 { "before".to_string() } else { format!("base model ({})", run_name(r)) };
        legend.push(LegendItem::new(Mark::Swatch(BEFORE), text));
    }
    legend.push(LegendItem::heading("after fine-tuning"));
    legend.extend(runs.iter().map(|&(i, r)| LegendItem::new(Mark::Swatch(palette(i)), run_name(r))));
    chance_legend(&mut legend, chance);
    let subtitle = if top_share.is_empty() {
        "accuracy of the samples whose right caption is at each letter; one tall letter = a positional shortcut"
            .to_string()
    } else {
        format!("top choice after fine-tuning (train): {top_share}")
    };
    let mut fig = base_figure(Chart::Letters, subtitle, legend, (2, 1), panels);
    fig.base_h = 600;
    fig
}

// ---------------------------------------------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------------------------------------------

type Area<DB> = DrawingArea<DB, Shift>;
type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

static FONT_OK: OnceLock<bool> = OnceLock::new();

/// Registers the bundled DejaVu Sans as `sans-serif` (once).
fn ensure_font() -> Result<()> {
    let ok = *FONT_OK.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, include_bytes!("../../assets/DejaVuSans.ttf")).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid("plot: the bundled font assets/DejaVuSans.ttf cannot be read".to_string()))
    }
}

/// Where the legend's items go.
struct LegendLayout {
    cols: usize,
    /// Rows used in the tallest column.
    rows_used: usize,
    /// (column, first row, rows) of each item.
    places: Vec<(usize, usize, usize)>,
}

/// Items with a detail take two rows (text, then detail) unless the legend is long.
fn legend_item_rows(items: &[LegendItem]) -> Vec<usize> {
    let two = items.len() <= 14;
    items.iter().map(|i| if two && i.detail.is_some() { 2 } else { 1 }).collect()
}

fn rows_fitting(height: u32) -> usize {
    (height.saturating_sub(HEADER_H + 40) / LEGEND_ROW_H).max(2) as usize
}

/// Fills columns of `rows_fitting(height)` rows, never splitting an item.
fn legend_layout(items: &[LegendItem], height: u32) -> LegendLayout {
    let max_rows = rows_fitting(height);
    let mut places = Vec::with_capacity(items.len());
    let (mut col, mut row, mut rows_used) = (0usize, 0usize, 0usize);
    for n in legend_item_rows(items) {
        if row > 0 && row + n > max_rows {
            col += 1;
            row = 0;
        }
        places.push((col, row, n));
        row += n;
        rows_used = rows_used.max(row);
    }
    LegendLayout { cols: col + 1, rows_used, places }
}

/// Pixel size of a figure: the legend makes it taller (up to 760) and then wider.
fn figure_size(fig: &Figure) -> (u32, u32) {
    let rows: usize = legend_item_rows(&fig.legend).iter().sum();
    let need = HEADER_H + 40 + rows as u32 * LEGEND_ROW_H;
    let h = if need <= fig.base_h { fig.base_h } else { need.min(760) };
    let cols = legend_layout(&fig.legend, h).cols;
    (WIDTH + (cols as u32 - 1) * LEGEND_COL_W, h)
}

fn plot_err(fig: &Figure, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("plot {}: {e}", fig.chart.name()))
}

fn svg_of(fig: &Figure) -> Result<String> {
    ensure_font()?;
    let size = figure_size(fig);
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        draw_figure(&root, fig).map_err(|e| plot_err(fig, e))?;
        root.present().map_err(|e| plot_err(fig, e))?;
    }
    Ok(s)
}

fn png_of(fig: &Figure) -> Result<Vec<u8>> {
    use image::ImageEncoder as _;
    ensure_font()?;
    let (w, h) = figure_size(fig);
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_figure(&root, fig).map_err(|e| plot_err(fig, e))?;
        root.present().map_err(|e| plot_err(fig, e))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&buf, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| plot_err(fig, e))?;
    Ok(png)
}

fn font(size: f64, colour: RGBColor) -> TextStyle<'static> {
    TextStyle { font: (FONT, size).into_font(), color: colour.to_backend_color(), pos: Pos::default() }
}

/// `text` cut with `…` to fit `max_w` pixels.
fn fit<DB: DrawingBackend>(
    area: &Area<DB>,
    text: &str,
    style: &TextStyle,
    max_w: u32,
) -> std::result::Result<String, DrawingAreaErrorKind<DB::ErrorType>> {
    if area.estimate_text_size(text, style)?.0 <= max_w {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0usize, chars.len());
    // Largest prefix that fits with the ellipsis.
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let t: String = chars.iter().take(mid).collect::<String>() + "…";
        if area.estimate_text_size(&t, style)?.0 <= max_w {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(chars.iter().take(lo).collect::<String>().trim_end().to_string() + "…")
}

fn draw_figure<DB: DrawingBackend>(root: &Area<DB>, fig: &Figure) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    // Header: title and subtitle, cut to the width.
    let title_style = font(22.0, BLACK);
    let sub_style = font(14.0, MUTED);
    let title = fit(root, &fig.title, &title_style, w - 28)?;
    root.draw(&Text::new(title, (14, 10), title_style))?;
    let sub = fit(root, &fig.subtitle, &sub_style, w - 28)?;
    root.draw(&Text::new(sub, (14, 38), sub_style))?;

    let layout = legend_layout(&fig.legend, h);
    let legend_w = layout.cols as u32 * LEGEND_COL_W;
    let body = root.clone().shrink((0, HEADER_H), (w, h - HEADER_H));
    let (plot, legend) = body.split_horizontally(w - legend_w);
    let cells = plot.split_evenly(fig.grid);
    for (cell, panel) in cells.iter().zip(&fig.panels) {
        draw_panel(root, cell, panel)?;
    }
    draw_legend(&legend, &fig.legend, &layout)
}

fn draw_legend<DB: DrawingBackend>(area: &Area<DB>, items: &[LegendItem], layout: &LegendLayout) -> DrawResult<DB> {
    if items.is_empty() {
        return Ok(());
    }
    let (w, _) = area.dim_in_pixel();
    let row_h = LEGEND_ROW_H as i32;
    let (x0, y0) = (4i32, 10i32);
    let (x1, y1) = (w as i32 - 12, y0 + 12 + layout.rows_used as i32 * row_h);
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], WHITE.filled()))?;
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], RGBColor(0xC8, 0xC8, 0xC8).stroke_width(1)))?;
    let col_w = (x1 - x0) / layout.cols.max(1) as i32;
    let text_style = font(13.0, INK);
    let head_style = font(12.5, MUTED);
    let detail_style = font(12.0, MUTED);
    for (item, &(c, r, n)) in items.iter().zip(&layout.places) {
        let x = x0 + 8 + c as i32 * col_w;
        let y = y0 + 8 + r as i32 * row_h;
        let mid = y + row_h / 2 - 1;
        let text_x = x + 24;
        let max_w = (col_w - 32).max(20) as u32;
        match item.mark {
            Mark::Heading => {
                let t = fit(area, &item.text, &head_style, max_w + 24)?;
                area.draw(&Text::new(t, (x, y + 2), head_style.clone()))?;
                continue;
            }
            Mark::Swatch(c) => area.draw(&Rectangle::new([(x, mid - 5), (x + 16, mid + 5)], c.filled()))?,
            Mark::Line(c) => area.draw(&PathElement::new(vec![(x, mid), (x + 18, mid)], c.stroke_width(2)))?,
            Mark::Dashed(c) => {
                for s in [0, 7, 14] {
                    area.draw(&PathElement::new(vec![(x + s, mid), (x + s + 4, mid)], c.stroke_width(2)))?;
                }
            }
        }
        match &item.detail {
            None => {
                let t = fit(area, &item.text, &text_style, max_w)?;
                area.draw(&Text::new(t, (text_x, y + 2), text_style.clone()))?;
            }
            // Two rows: the text, then the detail under it.
            Some(d) if n >= 2 => {
                let t = fit(area, &item.text, &text_style, max_w)?;
                area.draw(&Text::new(t, (text_x, y + 2), text_style.clone()))?;
                let d = fit(area, d, &detail_style, max_w)?;
                area.draw(&Text::new(d, (text_x, y + row_h), detail_style.clone()))?;
            }
            // One row: the text cut short so that the whole detail fits after it.
            Some(d) => {
                let dw = area.estimate_text_size(d, &detail_style)?.0;
                let room = max_w.saturating_sub(dw + 8).max(24);
                let t = fit(area, &item.text, &text_style, room)?;
                let tw = area.estimate_text_size(&t, &text_style)?.0;
                area.draw(&Text::new(t, (text_x, y + 2), text_style.clone()))?;
                let dx = (text_x + tw as i32 + 8).max(x + col_w - 12 - dw as i32);
                area.draw(&Text::new(d.clone(), (dx, y + 3), detail_style.clone()))?;
            }
        }
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(root: &Area<DB>, area: &Area<DB>, p: &Panel) -> DrawResult<DB> {
    let custom_ticks = p.x_ticks.is_some();
    let x_label_h = match (custom_ticks, p.x_desc.is_empty()) {
        (true, true) => 26,
        (true, false) => 42,
        (false, true) => 26,
        (false, false) => 46,
    };
    let mut builder = ChartBuilder::on(area);
    builder.margin(8).margin_right(18).x_label_area_size(x_label_h).y_label_area_size(if p.y_desc.is_empty() {
        44
    } else {
        60
    });
    if !p.caption.is_empty() {
        builder.caption(&p.caption, font(15.0, INK));
    }
    let mut chart = builder.build_cartesian_2d(p.x.clone(), p.y.clone())?;
    let x_fmt = |x: &f64| p.x_num.fmt(*x);
    let y_fmt = |y: &f64| p.y_num.fmt(*y);
    {
        let mut mesh = chart.configure_mesh();
        mesh.label_style(font(12.0, INK))
            .axis_desc_style(font(13.0, INK))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(RGBColor(0x88, 0x88, 0x88))
            .y_labels(8)
            .y_label_formatter(&y_fmt)
            .x_label_formatter(&x_fmt);
        if custom_ticks {
            mesh.x_labels(0);
        } else {
            // Fewer ticks than whole numbers in the range, so that integer ticks do not fall between labels.
            let span = (p.x.end - p.x.start).max(1.0);
            let n = if p.x_num == Num::Int { (span.floor() as usize + 1).min(8) } else { 8 };
            mesh.x_labels(n.max(2));
        }
        if !p.x_desc.is_empty() {
            mesh.x_desc(p.x_desc.as_str());
        }
        if !p.y_desc.is_empty() {
            mesh.y_desc(p.y_desc.as_str());
        }
        mesh.draw()?;
    }

    if !p.bars.is_empty() {
        chart.draw_series(
            p.bars
                .iter()
                .map(|b| Rectangle::new([(b.x.start, b.y.start), (b.x.end, b.y.end)], b.colour.mix(b.alpha).filled())),
        )?;
    }
    for l in &p.lines {
        let style = ShapeStyle { color: l.colour.mix(l.alpha), filled: false, stroke_width: l.width };
        if l.dashed {
            chart.draw_series(DashedLineSeries::new(l.points.iter().copied(), 6, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(l.points.iter().copied(), style))?;
        }
        match &l.markers {
            Markers::None => {}
            Markers::Filled(r) => {
                chart.draw_series(l.points.iter().map(|&pt| Circle::new(pt, *r, l.colour.mix(l.alpha).filled())))?;
            }
            Markers::Hollow(r) => {
                chart.draw_series(l.points.iter().map(|&pt| Circle::new(pt, *r, WHITE.filled())))?;
                chart.draw_series(l.points.iter().map(|&pt| Circle::new(pt, *r, l.colour.stroke_width(2))))?;
            }
            Markers::Sized(rs) => {
                chart.draw_series(
                    l.points
                        .iter()
                        .zip(rs)
                        .filter(|(_, &r)| r > 0)
                        .map(|(&pt, &r)| Circle::new(pt, r, l.colour.filled())),
                )?;
            }
        }
    }
    for n in &p.notes {
        let style = font(11.5, n.colour).pos(Pos::new(n.anchor.0, n.anchor.1));
        let (px, py) = chart.backend_coord(&n.at);
        let dy = if matches!(n.anchor.1, VPos::Bottom) { -3 } else { 0 };
        root.draw(&Text::new(n.text.clone(), (px + n.offset.0, py + dy + n.offset.1), style))?;
    }
    if let Some(ticks) = &p.x_ticks {
        let style = font(12.0, INK).pos(Pos::new(HPos::Center, VPos::Top));
        for (x, text) in ticks {
            let (px, py) = chart.backend_coord(&(*x, p.y.start));
            root.draw(&Text::new(text.clone(), (px, py + 6), style.clone()))?;
        }
    }
    if let Some(msg) = &p.empty {
        let (px, py) = chart.backend_coord(&((p.x.start + p.x.end) / 2.0, (p.y.start + p.y.end) / 2.0));
        root.draw(&Text::new(msg.clone(), (px, py), font(14.0, MUTED).pos(Pos::new(HPos::Center, VPos::Center))))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers for colours
// ---------------------------------------------------------------------------------------------------------------

/// A 64-bit mixer (splitmix64's finaliser): a fixed, well spread order of ids.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// HSL (hue in degrees, saturation and lightness in [0, 1]) to RGB.
fn hsl(h: f64, s: f64, l: f64) -> RGBColor {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = (h % 360.0) / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(to(r), to(g), to(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_is_distinct_and_not_grey() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let c = palette(i);
            assert!(seen.insert((c.0, c.1, c.2)), "colour {i} repeats");
            let (mx, mn) = (c.0.max(c.1).max(c.2), c.0.min(c.1).min(c.2));
            assert!(mx - mn > 40, "colour {i} is greyish: {}", hex(c));
        }
        assert_eq!(palette_hex(0), "#1F77B4");
    }

    #[test]
    fn hsl_primaries() {
        assert_eq!(hsl(0.0, 1.0, 0.5), RGBColor(255, 0, 0));
        assert_eq!(hsl(120.0, 1.0, 0.5), RGBColor(0, 255, 0));
        assert_eq!(hsl(240.0, 1.0, 0.5), RGBColor(0, 0, 255));
    }

    #[test]
    fn downsample_caps() {
        let pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 1.0)).collect();
        let (d, w) = downsample(&pts, 1000);
        assert!(d.len() <= 1000);
        assert_eq!(w, 10);
        assert!((d[0].0 - 4.5).abs() < 1e-9);
    }

    #[test]
    fn counts_have_commas() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(1234), "1,234");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
    }

    #[test]
    fn legend_grows() {
        let mut fig = base_figure(Chart::LossSteps, String::new(), Vec::new(), (1, 1), Vec::new());
        assert_eq!(figure_size(&fig), (WIDTH, 520));
        fig.legend = (0..51).map(|i| LegendItem::new(Mark::Swatch(palette(i)), format!("run {i}"))).collect();
        let (w, h) = figure_size(&fig);
        assert!(h <= 760 && w > WIDTH, "{w}x{h}");
        let layout = legend_layout(&fig.legend, h);
        assert_eq!(layout.cols, 2);
        assert!(layout.places.iter().all(|&(c, r, n)| c < 2 && r + n <= rows_fitting(h)));
    }

    #[test]
    fn chart_names_round_trip() {
        for c in Chart::ALL {
            assert_eq!(Chart::from_name(c.name()), Some(c));
        }
    }
}
