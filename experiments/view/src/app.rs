//! The monitor's window: its state, the two screens (the runs, one run), the keyboard and the refresh tick.
//!
//! - Runs screen: the runs table (filter with `/`, move with the arrows, Space or the checkbox to select, Enter
//!   to open); under it the loss curves of the selected runs (of the running ones when none is selected) and,
//!   with two or more selected, their metrics and the hyperparameters that differ.
//! - Run screen (Enter, Esc goes back): the run's record, its curves and its per-sample table.
//!
//! The store is read again every [`Options::refresh_every`] (of egui's clock, so tests can drive it).

use std::path::Path;
use std::time::Duration;

use eframe::egui::{self, Color32, Key, Modifiers};
use experiments::report::compare::run_label;
use experiments::report::plots;
use experiments::run::store::{RunInfo, Store};

use crate::model::{Curves, StoreView};
use crate::{compare, curves, run_screen, runs_table};

/// How the monitor starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often the store is read again.
    pub refresh_every: Duration,
    /// Runs named on the command line: one is opened, several are selected (compared).
    pub runs: Vec<i64>,
}

impl Default for Options {
    fn default() -> Self {
        Options { refresh_every: Duration::from_secs(1), runs: Vec::new() }
    }
}

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Runs,
    /// One run, with its per-sample table.
    Run(i64),
}

/// A run as plotted: its id, legend, colour and points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series<'a> {
    pub id: i64,
    pub label: String,
    /// `plots::palette(i)`: the colour the app and the exported charts give the same run in the same list.
    pub colour: Color32,
    pub curves: &'a Curves,
}

/// The colour of the `i`-th run of a list, as in the app and the exported charts.
pub fn run_colour(i: usize) -> Color32 {
    let c = plots::palette(i);
    Color32::from_rgb(c.0, c.1, c.2)
}

/// The monitor: a read-only window over one store.
pub struct Monitor {
    pub(crate) view: StoreView,
    pub(crate) screen: Screen,
    /// Selected runs, in the order they were selected (their colours).
    pub(crate) selected: Vec<i64>,
    /// Row of the filtered runs table the keyboard is on.
    pub(crate) cursor: usize,
    pub(crate) filter: String,
    focus_filter: bool,
    pub(crate) samples: run_screen::SampleTable,
    refresh_every: f64,
    last_refresh: Option<f64>,
    /// The last refresh's error (the store stays as last read).
    pub(crate) error: Option<String>,
    /// Runs named on the command line that the store does not have.
    missing: Option<String>,
}

impl Monitor {
    /// A monitor over `store`.
    pub fn new(store: Store, opts: Options) -> experiments::Result<Monitor> {
        let view = StoreView::new(store)?;
        let screen = match opts.runs.as_slice() {
            [one] => Screen::Run(*one),
            _ => Screen::Runs,
        };
        let selected = if opts.runs.len() > 1 { opts.runs.clone() } else { Vec::new() };
        let mut monitor = Monitor {
            view,
            screen,
            selected,
            cursor: 0,
            filter: String::new(),
            focus_filter: false,
            samples: run_screen::SampleTable::default(),
            refresh_every: opts.refresh_every.as_secs_f64(),
            last_refresh: None,
            error: None,
            missing: None,
        };
        monitor.missing = opts.runs.iter().find(|id| monitor.view.run(**id).is_none()).map(|id| no_run(*id));
        Ok(monitor)
    }

    /// Opens the store of `home` and starts a monitor over it.
    pub fn open(home: &Path, opts: Options) -> experiments::Result<Monitor> {
        Monitor::new(Store::open(home)?, opts)
    }

    /// The screen shown.
    pub fn screen(&self) -> Screen {
        self.screen
    }

    /// The selected runs, in selection order.
    pub fn selected(&self) -> &[i64] {
        &self.selected
    }

    /// The order of the per-sample table.
    pub fn samples_sort(&self) -> run_screen::SampleSort {
        self.samples.sort
    }

    /// What the store view holds now.
    pub fn view(&self) -> &StoreView {
        &self.view
    }

    /// The runs the curves show now, each with its colour and exactly the points drawn: the opened run; else
    /// the selected runs in selection order; else the running (and queued) runs, oldest first.
    pub fn plotted(&self) -> Vec<Series<'_>> {
        let ids: Vec<i64> = match self.screen {
            Screen::Run(id) => vec![id],
            Screen::Runs if !self.selected.is_empty() => self.selected.clone(),
            Screen::Runs => {
                self.view.runs().iter().rev().filter(|r| !r.status.is_finished()).map(|r| r.id).collect()
            }
        };
        ids.iter()
            .enumerate()
            .filter_map(|(i, &id)| {
                let info = self.view.run(id)?;
                let curves = self.view.curves(id)?;
                Some(Series { id, label: run_label(info), colour: run_colour(i), curves })
            })
            .collect()
    }

    /// The runs the table lists: every run whose row matches the filter, newest first.
    pub fn filtered(&self) -> Vec<&RunInfo> {
        let needle = self.filter.trim().to_lowercase();
        self.view.runs().iter().filter(|r| needle.is_empty() || row_text(r).contains(&needle)).collect()
    }

    /// Reads the store again now (the tick does it on its own).
    pub fn refresh(&mut self) {
        let mut watch = self.selected.clone();
        if let Screen::Run(id) = self.screen {
            watch.push(id);
        }
        self.error = self.view.refresh(&watch).err().map(|e| e.to_string());
    }

    /// Draws the whole window into `ui` (eframe's root ui, or a test harness's).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.tick(ui.ctx());
        self.keys(ui.ctx());
        egui::Panel::top("bar").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::CentralPanel::default().show(ui, |ui| match self.screen {
            Screen::Runs => self.runs_screen(ui),
            Screen::Run(id) => run_screen::show(self, ui, id),
        });
    }

    /// Refreshes when the interval has passed (egui's clock) and asks for the next frame then.
    fn tick(&mut self, ctx: &egui::Context) {
        let now = ctx.input(|i| i.time);
        let due = self.last_refresh.is_none_or(|t| now - t >= self.refresh_every);
        if due {
            self.refresh();
            self.last_refresh = Some(now);
        }
        let waited = self.last_refresh.map_or(0.0, |t| now - t);
        ctx.request_repaint_after(Duration::from_secs_f64((self.refresh_every - waited).max(0.05)));
    }

    /// Arrows, Space, Enter, Esc and `/`; none of them while the filter box has the keyboard (but Esc and Enter
    /// leave it).
    fn keys(&mut self, ctx: &egui::Context) {
        if ctx.text_edit_focused() {
            if ctx.input(|i| i.key_pressed(Key::Escape) || i.key_pressed(Key::Enter)) {
                ctx.memory_mut(|m| m.stop_text_input());
            }
            return;
        }
        let pressed = |key| ctx.input_mut(|i| i.consume_key(Modifiers::NONE, key));
        if pressed(Key::Slash) {
            self.screen = Screen::Runs;
            self.focus_filter = true;
        } else if pressed(Key::Escape) {
            self.back();
        }
        match self.screen {
            Screen::Runs => {
                let n = self.filtered().len();
                if pressed(Key::ArrowDown) {
                    self.cursor = (self.cursor + 1).min(n.saturating_sub(1));
                }
                if pressed(Key::ArrowUp) {
                    self.cursor = self.cursor.saturating_sub(1);
                }
                if pressed(Key::Space) {
                    self.toggle_cursor();
                }
                if pressed(Key::Enter) {
                    self.open_cursor();
                }
            }
            Screen::Run(_) => self.samples.keys(ctx),
        }
    }

    /// Esc: from a run back to the runs; on the runs, clears the filter, then the selection.
    fn back(&mut self) {
        match self.screen {
            Screen::Run(_) => self.screen = Screen::Runs,
            Screen::Runs if !self.filter.is_empty() => self.filter.clear(),
            Screen::Runs => self.selected.clear(),
        }
    }

    fn cursor_run(&self) -> Option<i64> {
        self.filtered().get(self.cursor).map(|r| r.id)
    }

    /// Selects or unselects the run under the cursor.
    pub(crate) fn toggle_cursor(&mut self) {
        if let Some(id) = self.cursor_run() {
            self.toggle(id);
        }
    }

    pub(crate) fn toggle(&mut self, id: i64) {
        if let Some(at) = self.selected.iter().position(|s| *s == id) {
            self.selected.remove(at);
        } else {
            self.selected.push(id);
            self.refresh();
        }
    }

    /// Opens the run under the cursor.
    pub(crate) fn open_cursor(&mut self) {
        if let Some(id) = self.cursor_run() {
            self.open_run(id);
        }
    }

    pub(crate) fn open_run(&mut self, id: i64) {
        self.screen = Screen::Run(id);
        self.samples = run_screen::SampleTable::default();
        self.refresh();
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("CLIP Lab");
            ui.label(egui::RichText::new(self.view.path().display().to_string()).weak());
            ui.separator();
            ui.label("Filter (/):");
            let edit = ui.add(egui::TextEdit::singleline(&mut self.filter).hint_text("experiment, dataset, status…"));
            if std::mem::take(&mut self.focus_filter) {
                edit.request_focus();
            }
            if edit.changed() {
                self.cursor = 0;
            }
        });
    }

    fn status_bar(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(e) = self.error.as_ref().or(self.missing.as_ref()) {
                ui.colored_label(Color32::from_rgb(0xD2, 0x2B, 0x2B), e);
                return;
            }
            let running = self.view.runs().iter().filter(|r| !r.status.is_finished()).count();
            ui.label(format!("{} runs, {running} running · read every {:.0} s", self.view.runs().len(), self.refresh_every));
            ui.separator();
            let hint = match self.screen {
                Screen::Runs => "Up/Down move · Space select · Enter open · / filter · Esc clear",
                Screen::Run(_) => "Up/Down move · G gain / L loss / R row order · Esc back",
            };
            ui.label(egui::RichText::new(hint).weak());
        });
    }

    fn runs_screen(&mut self, ui: &mut egui::Ui) {
        let rows: Vec<RunInfo> = self.filtered().into_iter().cloned().collect();
        self.cursor = self.cursor.min(rows.len().saturating_sub(1));
        let avail = ui.available_height();
        let table_h = if self.selected.len() > 1 { avail * 0.35 } else { avail * 0.45 };
        let action = ui
            .allocate_ui(egui::vec2(ui.available_width(), table_h), |ui| {
                runs_table::show(ui, &rows, &self.selected, self.cursor)
            })
            .inner;
        match action {
            runs_table::Action::None => {}
            runs_table::Action::Cursor(i) => self.cursor = i,
            runs_table::Action::Toggle(id) => self.toggle(id),
            runs_table::Action::Open(id) => self.open_run(id),
        }
        ui.separator();
        egui::ScrollArea::vertical().id_salt("below").show(ui, |ui| {
            let series = self.plotted();
            curves::show(ui, "runs", &series, self.selected.is_empty());
            if self.selected.len() > 1 {
                ui.separator();
                compare::show(ui, &self.view, &self.selected);
            }
        });
    }
}

/// What the filter matches in a row (lower case).
fn row_text(r: &RunInfo) -> String {
    format!("run {} {} {} {} {}", r.id, r.experiment_name, r.dataset_name, r.status, r.optimizer).to_lowercase()
}

pub(crate) fn no_run(id: i64) -> String {
    format!("run {id} is not in this store")
}

impl eframe::App for Monitor {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        Monitor::ui(self, ui);
    }
}
