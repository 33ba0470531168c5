//! Mean p(right caption) and accuracy as grouped bars: before (light) and after (solid) per run, one panel per
//! metric × split.

use std::ops::Range;

use plotters::style::text_anchor::{HPos, VPos};

use crate::report::analysis::{summarize, RunData};
use crate::vocab::{Split, Stage};

use super::super::figure::{palette, tint, Bar, Figure, LegendItem, Mark, Note, Num, Panel, INK};
use super::super::Chart;
use super::{base_figure, chance, chance_legend, chance_line, plural, run_legend};

/// x range for `slots` categories of width 1 starting at 0, widened so that bars do not get too fat.
fn slot_range(slots: usize) -> Range<f64> {
    let n = slots.max(1) as f64;
    let pad = ((4.0 - n) / 2.0).max(0.15);
    -pad..n + pad
}

pub(super) fn metrics_figure(runs: &[(usize, &RunData)]) -> Figure {
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
