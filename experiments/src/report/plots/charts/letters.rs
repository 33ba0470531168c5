//! Accuracy per answer letter A–E, before and after: a letter far above the others is a positional shortcut.

use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::RGBColor;

use crate::report::analysis::{letter_accuracy, RunData};
use crate::vocab::{letter, Split, Stage};

use super::super::figure::{fmt_count, palette, Bar, Figure, LegendItem, Note, Num, Panel, BEFORE, INK};
use super::super::Chart;
use super::{base_figure, base_run, before_legend, chance, chance_legend, chance_line, run_swatches};

pub(super) fn letters_figure(runs: &[(usize, &RunData)]) -> Figure {
    let base = base_run(runs);
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
    before_legend(&mut legend, base, runs.len());
    legend.push(LegendItem::heading("after fine-tuning"));
    legend.extend(run_swatches(runs));
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
