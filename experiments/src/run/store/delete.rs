//! Deleting runs, experiments and datasets: their records in one transaction, then the run folders the store
//! claimed (`<home>/runs/<id>` or `<id>-<n>`, as recorded when the run claimed it). A path the store did not
//! claim is never touched, and a run whose process still works on it (its OS lock is held) is refused.
//!
//! Every delete first answers what it would remove (`apply = false`), so that a face can ask before it deletes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Ctx, PathCol, Store};
use crate::{Error, Result};

/// What a delete removed, or would remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Deleted {
    pub runs: Vec<i64>,
    pub experiments: Vec<i64>,
    pub datasets: Vec<i64>,
    /// Run folders removed from the disk (or to remove).
    pub folders: Vec<PathBuf>,
    /// Whether it was done (false: only planned).
    pub applied: bool,
}

impl Deleted {
    /// "3 runs, 1 experiment and 2 folders" (what a confirmation names).
    pub fn describe(&self) -> String {
        let part = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        let mut parts = vec![part(self.runs.len(), "run")];
        if !self.experiments.is_empty() {
            parts.push(part(self.experiments.len(), "experiment"));
        }
        if !self.datasets.is_empty() {
            parts.push(part(self.datasets.len(), "dataset"));
        }
        parts.push(part(self.folders.len(), "run folder"));
        let last = parts.pop().unwrap_or_default();
        if parts.is_empty() {
            last
        } else {
            format!("{} and {last}", parts.join(", "))
        }
    }
}

/// What is deleted: runs, experiments (with their runs) and datasets (with their experiments).
struct Target {
    runs: BTreeSet<i64>,
    experiments: BTreeSet<i64>,
    datasets: BTreeSet<i64>,
}

impl Store {
    /// Deletes runs `ids` (records and run folders). `apply = false`: only says what it would delete.
    pub fn delete_runs(&mut self, ids: &[i64], apply: bool) -> Result<Deleted> {
        for &id in ids {
            super::check_exists(&self.conn, &self.path, "run", id)?;
        }
        let t = Target { runs: ids.iter().copied().collect(), experiments: BTreeSet::new(), datasets: BTreeSet::new() };
        self.delete(t, apply)
    }

    /// Deletes experiment `id` with its runs. `apply = false`: only says what it would delete.
    pub fn delete_experiment(&mut self, id: i64, apply: bool) -> Result<Deleted> {
        super::check_exists(&self.conn, &self.path, "experiment", id)?;
        let runs = self.ids("SELECT id FROM runs WHERE experiment_id = ?1", id)?;
        let t = Target { runs, experiments: BTreeSet::from([id]), datasets: BTreeSet::new() };
        self.delete(t, apply)
    }

    /// Deletes dataset `name_or_id` (its samples and images records; never its files). Refused while
    /// experiments use it, unless `with_runs`: then those experiments and their runs go too.
    pub fn delete_dataset(&mut self, name_or_id: &str, with_runs: bool, apply: bool) -> Result<Deleted> {
        let ds = self.dataset(name_or_id)?;
        let experiments = self.ids("SELECT id FROM experiments WHERE dataset_id = ?1", ds.id)?;
        let runs = self.ids(
            "SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE e.dataset_id = ?1",
            ds.id,
        )?;
        if !experiments.is_empty() && !with_runs {
            return Err(Error::Invalid(format!(
                "dataset `{}` is used by {} experiment(s) with {} run(s); delete those too with --with-runs, or \
                 delete them first",
                ds.name,
                experiments.len(),
                runs.len()
            )));
        }
        self.delete(Target { runs, experiments, datasets: BTreeSet::from([ds.id]) }, apply)
    }

    fn ids(&self, sql: &str, id: i64) -> Result<BTreeSet<i64>> {
        let mut st = self.conn.prepare(sql).ctx(&self.path, "finding what to delete")?;
        let rows = st.query_map([id], |r| r.get(0)).ctx(&self.path, "finding what to delete")?;
        rows.collect::<rusqlite::Result<_>>().ctx(&self.path, "finding what to delete")
    }

    fn delete(&mut self, t: Target, apply: bool) -> Result<Deleted> {
        // Runs of dead processes become `interrupted` first: what is still queued or running after that (and not
        // waiting in the queue) has a live process.
        self.recover_interrupted()?;
        let path = self.path.clone();
        let home = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let tx = self.write_tx()?;
        let mut folders = Vec::new();
        for &run in &t.runs {
            let (status, queued, run_dir, checkpoint): (String, bool, Option<PathCol>, Option<PathCol>) = tx
                .query_row(
                    "SELECT status, id IN (SELECT run_id FROM run_queue), run_dir, checkpoint_path FROM runs \
                     WHERE id = ?1",
                    [run],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .ctx(&path, format!("reading run {run}"))?;
            if matches!(status.as_str(), "queued" | "running") && !queued {
                return Err(Error::Invalid(format!(
                    "run {run} is {status} (its process holds {}): cancel it first; nothing was deleted",
                    super::owner::lock_path(&path, run).display()
                )));
            }
            let dir = run_dir.map(|p| p.0).or_else(|| checkpoint.and_then(|c| c.0.parent().map(Path::to_path_buf)));
            if let Some(dir) = dir.filter(|d| owned_run_dir(&home, run, d)) {
                folders.push(dir);
            }
        }
        let out = Deleted {
            runs: t.runs.iter().copied().collect(),
            experiments: t.experiments.iter().copied().collect(),
            datasets: t.datasets.iter().copied().collect(),
            folders,
            applied: apply,
        };
        if !apply {
            return Ok(out);
        }
        let doing = format!("deleting {}", out.describe());
        for (table, ids) in [("runs", &t.runs), ("experiments", &t.experiments), ("datasets", &t.datasets)] {
            for &id in ids {
                tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), params![id])
                    .ctx(&path, &doing)?;
            }
        }
        tx.commit().ctx(&path, &doing)?;
        for dir in &out.folders {
            match std::fs::remove_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "{}: the records are deleted but the run folder could not be removed: {e}",
                        dir.display()
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// Whether `dir` is a folder the store claimed for run `run`: `<home>/runs/<run>` or `<home>/runs/<run>-<n>`, a
/// real folder (a symbolic link there is not followed) that exists.
fn owned_run_dir(home: &Path, run: i64, dir: &Path) -> bool {
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else { return false };
    let id = run.to_string();
    let named = name == id
        || name.strip_prefix(&id).and_then(|r| r.strip_prefix('-')).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let under = dir.parent().is_some_and(|p| same_dir(p, &home.join("runs")));
    let real = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    named && under && real
}

/// Whether two paths name the same folder (compared as resolved paths when both resolve).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
