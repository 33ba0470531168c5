//! Runs on tracking servers (MLflow): which MLflow run a local run was pushed to, and the local, read-only copies
//! of runs pulled from a server (`migrations/0003_mlflow.sql`). The HTTP side is `crate::remote`.

use rusqlite::{params, OptionalExtension};

use super::{
    check_exists, floats_json, int, Ctx, EpochLoss, RunInfo, RunMetrics, RunStatus, StepLoss, Store, StoredScore, NOW,
};
use crate::run::spec::ExperimentSpec;
use crate::vocab::Split;
use crate::{Error, Result};

/// Where a local run was pushed on one tracking server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemotePush {
    pub tracking_uri: String,
    /// MLflow's experiment id.
    pub experiment_id: String,
    /// MLflow's run id.
    pub remote_run_id: String,
    pub pushed_at: String,
}

/// Where a pulled run came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PulledFrom {
    pub tracking_uri: String,
    pub remote_run_id: String,
    /// Where it was recorded: `<host>:<store file>#<run id>`.
    pub origin: String,
    pub pulled_at: String,
}

/// How a run went: its status, the device it ran on, when it was created, started and ended, and its error. What a
/// pushed run's record carries (`remote::mlflow::RunRecord`, flattened into its JSON) and a pulled run stores as is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunLifecycle {
    pub status: RunStatus,
    pub device: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub error: Option<String>,
}

impl RunLifecycle {
    /// The lifecycle of the run listed as `info`.
    pub fn of(info: &RunInfo) -> RunLifecycle {
        RunLifecycle {
            status: info.status,
            device: info.device.clone(),
            created_at: info.created_at.clone(),
            started_at: info.started_at.clone(),
            ended_at: info.ended_at.clone(),
            error: info.error.clone(),
        }
    }
}

/// A run read from a tracking server, ready to store locally. Sample ids are this store's (the caller maps the
/// origin's samples onto a local dataset first).
#[derive(Debug, Clone, PartialEq)]
pub struct PulledRun {
    pub tracking_uri: String,
    pub remote_run_id: String,
    pub origin: String,
    pub dataset_id: i64,
    pub spec: ExperimentSpec,
    pub lifecycle: RunLifecycle,
    pub metrics: RunMetrics,
    pub train_ids: Vec<i64>,
    pub heldout_ids: Vec<i64>,
    pub step_losses: Vec<StepLoss>,
    pub epoch_losses: Vec<EpochLoss>,
    pub scores: Vec<StoredScore>,
}

impl Store {
    /// The MLflow run that local run `run` was pushed to on `tracking_uri`, if a push completed.
    pub fn remote_push(&self, run: i64, tracking_uri: &str) -> Result<Option<RemotePush>> {
        self.conn
            .query_row(
                "SELECT tracking_uri, experiment_id, remote_run_id, pushed_at FROM remote_pushes \
                 WHERE run_id = ?1 AND tracking_uri = ?2",
                params![run, tracking_uri],
                |r| {
                    Ok(RemotePush {
                        tracking_uri: r.get(0)?,
                        experiment_id: r.get(1)?,
                        remote_run_id: r.get(2)?,
                        pushed_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .ctx(&self.path, format!("looking up where run {run} was pushed"))
    }

    /// Remembers that run `run` was pushed, completely, to `remote_run_id` on `tracking_uri`.
    pub fn remember_push(
        &mut self,
        run: i64,
        tracking_uri: &str,
        experiment_id: &str,
        remote_run_id: &str,
    ) -> Result<()> {
        let path = self.path.clone();
        check_exists(&self.conn, &path, "run", run)?;
        self.conn
            .execute(
                &format!(
                    "INSERT INTO remote_pushes (run_id, tracking_uri, experiment_id, remote_run_id, pushed_at) \
                     VALUES (?1, ?2, ?3, ?4, {NOW}) ON CONFLICT (run_id, tracking_uri) DO UPDATE SET \
                     experiment_id = excluded.experiment_id, remote_run_id = excluded.remote_run_id, \
                     pushed_at = excluded.pushed_at"
                ),
                params![run, tracking_uri, experiment_id, remote_run_id],
            )
            .ctx(&path, format!("remembering where run {run} was pushed"))?;
        Ok(())
    }

    /// Where run `run` was pulled from; `None` for a run recorded here.
    pub fn pulled_from(&self, run: i64) -> Result<Option<PulledFrom>> {
        self.conn
            .query_row(
                "SELECT tracking_uri, remote_run_id, origin, pulled_at FROM pulled_runs WHERE run_id = ?1",
                [run],
                |r| {
                    Ok(PulledFrom {
                        tracking_uri: r.get(0)?,
                        remote_run_id: r.get(1)?,
                        origin: r.get(2)?,
                        pulled_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .ctx(&self.path, format!("looking up where run {run} came from"))
    }

    /// The local copy of MLflow run `remote_run_id` from `tracking_uri`, if it was pulled.
    pub fn pulled_run_id(&self, tracking_uri: &str, remote_run_id: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT run_id FROM pulled_runs WHERE tracking_uri = ?1 AND remote_run_id = ?2",
                params![tracking_uri, remote_run_id],
                |r| r.get(0),
            )
            .optional()
            .ctx(&self.path, format!("looking up pulled run {remote_run_id}"))
    }

    /// Stores a pulled run in one transaction and returns its local id. Pulled again, it replaces the earlier
    /// copy whole and keeps its id (and its experiment row), so pulling twice never duplicates.
    pub fn insert_pulled_run(&mut self, p: &PulledRun) -> Result<i64> {
        let path = self.path.clone();
        let doing = format!("storing run {} pulled from {}", p.remote_run_id, p.tracking_uri);
        let spec_json = serde_json::to_string(&p.spec)?;
        let spec_toml = p.spec.to_toml()?;
        let tx = self.write_tx()?;
        let earlier: Option<(i64, i64)> = tx
            .query_row(
                "SELECT r.id, r.experiment_id FROM pulled_runs p JOIN runs r ON r.id = p.run_id \
                 WHERE p.tracking_uri = ?1 AND p.remote_run_id = ?2",
                params![p.tracking_uri, p.remote_run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ctx(&path, &doing)?;
        let experiment_id = match earlier {
            Some((run, experiment)) => {
                // Cascades to its splits, losses, scores and its pulled_runs row.
                tx.execute("DELETE FROM runs WHERE id = ?1", [run]).ctx(&path, &doing)?;
                tx.execute(
                    "UPDATE experiments SET name = ?2, dataset_id = ?3, spec_json = ?4, spec_toml = ?5 WHERE id = ?1",
                    params![experiment, p.spec.name, p.dataset_id, spec_json, spec_toml],
                )
                .ctx(&path, &doing)?;
                experiment
            }
            None => {
                tx.execute(
                    &format!(
                        "INSERT INTO experiments (name, dataset_id, spec_json, spec_toml, created_at) \
                         VALUES (?1, ?2, ?3, ?4, {NOW})"
                    ),
                    params![p.spec.name, p.dataset_id, spec_json, spec_toml],
                )
                .ctx(&path, &doing)?;
                tx.last_insert_rowid()
            }
        };
        let summary = |s: Option<crate::model::engine::Summary>| {
            (s.map(|s| int(s.n)), s.map(|s| s.mean_label_prob), s.map(|s| s.accuracy))
        };
        let (tb, ta, hb, ha) = (
            summary(p.metrics.train_before),
            summary(p.metrics.train_after),
            summary(p.metrics.heldout_before),
            summary(p.metrics.heldout_after),
        );
        tx.execute(
            "INSERT INTO runs (id, experiment_id, status, device, created_at, started_at, ended_at, error, owner_pid, \
             owner_host, heartbeat_at, \
             train_before_n, train_before_mean_label_prob, train_before_accuracy, \
             train_after_n, train_after_mean_label_prob, train_after_accuracy, \
             heldout_before_n, heldout_before_mean_label_prob, heldout_before_accuracy, \
             heldout_after_n, heldout_after_mean_label_prob, heldout_after_accuracy) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?5, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
            params![
                earlier.map(|(run, _)| run),
                experiment_id,
                p.lifecycle.status.as_str(),
                p.lifecycle.device,
                p.lifecycle.created_at,
                p.lifecycle.started_at,
                p.lifecycle.ended_at,
                p.lifecycle.error,
                p.tracking_uri,
                tb.0, tb.1, tb.2, ta.0, ta.1, ta.2, hb.0, hb.1, hb.2, ha.0, ha.1, ha.2,
            ],
        )
        .ctx(&path, &doing)?;
        let run = tx.last_insert_rowid();
        for (split, ids) in [(Split::Train, &p.train_ids), (Split::Heldout, &p.heldout_ids)] {
            let mut st = tx
                .prepare_cached("INSERT INTO run_splits (run_id, split, position, sample_id) VALUES (?1, ?2, ?3, ?4)")
                .ctx(&path, &doing)?;
            for (i, id) in ids.iter().enumerate() {
                st.execute(params![run, split.as_str(), int(i), id]).ctx(&path, &doing)?;
            }
        }
        {
            let mut st = tx
                .prepare_cached("INSERT INTO step_losses (run_id, step, epoch, loss) VALUES (?1, ?2, ?3, ?4)")
                .ctx(&path, &doing)?;
            for s in &p.step_losses {
                st.execute(params![run, int(s.step), int(s.epoch), s.loss]).ctx(&path, &doing)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO epoch_losses (run_id, epoch, train_loss, has_heldout, heldout_loss) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .ctx(&path, &doing)?;
            for e in &p.epoch_losses {
                st.execute(params![run, int(e.epoch), e.train_loss, e.heldout_loss.is_some(), e.heldout_loss])
                    .ctx(&path, &doing)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO scores (run_id, phase, split, sample_id, probs_json, logits_json, label, label_prob, \
                     correct) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .ctx(&path, &doing)?;
            for s in &p.scores {
                st.execute(params![
                    run,
                    s.phase.as_str(),
                    s.split.as_str(),
                    s.sample_id,
                    floats_json(&s.probs),
                    floats_json(&s.logits),
                    int(s.label),
                    f64::from(s.label_prob),
                    s.correct,
                ])
                .ctx(&path, &doing)?;
            }
        }
        // Last: from here on the run is read-only (the trigger of migration 0003).
        tx.execute(
            &format!(
                "INSERT INTO pulled_runs (run_id, tracking_uri, remote_run_id, origin, pulled_at) \
                 VALUES (?1, ?2, ?3, ?4, {NOW})"
            ),
            params![run, p.tracking_uri, p.remote_run_id, p.origin],
        )
        .ctx(&path, &doing)?;
        tx.commit().ctx(&path, &doing)?;
        Ok(run)
    }

    /// Refuses to change a run pulled from a tracking server (its copy is read-only).
    pub fn check_not_pulled(&self, run: i64) -> Result<()> {
        match self.pulled_from(run)? {
            Some(p) => Err(Error::Invalid(format!(
                "run {run} was pulled from {} (MLflow run {}); it is read-only here",
                p.tracking_uri, p.remote_run_id
            ))),
            None => Ok(()),
        }
    }
}

/// This machine's host name, as runs record it (for the origin of pushed runs).
pub fn host_name() -> String {
    super::owner::hostname()
}
