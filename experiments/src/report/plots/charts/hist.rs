//! The distribution of p(right caption): the base model before fine-tuning in grey, each run after in its
//! colour (one run: bars; a few: outlines; many: pooled, with each run's mean as a tick).

use plotters::style::RGBColor;

use crate::report::analysis::{histogram, label_probs, RunData, HIST_BINS};
use crate::vocab::{Split, Stage};

use super::super::figure::{fmt_count, palette, Bar, Figure, LegendItem, Line, Mark, Num, Panel, BEFORE, INK};
use super::super::Chart;
use super::{base_figure, base_run, before_legend, mean_of, run_name, run_swatches};

/// Share of `values` in each of [`HIST_BINS`] bins on [0, 1] (the analysis' [`histogram`], which the app's
/// interactive chart shows too).
fn shares(values: &[f64]) -> Vec<f64> {
    histogram(values, HIST_BINS).shares()
}

fn tallest(shares: &[f64]) -> f64 {
    shares.iter().copied().fold(0.0, f64::max)
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

pub(super) fn hist_figure(runs: &[(usize, &RunData)]) -> Figure {
    let base = base_run(runs);
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
            y_max = y_max.max(tallest(&sh));
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
            y_max = y_max.max(tallest(&sh));
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
            y_max = y_max.max(tallest(&sh));
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
    before_legend(&mut legend, base, runs.len());
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
    legend.extend(run_swatches(runs));
    let subtitle = match runs.len() {
        1 => format!("{} · {HIST_BINS} bins · grey: before, colour: after", runs.first().map_or(String::new(), |r| run_name(r.1))),
        n if pooled => format!(
            "{HIST_BINS} bins · grey: base model before fine-tuning, dark: all {n} runs after, pooled · ticks: each run's mean after"
        ),
        n => format!("{HIST_BINS} bins · grey: base model before fine-tuning, outlines: each run after · {n} runs"),
    };
    base_figure(Chart::LabelProbHist, subtitle, legend, (1, 2), panels)
}
