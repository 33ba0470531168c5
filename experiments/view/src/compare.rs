//! Two or more selected runs side by side: their metrics (before → after, train and held-out, final losses, step
//! time and peak memory) and the hyperparameters that differ (the same diff as `cliplab compare`).

use eframe::egui::{self, RichText};
use experiments::report::analysis::{format_value, json_diff};
use experiments::report::compare::run_hyperparameters;

use crate::app::run_colour;
use crate::model::StoreView;
use crate::runs_table::{change, pct};

/// Draws the metrics table and the hyperparameter diff of the runs `ids` (colours by position in `ids`).
pub fn show(ui: &mut egui::Ui, view: &StoreView, ids: &[i64]) {
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| metrics(ui, view, ids));
        ui.add_space(24.0);
        ui.vertical(|ui| hyperparameters(ui, view, ids));
    });
}

fn metrics(ui: &mut egui::Ui, view: &StoreView, ids: &[i64]) {
    ui.label(RichText::new("Metrics (before -> after)").strong());
    egui::Grid::new("compare-metrics").striped(true).num_columns(9).show(ui, |ui| {
        for h in ["run", "status", "train acc", "held-out acc", "train p(label)", "held-out p(label)", "final loss", "step", "peak memory"] {
            ui.strong(h);
        }
        ui.end_row();
        for (i, id) in ids.iter().enumerate() {
            let Some(r) = view.run(*id) else { continue };
            let m = &r.metrics;
            let p = |s: &experiments::model::engine::Summary| format!("{:.3}", s.mean_label_prob);
            ui.colored_label(run_colour(i), format!("run {id}"));
            ui.label(r.status.to_string());
            ui.label(change(m.train_before, m.train_after, |s| pct(s.accuracy)));
            ui.label(change(m.heldout_before, m.heldout_after, |s| pct(s.accuracy)));
            ui.label(change(m.train_before, m.train_after, p));
            ui.label(change(m.heldout_before, m.heldout_after, p));
            ui.label(final_loss(view, *id));
            let system = view.detail(*id).and_then(|d| d.system.as_ref());
            ui.label(system.and_then(|s| s.train_step_s).map_or("–".into(), |t| format!("{t:.3} s")));
            ui.label(system.and_then(|s| s.peak_rss_mib).map_or("–".into(), |m| format!("{m:.0} MiB")));
            ui.end_row();
        }
    });
}

/// The last epoch's train (and held-out) loss.
fn final_loss(view: &StoreView, id: i64) -> String {
    let Some(c) = view.curves(id) else { return "–".into() };
    match (c.epochs_train.last(), c.epochs_heldout.last()) {
        (Some([_, t]), Some([_, h])) => format!("{t:.4} / {h:.4}"),
        (Some([_, t]), None) => format!("{t:.4}"),
        _ => "–".into(),
    }
}

fn hyperparameters(ui: &mut egui::Ui, view: &StoreView, ids: &[i64]) {
    ui.label(RichText::new("Hyperparameters that differ").strong());
    let mut specs = Vec::new();
    for id in ids {
        match view.detail(*id).map(run_hyperparameters) {
            Some(Ok(v)) => specs.push(v),
            Some(Err(e)) => {
                ui.label(e.to_string());
                return;
            }
            None => {
                ui.label(format!("run {id}: not read yet"));
                return;
            }
        }
    }
    let diff = json_diff(&specs.iter().collect::<Vec<_>>());
    if diff.is_empty() {
        ui.label("(all hyperparameters are the same)");
        return;
    }
    egui::Grid::new("compare-hyper").striped(true).num_columns(ids.len() + 1).show(ui, |ui| {
        ui.strong("key");
        for (i, id) in ids.iter().enumerate() {
            ui.colored_label(run_colour(i), RichText::new(format!("run {id}")).strong());
        }
        ui.end_row();
        for d in &diff {
            ui.label(&d.key);
            for v in &d.values {
                ui.label(format_value(v.as_ref()));
            }
            ui.end_row();
        }
    });
}
