//! The sweep chart: the held-out metric against each swept hyperparameter, one panel per swept key, one point
//! per run (in the run's colour), the best run ringed and named.

use plotters::style::text_anchor::{HPos, VPos};

use super::super::figure::{palette, Figure, LegendItem, Line, Mark, Markers, Note, Num, Panel, INK};
use super::super::{Chart, SweepData};
use super::{base_figure, plural};

/// Radius of a run's point, and of the ring around the best one.
const POINT_R: u32 = 5;
const RING_R: u32 = 9;

/// The values of axis `a` in the order they go along x: by number when every value is one, else as first seen.
fn categories(data: &SweepData, a: usize) -> Vec<String> {
    let mut cats: Vec<String> = Vec::new();
    for r in &data.runs {
        if let Some(v) = r.values.get(a) {
            if !cats.contains(v) {
                cats.push(v.clone());
            }
        }
    }
    let nums: Option<Vec<f64>> = cats.iter().map(|c| c.parse::<f64>().ok()).collect();
    if let Some(nums) = nums {
        let mut pairs: Vec<(f64, String)> = nums.into_iter().zip(cats).collect();
        pairs.sort_by(|x, y| x.0.total_cmp(&y.0));
        return pairs.into_iter().map(|p| p.1).collect();
    }
    cats
}

/// The run with the highest metric (the first of equals).
fn best(data: &SweepData) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (k, r) in data.runs.iter().enumerate() {
        if let Some(m) = r.metric.filter(|m| m.is_finite()) {
            if best.is_none_or(|(_, b)| m > b) {
                best = Some((k, m));
            }
        }
    }
    best.map(|b| b.0)
}

pub(in super::super) fn sweep_figure(data: &SweepData) -> Figure {
    let best = best(data);
    let mut panels = Vec::new();
    for (a, axis) in data.axes.iter().enumerate() {
        let cats = categories(data, a);
        let n = cats.len().max(1) as f64;
        let mut p = Panel::new("", -0.5..n - 0.5, 0.0..1.0).desc(axis, &data.metric_name);
        p.y_num = Num::Pct;
        p.x_ticks = Some(cats.iter().enumerate().map(|(k, c)| (k as f64, c.clone())).collect());
        // Runs that share a value sit side by side around it.
        let mut at: Vec<Vec<usize>> = vec![Vec::new(); cats.len()];
        for (k, r) in data.runs.iter().enumerate() {
            if let Some(c) = r.values.get(a).and_then(|v| cats.iter().position(|c| c == v)) {
                at[c].push(k);
            }
        }
        let mut points = Vec::new();
        let mut ring = None;
        for (c, runs) in at.iter().enumerate() {
            let spread = 0.5 / runs.len().max(1) as f64;
            for (j, &k) in runs.iter().enumerate() {
                let Some(m) = data.runs[k].metric.filter(|m| m.is_finite()) else { continue };
                let x = c as f64 + (j as f64 - (runs.len() as f64 - 1.0) / 2.0) * spread.min(0.12);
                if best == Some(k) {
                    ring = Some((x, m));
                }
                points.push((k, (x, m)));
            }
        }
        if let Some(pt) = ring {
            let mut l = Line::solid(vec![pt], INK, 1);
            l.markers = Markers::Hollow(RING_R);
            p.lines.push(l);
            let text = format!("best: run {} ({:.1}%)", data.runs[best.unwrap_or(0)].run_id, 100.0 * pt.1);
            p.notes.push(Note::new(pt, text, (HPos::Center, VPos::Bottom), INK).offset(0, -(RING_R as i32)));
        }
        for (k, pt) in points {
            // One point per run: an invisible one-point line with a visible marker in the run's colour.
            let mut l = Line::solid(vec![pt], palette(k), 1);
            l.alpha = 0.0;
            l.markers = Markers::Sized(vec![POINT_R]);
            p.lines.push(l);
        }
        if data.runs.iter().all(|r| r.metric.is_none_or(|m| !m.is_finite())) {
            p.empty = Some(format!("no run of the sweep has a {} yet", data.metric_name));
        }
        panels.push(p);
    }
    if panels.is_empty() {
        let mut p = Panel::new("", 0.0..1.0, 0.0..1.0);
        p.empty = Some("a sweep chart shows a sweep: `cliplab compare --sweep ID`".into());
        panels.push(p);
    }
    let mut legend = vec![LegendItem::heading("runs")];
    for (k, r) in data.runs.iter().enumerate() {
        // The last part of each key (`lr`), so that the values fit the legend.
        let short = |a: &String| a.rsplit('.').next().unwrap_or(a).to_string();
        let values: Vec<String> = data.axes.iter().zip(&r.values).map(|(a, v)| format!("{}={v}", short(a))).collect();
        let mut item = LegendItem::new(Mark::Swatch(palette(k)), format!("run {} · {}", r.run_id, values.join(" ")));
        if best == Some(k) {
            item.detail = Some("best".into());
        }
        legend.push(item);
    }
    let n = data.runs.len();
    let subtitle = format!("{} · {n} run{} · one point per run, the best ringed", data.name, plural(n));
    let cols = data.axes.len().clamp(1, 3);
    let rows = data.axes.len().div_ceil(cols).max(1);
    let mut fig = base_figure(Chart::Sweep, subtitle, legend, (rows, cols), panels);
    fig.base_h = 420 * rows as u32 + 100;
    fig
}
