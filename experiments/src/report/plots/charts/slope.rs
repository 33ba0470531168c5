//! p(right caption) before → after as a slope chart: one line per sample for one run (gains green, losses red),
//! one line per run's mean for several.

use plotters::style::text_anchor::{HPos, VPos};

use crate::report::analysis::{label_prob_deltas, slope_subset, split_metrics, RunData};
use crate::vocab::Split;

use super::super::figure::{
    fmt_count, palette, Figure, LegendItem, Line, Mark, Markers, Note, Panel, GAIN, INK, LOSS, SAME,
};
use super::super::Chart;
use super::{base_figure, run_legend, run_name};

/// Most lines in the per-sample slope chart.
pub const SLOPE_CAP: usize = 2000;

/// |Δ| at most this counts as "about the same".
const SAME_BAND: f64 = 0.02;

fn before_after_ticks() -> Option<Vec<(f64, String)>> {
    Some(vec![(0.0, "before".to_string()), (1.0, "after".to_string())])
}

pub(super) fn slope_one_figure((index, run): (usize, &RunData)) -> Figure {
    let mut deltas = label_prob_deltas(run);
    deltas.sort_by_key(|d| d.sample_id);
    let total = deltas.len();
    let shown = slope_subset(&deltas, SLOPE_CAP);
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

pub(super) fn slope_many_figure(runs: &[(usize, &RunData)]) -> Figure {
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
