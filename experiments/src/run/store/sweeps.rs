//! Sweeps (one spec over a grid of hyperparameters) and runs created for later: a sweep's experiments and runs
//! are recorded in one transaction, either owned by this process (run now, in the foreground) or put in the
//! queue (no owner until a worker claims them).

use std::path::Path;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::owner::{hold_lock, lock_path, release_lock, Owner};
use super::queue::enqueue_in;
use super::runs::{insert_experiment, insert_run};
use super::{Ctx, Store, NOW};
use crate::run::spec::ExperimentSpec;
use crate::{Error, Result};

/// A sweep as listed: its grid and its runs (one per grid point, in grid order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SweepInfo {
    pub id: i64,
    pub name: String,
    /// The grid as recorded: `[{"key": "train.lr", "values": [...]}, ...]` (`run::sweep::Grid`).
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub grid: serde_json::Value,
    pub created_at: String,
    pub run_ids: Vec<i64>,
}

/// One experiment to record with one run of it.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub spec: ExperimentSpec,
    pub dataset_id: i64,
}

impl Store {
    /// Records sweep `name` with its `grid` and, for each of `runs`, an experiment and one run of it, all in one
    /// transaction; returns the sweep id and the run ids in order. `enqueue`: the runs go to the end of the queue
    /// for a worker; otherwise this process owns them (their locks held) and runs them itself.
    pub fn create_sweep(
        &mut self,
        name: &str,
        grid: &serde_json::Value,
        runs: &[NewRun],
        enqueue: bool,
    ) -> Result<(i64, Vec<i64>)> {
        let path = self.path.clone();
        let grid_json = serde_json::to_string(grid)?;
        let tx = self.write_tx()?;
        tx.execute(
            &format!("INSERT INTO sweeps (name, grid_json, created_at) VALUES (?1, ?2, {NOW})"),
            params![name, grid_json],
        )
        .ctx(&path, format!("recording sweep `{name}`"))?;
        let sweep = tx.last_insert_rowid();
        let ids = insert_runs(&tx, &path, runs, Some(sweep), enqueue)?;
        finish_with_locks(tx, &path, &ids, !enqueue, format!("recording sweep `{name}`"))?;
        Ok((sweep, ids))
    }

    /// Records an experiment and one run of it at the end of the queue (`cliplab run --queue`); returns the run.
    pub fn enqueue_new_run(&mut self, run: &NewRun) -> Result<i64> {
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let ids = insert_runs(&tx, &path, std::slice::from_ref(run), None, true)?;
        tx.commit().ctx(&path, format!("queueing a run of `{}`", run.spec.name))?;
        ids.first().copied().ok_or_else(|| Error::Invalid("no run was queued".into()))
    }

    /// Every sweep, newest first.
    pub fn sweeps(&self) -> Result<Vec<SweepInfo>> {
        let ids: Vec<i64> = {
            let mut st = self.conn.prepare("SELECT id FROM sweeps ORDER BY id DESC").ctx(&self.path, "listing sweeps")?;
            let rows = st.query_map([], |r| r.get(0)).ctx(&self.path, "listing sweeps")?;
            rows.collect::<rusqlite::Result<_>>().ctx(&self.path, "listing sweeps")?
        };
        ids.into_iter().map(|id| self.sweep(id)).collect()
    }

    /// One sweep.
    pub fn sweep(&self, id: i64) -> Result<SweepInfo> {
        let doing = format!("reading sweep {id}");
        let (name, grid, created_at): (String, String, String) = self
            .conn
            .query_row("SELECT name, grid_json, created_at FROM sweeps WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
            .ctx(&self.path, &doing)?
            .ok_or_else(|| Error::not_found_id("sweep", id))?;
        let grid = serde_json::from_str(&grid).ctx(&self.path, format!("sweep {id}: grid"))?;
        let mut st = self.conn.prepare("SELECT id FROM runs WHERE sweep_id = ?1 ORDER BY id").ctx(&self.path, &doing)?;
        let rows = st.query_map([id], |r| r.get(0)).ctx(&self.path, &doing)?;
        let run_ids = rows.collect::<rusqlite::Result<_>>().ctx(&self.path, &doing)?;
        Ok(SweepInfo { id, name, grid, created_at, run_ids })
    }

    /// Records the folder run `run` claimed under `<home>/runs/` before writing anything into it: the folder
    /// deleting the run removes.
    pub fn set_run_dir(&mut self, run: i64, dir: &Path) -> Result<()> {
        self.set_run_path(run, "run_dir", dir, "folder")
    }
}

/// Inserts an experiment and a run for each of `runs` (in the sweep `sweep`, queued when `enqueue`).
fn insert_runs(
    tx: &rusqlite::Connection,
    path: &Path,
    runs: &[NewRun],
    sweep: Option<i64>,
    enqueue: bool,
) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(runs.len());
    for r in runs {
        let (json, toml) = (serde_json::to_string(&r.spec)?, r.spec.to_toml()?);
        let exp = insert_experiment(tx, path, &r.spec, r.dataset_id, (&json, &toml))?;
        let run = insert_run(tx, path, exp, Owner::current())?;
        if let Some(s) = sweep {
            tx.execute("UPDATE runs SET sweep_id = ?2 WHERE id = ?1", params![run, s])
                .ctx(path, format!("adding run {run} to sweep {s}"))?;
        }
        if enqueue {
            enqueue_in(tx, path, run)?;
        }
        ids.push(run);
    }
    Ok(ids)
}

/// Takes the locks of `ids` when `lock` (before the rows are visible, as `create_run` does), then commits;
/// releases them again if the commit fails.
fn finish_with_locks(tx: rusqlite::Transaction<'_>, path: &Path, ids: &[i64], lock: bool, doing: String) -> Result<()> {
    let locks: Vec<_> = if lock { ids.iter().map(|&id| lock_path(path, id)).collect() } else { Vec::new() };
    for (k, l) in locks.iter().enumerate() {
        if let Err(e) = hold_lock(l) {
            locks[..k].iter().for_each(|l| release_lock(l));
            return Err(e);
        }
    }
    if let Err(e) = tx.commit() {
        locks.iter().for_each(|l| release_lock(l));
        return Err(super::sql_error(path, doing, e));
    }
    Ok(())
}
