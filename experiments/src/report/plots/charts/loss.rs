//! The loss charts: loss per optimizer step, and loss per epoch (train solid, held-out dashed).

use crate::report::analysis::RunData;

use super::super::figure::{
    decimals_for, min_max, padded, palette, Figure, LegendItem, Line, Mark, Markers, Num, Panel, INK,
};
use super::super::Chart;
use super::{base_figure, plural, run_legend};

/// Most points per run in the per-step loss chart (longer runs are averaged over windows).
pub const STEP_POINTS_CAP: usize = 1200;

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

pub(super) fn loss_steps_figure(runs: &[(usize, &RunData)]) -> Figure {
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

pub(super) fn loss_epochs_figure(runs: &[(usize, &RunData)]) -> Figure {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsample_caps() {
        let pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, 1.0)).collect();
        let (d, w) = downsample(&pts, 1000);
        assert!(d.len() <= 1000);
        assert_eq!(w, 10);
        assert!((d[0].0 - 4.5).abs() < 1e-9);
    }
}
