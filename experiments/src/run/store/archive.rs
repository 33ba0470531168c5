//! Archiving runs (hidden from the default views, not deleted), the home's settings, and the run folders and
//! checkpoints as the store records them (what `run::checkpoint` measures, keeps and deletes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{check_exists, Ctx, PathCol, Store, NOW};
use crate::{Error, Result};

/// The setting that remembers the MLflow tracking server `mlflow push|pull` last used.
pub const SETTING_TRACKING_URI: &str = "mlflow.tracking_uri";

/// A run's folder and checkpoint as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFolder {
    pub run_id: i64,
    pub experiment_id: i64,
    pub sweep_id: Option<i64>,
    pub status: String,
    /// The folder the run claimed under `<home>/runs/`, when it is one the store owns (see `runs delete`).
    pub run_dir: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
}

impl Store {
    /// Archives runs `runs` (`archived = true`: they leave the default views; records and files stay) or brings
    /// them back (`false`), in one transaction: an unknown run changes nothing. Already so: no change.
    pub fn set_archived(&mut self, runs: &[i64], archived: bool) -> Result<()> {
        let path = self.path.clone();
        let doing = if archived { "archiving runs" } else { "unarchiving runs" };
        let tx = self.write_tx()?;
        for &run in runs {
            check_exists(&tx, &path, "run", run)?;
            let done = if archived {
                let sql = format!("INSERT OR IGNORE INTO archived_runs (run_id, archived_at) VALUES (?1, {NOW})");
                tx.execute(&sql, [run])
            } else {
                tx.execute("DELETE FROM archived_runs WHERE run_id = ?1", [run])
            };
            done.ctx(&path, doing)?;
        }
        tx.commit().ctx(&path, doing)
    }

    /// The archived runs.
    pub fn archived_runs(&self) -> Result<BTreeSet<i64>> {
        self.id_set("SELECT run_id FROM archived_runs", "reading the archived runs")
    }

    /// The runs pulled from a tracking server (read-only copies).
    pub fn pulled_runs(&self) -> Result<BTreeSet<i64>> {
        self.id_set("SELECT run_id FROM pulled_runs", "reading the pulled runs")
    }

    fn id_set(&self, sql: &str, doing: &str) -> Result<BTreeSet<i64>> {
        let mut st = self.conn.prepare(sql).ctx(&self.path, doing)?;
        let rows = st.query_map([], |r| r.get(0)).ctx(&self.path, doing)?;
        rows.collect::<rusqlite::Result<_>>().ctx(&self.path, doing)
    }

    /// The home's setting `key`, if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ctx(&self.path, format!("reading setting `{key}`"))
    }

    /// Sets the home's setting `key` to `value`.
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, {NOW}) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        );
        self.conn.execute(&sql, params![key, value]).ctx(&self.path, format!("writing setting `{key}`"))?;
        Ok(())
    }

    /// Every run's folder and checkpoint as recorded, oldest run first. A recorded folder that is not one the
    /// store claimed (`<home>/runs/<id>` or `<id>-<n>`) is left out: nothing here ever touches it.
    pub fn run_folders(&self) -> Result<Vec<RunFolder>> {
        let doing = "reading the run folders";
        let home = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut st = self
            .conn
            .prepare("SELECT id, experiment_id, sweep_id, status, run_dir, checkpoint_path FROM runs ORDER BY id")
            .ctx(&self.path, doing)?;
        let rows = st
            .query_map([], |r| {
                Ok(RunFolder {
                    run_id: r.get(0)?,
                    experiment_id: r.get(1)?,
                    sweep_id: r.get(2)?,
                    status: r.get(3)?,
                    run_dir: r.get::<_, Option<PathCol>>(4)?.map(|p| p.0),
                    checkpoint: r.get::<_, Option<PathCol>>(5)?.map(|p| p.0),
                })
            })
            .ctx(&self.path, doing)?;
        let mut out = Vec::new();
        for r in rows {
            let mut f = r.ctx(&self.path, doing)?;
            f.run_dir = f.run_dir.filter(|d| super::delete::owned_run_dir(&home, f.run_id, d));
            out.push(f);
        }
        Ok(out)
    }

    /// Forgets run `run`'s checkpoint (its folder is removed by the caller, `run::checkpoint`); refused for a
    /// run that is queued or running.
    pub fn clear_checkpoint(&mut self, run: i64) -> Result<()> {
        let path = self.path.clone();
        let tx = self.write_tx()?;
        let status: Option<String> = tx
            .query_row("SELECT status FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .optional()
            .ctx(&path, format!("reading run {run}"))?;
        let Some(status) = status else { return Err(Error::not_found_id("run", run)) };
        if matches!(status.as_str(), "queued" | "running") {
            return Err(Error::Invalid(format!("run {run} is {status}: its checkpoint is not written yet")));
        }
        tx.execute("UPDATE runs SET checkpoint_path = NULL WHERE id = ?1", [run])
            .ctx(&path, format!("forgetting the checkpoint of run {run}"))?;
        tx.commit().ctx(&path, format!("forgetting the checkpoint of run {run}"))
    }
}
