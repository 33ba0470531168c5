//! What the monitor shows, read from the store through the core's API: the runs table, the records and loss
//! curves of the runs it watches, and (on demand) a run's per-sample results.
//!
//! Nothing here knows about egui, so the tests can compare what the window plots with what the store holds.
//! The store is in WAL mode: these reads never block a process that is training and writing to it.

use std::collections::HashMap;
use std::path::Path;

use experiments::events::Phase;
use experiments::report::analysis::RunData;
use experiments::report::compare::load_run_data;
use experiments::run::store::{RunDetail, RunInfo, RunMetrics, RunStatus, Store};
use experiments::Result;

/// The loss curves of one run, as plotted: `[x, loss]` points in the store's order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curves {
    /// `[step, loss]` of every recorded optimizer step.
    pub steps: Vec<[f64; 2]>,
    /// `[epoch, mean training loss]` of every finished epoch.
    pub epochs_train: Vec<[f64; 2]>,
    /// `[epoch, held-out loss]` of the epochs that measured one.
    pub epochs_heldout: Vec<[f64; 2]>,
}

impl Curves {
    /// The curves of what the store recorded about a run.
    pub fn of(detail: &RunDetail) -> Curves {
        Curves {
            steps: detail.step_losses.iter().map(|s| [s.step as f64, s.loss]).collect(),
            epochs_train: detail.epoch_losses.iter().map(|e| [e.epoch as f64, e.train_loss]).collect(),
            epochs_heldout: detail
                .epoch_losses
                .iter()
                .filter_map(|e| e.heldout_loss.map(|l| [e.epoch as f64, l]))
                .collect(),
        }
    }
}

/// A run the monitor follows: its record and its curves.
#[derive(Debug, Clone)]
struct Watched {
    detail: RunDetail,
    curves: Curves,
}

/// What a run's per-sample scores depend on: they are recorded when a scoring phase ends, together with the
/// metrics in the run's row.
type ScoresKey = (RunStatus, RunMetrics, Option<Phase>);

fn scores_key(info: &RunInfo) -> ScoresKey {
    (info.status, info.metrics, info.phase)
}

/// The store as the monitor last read it.
#[derive(Debug)]
pub struct StoreView {
    store: Store,
    runs: Vec<RunInfo>,
    watched: HashMap<i64, Watched>,
    /// Per-sample results of the runs last asked for, with what they were read at.
    data: HashMap<i64, (ScoresKey, RunData)>,
}

impl StoreView {
    /// Opens the store of a CLIP Lab home (as every face does: `Store::open`) and reads its runs.
    pub fn open(home: &Path) -> Result<StoreView> {
        StoreView::new(Store::open(home)?)
    }

    /// A view over an open store; reads its runs.
    pub fn new(store: Store) -> Result<StoreView> {
        let mut view = StoreView { store, runs: Vec::new(), watched: HashMap::new(), data: HashMap::new() };
        view.refresh(&[])?;
        Ok(view)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Reads the runs table again, then the records of the runs in `watch` and of every queued or running run:
    /// unfinished ones every time (their steps grow), finished ones only when their row changed. Runs whose
    /// process died are marked `interrupted` first (as the app does), so a crashed run does not look alive.
    pub fn refresh(&mut self, watch: &[i64]) -> Result<()> {
        if self.runs.iter().any(|r| !r.status.is_finished()) {
            self.store.recover_interrupted()?;
        }
        self.runs = self.store.runs()?;
        let mut ids: Vec<i64> = watch.to_vec();
        ids.extend(self.runs.iter().filter(|r| !r.status.is_finished()).map(|r| r.id));
        self.watched.retain(|id, _| ids.contains(id));
        for id in ids {
            let Some(info) = self.runs.iter().find(|r| r.id == id) else { continue };
            let stale = self.watched.get(&id).is_none_or(|w| !info.status.is_finished() || w.detail.info != *info);
            if stale {
                let detail = self.store.run(id)?;
                let curves = Curves::of(&detail);
                self.watched.insert(id, Watched { detail, curves });
            }
        }
        Ok(())
    }

    /// Every run, newest first.
    pub fn runs(&self) -> &[RunInfo] {
        &self.runs
    }

    /// A run's row, if the store has it.
    pub fn run(&self, id: i64) -> Option<&RunInfo> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// A watched run's record (after the [`StoreView::refresh`] that watched it).
    pub fn detail(&self, id: i64) -> Option<&RunDetail> {
        self.watched.get(&id).map(|w| &w.detail)
    }

    /// A watched run's curves (after the [`StoreView::refresh`] that watched it).
    pub fn curves(&self, id: i64) -> Option<&Curves> {
        self.watched.get(&id).map(|w| &w.curves)
    }

    /// The per-sample results of run `id` (what `cliplab compare` analyses), read once and again whenever the
    /// run recorded new scores. Results of other runs are dropped (they can be large).
    pub fn run_data(&mut self, id: i64) -> Result<Option<&RunData>> {
        let Some(key) = self.run(id).map(scores_key) else { return Ok(None) };
        self.data.retain(|k, _| *k == id);
        if self.data.get(&id).is_none_or(|(seen, _)| *seen != key) {
            let data = load_run_data(&self.store, id)?;
            self.data.insert(id, (key, data));
        }
        Ok(self.data.get(&id).map(|(_, d)| d))
    }
}
