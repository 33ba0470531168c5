//! One run: its record, its curves, and its per-sample table (each caption choice with its probability before
//! and after fine-tuning), sortable by gain or loss of the right caption's probability.

use eframe::egui::{self, Color32, Key, Modifiers, RichText};
use egui_extras::{Column, TableBuilder};
use experiments::report::analysis::{RunData, SampleResult};
use experiments::run::store::RunInfo;
use experiments::vocab::{letter, Stage};

use crate::app::{no_run, Monitor};
use crate::curves;
use crate::runs_table::{change, header_row, hyper_text, pct, status_text};

/// How the per-sample table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SampleSort {
    /// Largest gain of p(label) first.
    #[default]
    Gain,
    /// Largest loss of p(label) first.
    Loss,
    /// The run's order (its train samples, then its held-out samples).
    Row,
}

/// The per-sample table's state: its order and the sample the keyboard is on.
#[derive(Debug, Clone, Default)]
pub struct SampleTable {
    pub sort: SampleSort,
    pub cursor: usize,
}

impl SampleTable {
    /// ↑/↓ move, G/L/R sort by gain, by loss, by row.
    pub(crate) fn keys(&mut self, ctx: &egui::Context) {
        let pressed = |key| ctx.input_mut(|i| i.consume_key(Modifiers::NONE, key));
        if pressed(Key::ArrowDown) {
            self.cursor += 1;
        }
        if pressed(Key::ArrowUp) {
            self.cursor = self.cursor.saturating_sub(1);
        }
        for (key, sort) in [(Key::G, SampleSort::Gain), (Key::L, SampleSort::Loss), (Key::R, SampleSort::Row)] {
            if pressed(key) {
                self.sort = sort;
                self.cursor = 0;
            }
        }
    }
}

/// The samples of `run` in table order.
pub fn sorted_samples(run: &RunData, sort: SampleSort) -> Vec<&SampleResult> {
    let mut samples: Vec<&SampleResult> = run.samples.iter().collect();
    let key = |s: &SampleResult| s.delta().filter(|d| d.is_finite());
    match sort {
        SampleSort::Row => {}
        // Samples without both scores go last either way.
        SampleSort::Gain => samples.sort_by(|a, b| cmp_desc(key(a), key(b))),
        SampleSort::Loss => samples.sort_by(|a, b| cmp_desc(key(a).map(|d| -d), key(b).map(|d| -d))),
    }
    samples
}

fn cmp_desc(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// Draws the run screen of run `id`.
pub fn show(m: &mut Monitor, ui: &mut egui::Ui, id: i64) {
    let Some(info) = m.view.run(id).cloned() else {
        ui.label(no_run(id));
        return;
    };
    header(ui, &info);
    if let Some(s) = m.view.detail(id).and_then(|d| d.system.as_ref()) {
        ui.label(format!("speed: {}", s.speed_line()));
        ui.label(format!("machine: {}", s.machine_line()));
    }
    let series = m.plotted();
    ui.allocate_ui(egui::vec2(ui.available_width(), 300.0), |ui| curves::show(ui, "run", &series, false));
    ui.separator();
    ui.horizontal(|ui| {
        ui.strong("Samples");
        ui.label("sort:");
        for (sort, text) in [(SampleSort::Gain, "by gain (G)"), (SampleSort::Loss, "by loss (L)"), (SampleSort::Row, "by row (R)")] {
            if ui.selectable_label(m.samples.sort == sort, text).clicked() {
                m.samples.sort = sort;
                m.samples.cursor = 0;
            }
        }
    });
    let data = match m.view.run_data(id) {
        Ok(Some(d)) => d,
        Ok(None) => return,
        Err(e) => {
            ui.colored_label(Color32::from_rgb(0xD2, 0x2B, 0x2B), e.to_string());
            return;
        }
    };
    let samples = sorted_samples(data, m.samples.sort);
    if samples.is_empty() {
        ui.label("No scores yet: they are recorded when the run has scored its samples.");
        return;
    }
    m.samples.cursor = m.samples.cursor.min(samples.len() - 1);
    sample_table(ui, &samples, m.samples.cursor);
}

fn header(ui: &mut egui::Ui, r: &RunInfo) {
    ui.horizontal(|ui| {
        ui.heading(format!("run {} · {}", r.id, r.experiment_name));
        ui.label(status_text(r));
    });
    ui.label(format!(
        "dataset {} · {} · {} train / {} held-out · device {}",
        r.dataset_name,
        hyper_text(r),
        r.train_samples,
        r.heldout_samples,
        r.device.as_deref().unwrap_or("–")
    ));
    let m = &r.metrics;
    ui.label(format!(
        "held-out acc {} · p(label) {}   train acc {} · p(label) {}",
        change(m.heldout_before, m.heldout_after, |s| pct(s.accuracy)),
        change(m.heldout_before, m.heldout_after, |s| format!("{:.3}", s.mean_label_prob)),
        change(m.train_before, m.train_after, |s| pct(s.accuracy)),
        change(m.train_before, m.train_after, |s| format!("{:.3}", s.mean_label_prob)),
    ));
    if let Some(e) = &r.error {
        ui.colored_label(Color32::from_rgb(0xD2, 0x2B, 0x2B), e);
    }
}

const SAMPLE_HEADERS: [&str; 7] = ["sample", "split", "choice", "caption", "p before", "p after", "Δ p(label)"];

/// One row per caption choice; the sample's name and its Δ p(label) on its first choice's row.
fn sample_table(ui: &mut egui::Ui, samples: &[&SampleResult], cursor: usize) {
    let rows: Vec<(usize, usize)> =
        samples.iter().enumerate().flat_map(|(i, s)| (0..s.choices.len()).map(move |c| (i, c))).collect();
    let first_row = rows.iter().position(|(i, _)| *i == cursor).unwrap_or(0);
    TableBuilder::new(ui)
        .id_salt("samples")
        .striped(true)
        .scroll_to_row(first_row, None)
        .column(Column::auto().at_least(110.0).clip(true))
        .column(Column::auto().at_least(60.0))
        .column(Column::auto().at_least(50.0))
        .column(Column::initial(420.0).at_least(160.0).clip(true).resizable(true))
        .column(Column::auto().at_least(70.0))
        .column(Column::auto().at_least(70.0))
        .column(Column::remainder().at_least(80.0))
        .header(20.0, |header| header_row(header, &SAMPLE_HEADERS))
        .body(|body| {
            body.rows(18.0, rows.len(), |mut row| {
                let (i, c) = rows[row.index()];
                let s = samples[i];
                row.set_selected(i == cursor);
                choice_row(&mut row, s, c);
            });
        });
}

fn choice_row(row: &mut egui_extras::TableRow<'_, '_>, s: &SampleResult, c: usize) {
    let first = c == 0;
    let is_label = c == s.label;
    let prob = |stage| s.probs(stage).and_then(|p| p.get(c)).map_or_else(|| "–".to_string(), |p| format!("{p:.3}"));
    row.col(|ui| {
        if first {
            ui.label(&s.filename);
        }
    });
    row.col(|ui| {
        if first {
            ui.label(s.split.to_string());
        }
    });
    row.col(|ui| {
        let text = if is_label { format!("{} (right)", letter(c)) } else { letter(c) };
        ui.label(text);
    });
    row.col(|ui| {
        let caption = RichText::new(s.choices.get(c).map_or("", String::as_str));
        ui.label(if is_label { caption.strong() } else { caption });
    });
    row.col(|ui| {
        ui.label(prob(Stage::Before));
    });
    row.col(|ui| {
        ui.label(prob(Stage::After));
    });
    row.col(|ui| {
        if let (true, Some(d)) = (first, s.delta()) {
            let colour = if d >= 0.0 { Color32::from_rgb(0x1B, 0x9E, 0x3E) } else { Color32::from_rgb(0xD2, 0x2B, 0x2B) };
            ui.colored_label(colour, format!("{d:+.3}"));
        }
    });
}
