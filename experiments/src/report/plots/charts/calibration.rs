//! The reliability diagram: accuracy against top-choice confidence, per split, with each series' ECE in the
//! legend.

use plotters::style::RGBColor;

use crate::report::analysis::{run_calibration, Calibration, RunData, CALIBRATION_BINS};
use crate::vocab::{Split, Stage};

use super::super::figure::{fmt_count, palette, Figure, LegendItem, Line, Mark, Markers, Panel, BEFORE, REFERENCE};
use super::super::Chart;
use super::{base_figure, base_run, run_name};

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

pub(super) fn calibration_figure(runs: &[(usize, &RunData)]) -> Figure {
    let base = base_run(runs);
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
        CALIBRATION_BINS
    );
    base_figure(Chart::Calibration, subtitle, legend, (1, 2), panels)
}
