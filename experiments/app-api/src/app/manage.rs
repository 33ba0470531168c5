//! Finding and cleaning up: the runs table (labels, disk use, spec columns), tags and notes, archiving, and
//! deleting runs, experiments, datasets and checkpoints. Every delete is asked first with `apply = false`
//! (what it would remove, for the confirmation), then done; the store never touches files it does not own.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use experiments::run::checkpoint::{self, CheckpointState, DiskUsage};
use experiments::run::store::{Labelled, RunLabels};

use super::{lock, App};
use crate::views::*;
use crate::Result;

/// How long a disk measurement is reused: the runs table reloads on every burst of run events, and measuring
/// walks every run folder.
const DISK_CACHE: Duration = Duration::from_secs(5);

/// `{"train": {"lr": 1e-4}}` → `train.lr` = `0.0001`.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        serde_json::Value::Null => {
            out.insert(prefix.to_string(), String::new());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

impl App {
    /// The home's disk use, measured at most every [`DISK_CACHE`].
    fn disk_usage(&self) -> Result<DiskUsage> {
        let mut cache = lock(&self.disk);
        if let Some((at, d)) = cache.as_ref() {
            if at.elapsed() < DISK_CACHE {
                return Ok(d.clone());
            }
        }
        let d = checkpoint::disk_usage(&self.store(), &self.home)?;
        *cache = Some((Instant::now(), d.clone()));
        Ok(d)
    }

    /// Forgets cached data of deleted or changed runs (the disk measurement, finished runs' data).
    fn forget_caches(&self) {
        *lock(&self.disk) = None;
        lock(&self.finished_runs).clear();
        lock(&self.samples).clear();
    }

    /// The runs table.
    pub fn runs_table(&self) -> Result<RunsTable> {
        let disk = self.disk_usage()?;
        let store = self.store();
        let runs = store.runs()?;
        let mut labels = store.run_labels()?;
        let exp_labels = store.experiment_labels()?;
        let params: HashMap<i64, BTreeMap<String, String>> = store
            .experiments()?
            .into_iter()
            .map(|e| {
                let mut flat = BTreeMap::new();
                if let Ok(v) = serde_json::to_value(&e.spec) {
                    flatten("", &v, &mut flat);
                }
                (e.id, flat)
            })
            .collect();
        let sweeps = store
            .sweeps()?
            .into_iter()
            .map(|s| SweepBrief { id: s.id, name: s.name, n_runs: s.run_ids.len() })
            .collect();
        drop(store);
        let by_run: HashMap<i64, (u64, bool, CheckpointState)> =
            disk.runs.iter().map(|r| (r.run_id, (r.bytes, r.has_checkpoint, r.checkpoint))).collect();
        let rows = runs
            .into_iter()
            .map(|info| {
                let (disk_bytes, has_checkpoint, checkpoint) =
                    by_run.get(&info.id).copied().unwrap_or((0, false, CheckpointState::None));
                RunRow {
                    labels: labels.remove(&info.id).unwrap_or_else(|| RunLabels { run_id: info.id, ..RunLabels::default() }),
                    experiment_tags: exp_labels.get(&info.experiment_id).map(|l| l.0.clone()).unwrap_or_default(),
                    params: params.get(&info.experiment_id).cloned().unwrap_or_default(),
                    disk_bytes,
                    has_checkpoint,
                    checkpoint,
                    info,
                }
            })
            .collect();
        Ok(RunsTable { rows, total_bytes: disk.total_bytes, sweeps })
    }

    /// A run's and its experiment's tags and notes.
    pub fn labels(&self, run_id: i64) -> Result<LabelsView> {
        let store = self.store();
        let info = store.run(run_id)?.info;
        let run = store.run_labels()?.remove(&run_id).unwrap_or_else(|| RunLabels { run_id, ..RunLabels::default() });
        let (experiment_tags, experiment_note) = store.experiment_labels()?.remove(&info.experiment_id).unwrap_or_default();
        Ok(LabelsView { run, experiment_id: info.experiment_id, experiment_tags, experiment_note })
    }

    /// Adds (`on`) or removes a tag of a run.
    pub fn tag_run(&self, run_id: i64, tag: &str, on: bool) -> Result<()> {
        Ok(self.store().set_tag(Labelled::Run(run_id), tag, on)?)
    }

    /// Adds (`on`) or removes a tag of an experiment.
    pub fn tag_experiment(&self, experiment_id: i64, tag: &str, on: bool) -> Result<()> {
        Ok(self.store().set_tag(Labelled::Experiment(experiment_id), tag, on)?)
    }

    pub fn set_run_note(&self, run_id: i64, note: &str) -> Result<()> {
        Ok(self.store().set_note(Labelled::Run(run_id), note)?)
    }

    pub fn set_experiment_note(&self, experiment_id: i64, note: &str) -> Result<()> {
        Ok(self.store().set_note(Labelled::Experiment(experiment_id), note)?)
    }

    /// Archives runs (hidden from the default views) or brings them back.
    pub fn set_archived(&self, run_ids: &[i64], archived: bool) -> Result<()> {
        Ok(self.store().set_archived(run_ids, archived)?)
    }

    /// Deletes runs (records and run folders); `apply = false`: only says what would go.
    pub fn delete_runs(&self, run_ids: &[i64], apply: bool) -> Result<DeletePlan> {
        let d = self.store().delete_runs(run_ids, apply)?;
        if apply {
            self.forget_caches();
        }
        Ok(d.into())
    }

    /// Deletes an experiment with its runs; `apply = false`: only says what would go.
    pub fn delete_experiment(&self, experiment_id: i64, apply: bool) -> Result<DeletePlan> {
        let d = self.store().delete_experiment(experiment_id, apply)?;
        if apply {
            self.forget_caches();
        }
        Ok(d.into())
    }

    /// Deletes a dataset (refused while experiments use it, unless `with_runs`); `apply = false`: only says what
    /// would go.
    pub fn delete_dataset(&self, dataset_id: i64, with_runs: bool, apply: bool) -> Result<DeletePlan> {
        let mut store = self.store();
        // By name: the store looks a dataset up by name first, and a name may look like another one's id.
        let name = store.datasets()?.into_iter().find(|d| d.id == dataset_id).map(|d| d.name);
        let name = name.ok_or_else(|| experiments::Error::not_found_id("dataset", dataset_id))?;
        let d = store.delete_dataset(&name, with_runs, apply)?;
        drop(store);
        if apply {
            self.forget_caches();
        }
        Ok(d.into())
    }

    /// Run `run_id`'s checkpoint kept, deleted or none, as the store records it (read now, not cached).
    pub(super) fn checkpoint_state(&self, run_id: i64) -> Result<CheckpointState> {
        let folders = self.store().run_folders()?;
        Ok(folders.iter().find(|f| f.run_id == run_id).map_or(CheckpointState::None, checkpoint::checkpoint_state))
    }

    /// Deletes a run's checkpoint folder, keeping its records; returns the bytes freed.
    pub fn delete_checkpoint(&self, run_id: i64) -> Result<u64> {
        let freed = checkpoint::delete_checkpoint(&mut self.store(), run_id)?;
        *lock(&self.disk) = None;
        Ok(freed.bytes)
    }
}
