//! The loss curves: per step and per epoch (train solid, held-out dashed), one colour per run, with egui_plot.

use eframe::egui::{self, RichText};
use egui_plot::{Legend, Line, LineStyle, Plot, PlotPoints};

use crate::app::Series;

/// Draws the step and epoch plots of `series` side by side, then one line per run (steps, last loss, epochs).
/// `salt` keeps the plots of different screens apart (zoom, hidden series).
pub fn show(ui: &mut egui::Ui, salt: &str, series: &[Series<'_>], running_only: bool) {
    if series.is_empty() {
        ui.label(if running_only {
            "No run is running. Select runs (Space or their checkbox) to see and compare their curves."
        } else {
            "Nothing recorded yet."
        });
        return;
    }
    ui.label(RichText::new(if running_only { "Loss of the running runs" } else { "Loss" }).strong());
    let height = (ui.available_height() - 40.0).clamp(180.0, 320.0);
    ui.columns(2, |cols| {
        step_plot(&mut cols[0], salt, series, height);
        epoch_plot(&mut cols[1], salt, series, height);
    });
    for s in series {
        ui.colored_label(s.colour, summary_line(s));
    }
}

/// A loss plot over `x`, with a legend; `id` keeps it apart from the other plots.
fn loss_plot(id: String, height: f32, x: &str) -> Plot<'static> {
    Plot::new(id).height(height).legend(Legend::default()).x_axis_label(x.to_string()).y_axis_label("loss")
}

fn step_plot(ui: &mut egui::Ui, salt: &str, series: &[Series<'_>], height: f32) {
    loss_plot(format!("{salt}-steps"), height, "step").show(ui, |plot| {
        for s in series {
            plot.line(Line::new(s.label.clone(), PlotPoints::new(s.curves.steps.clone())).color(s.colour));
        }
    });
}

fn epoch_plot(ui: &mut egui::Ui, salt: &str, series: &[Series<'_>], height: f32) {
    loss_plot(format!("{salt}-epochs"), height, "epoch (train solid, held-out dashed)").show(ui, |plot| {
        for s in series {
            let train = Line::new(s.label.clone(), PlotPoints::new(s.curves.epochs_train.clone()));
            plot.line(train.color(s.colour).width(2.0));
            if !s.curves.epochs_heldout.is_empty() {
                let heldout = Line::new(format!("{} held-out", s.label), PlotPoints::new(s.curves.epochs_heldout.clone()));
                plot.line(heldout.color(s.colour).width(2.0).style(LineStyle::dashed_loose()));
            }
        }
    });
}

/// `run 3 · adam lr 2e-3: 240 steps, last loss 0.4312 · 3 epochs, held-out 0.5120`.
pub fn summary_line(s: &Series<'_>) -> String {
    let c = s.curves;
    let mut text = format!("{}: {} steps", s.label, c.steps.len());
    if let Some([_, loss]) = c.steps.last() {
        text.push_str(&format!(", last loss {loss:.4}"));
    }
    text.push_str(&format!(" · {} epochs", c.epochs_train.len()));
    if let Some([_, loss]) = c.epochs_heldout.last() {
        text.push_str(&format!(", held-out {loss:.4}"));
    }
    text
}
