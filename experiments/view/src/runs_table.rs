//! The runs table: status, dataset, key hyperparameters, before → after held-out metrics, one row per run.

use eframe::egui::{self, Color32, RichText};
use egui_extras::{Column, TableBuilder, TableRow};
use experiments::model::engine::Summary;
use experiments::run::store::{RunInfo, RunStatus};

/// What the user did in the table this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    None,
    /// Clicked a row: the cursor goes there.
    Cursor(usize),
    /// Ticked or unticked a run's checkbox.
    Toggle(i64),
    /// Double-clicked a row.
    Open(i64),
}

const HEADERS: [&str; 8] =
    ["run", "experiment", "status", "dataset", "hyperparameters", "train / held-out", "held-out acc", "held-out p(label)"];

/// Draws the table of `rows` (the selected ones ticked, the cursor's row highlighted).
pub fn show(ui: &mut egui::Ui, rows: &[RunInfo], selected: &[i64], cursor: usize) -> Action {
    if rows.is_empty() {
        ui.label("No runs (yet). Start one with `cliplab run` or `cliplab demo`; they appear here on their own.");
        return Action::None;
    }
    let mut action = Action::None;
    TableBuilder::new(ui)
        .id_salt("runs")
        .striped(true)
        .sense(egui::Sense::click())
        .scroll_to_row(cursor, None)
        .column(Column::auto().at_least(70.0))
        .column(Column::auto().at_least(120.0).clip(true))
        .column(Column::auto().at_least(140.0))
        .column(Column::auto().at_least(100.0).clip(true))
        .column(Column::auto().at_least(150.0))
        .column(Column::auto().at_least(90.0))
        .column(Column::auto().at_least(100.0))
        .column(Column::remainder().at_least(110.0))
        .header(20.0, |header| header_row(header, &HEADERS))
        .body(|body| {
            body.rows(20.0, rows.len(), |mut row| {
                let i = row.index();
                let r = &rows[i];
                row.set_selected(i == cursor);
                let mut ticked = selected.contains(&r.id);
                row.col(|ui| {
                    if ui.checkbox(&mut ticked, format!("run {}", r.id)).changed() {
                        action = Action::Toggle(r.id);
                    }
                });
                row.col(|ui| {
                    ui.label(&r.experiment_name);
                });
                row.col(|ui| {
                    ui.label(status_text(r)).on_hover_text(r.error.as_deref().unwrap_or(""));
                });
                row.col(|ui| {
                    ui.label(&r.dataset_name);
                });
                row.col(|ui| {
                    ui.label(hyper_text(r));
                });
                row.col(|ui| {
                    ui.label(format!("{} / {}", r.train_samples, r.heldout_samples));
                });
                row.col(|ui| {
                    ui.label(change(r.metrics.heldout_before, r.metrics.heldout_after, |s| pct(s.accuracy)));
                });
                row.col(|ui| {
                    ui.label(change(r.metrics.heldout_before, r.metrics.heldout_after, |s| {
                        format!("{:.3}", s.mean_label_prob)
                    }));
                });
                let resp = row.response();
                if resp.double_clicked() {
                    action = Action::Open(r.id);
                } else if resp.clicked() && action == Action::None {
                    action = Action::Cursor(i);
                }
            });
        });
    action
}

/// A table's header row: the column names in bold.
pub fn header_row(mut header: TableRow<'_, '_>, names: &[&str]) {
    for h in names {
        header.col(|ui| {
            ui.strong(*h);
        });
    }
}

/// `adamw lr 1e-4 · 5 ep · bs 16`.
pub fn hyper_text(r: &RunInfo) -> String {
    format!("{} lr {:e} · {} ep · bs {}", r.optimizer, r.lr, r.epochs, r.batch_size)
}

/// The status, coloured, with the phase and its progress while it runs.
pub fn status_text(r: &RunInfo) -> RichText {
    let mut text = r.status.to_string();
    if !r.status.is_finished() {
        if let Some(phase) = r.phase {
            text.push_str(&format!(" · {}", phase.label()));
            if let (Some(done), Some(total)) = (r.phase_done, r.phase_total) {
                text.push_str(&format!(" {done}/{total}"));
            }
        }
    }
    RichText::new(text).color(status_colour(r.status))
}

fn status_colour(s: RunStatus) -> Color32 {
    match s {
        RunStatus::Completed => Color32::from_rgb(0x1B, 0x9E, 0x3E),
        RunStatus::Running | RunStatus::Queued => Color32::from_rgb(0x1F, 0x77, 0xB4),
        RunStatus::Failed | RunStatus::Interrupted => Color32::from_rgb(0xD2, 0x2B, 0x2B),
        RunStatus::Cancelled => Color32::GRAY,
    }
}

/// `before → after` of a metric; `–` where it was not measured (yet).
pub fn change(before: Option<Summary>, after: Option<Summary>, f: impl Fn(&Summary) -> String) -> String {
    let show = |s: Option<Summary>| s.as_ref().map_or_else(|| "–".to_string(), &f);
    format!("{} -> {}", show(before), show(after))
}

/// A fraction as a percentage.
pub fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}
