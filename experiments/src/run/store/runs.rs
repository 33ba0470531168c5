//! Experiments and their runs: lifecycle, events, splits, scores, metrics.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, OptionalExtension, Row};

use super::owner::{hold_lock, lock_path, release_lock, Owner};
use super::{
    check_exists, floats_json, int, nan_if_null, parse_floats, uint, Ctx, EpochLoss, ExperimentInfo, LogLine,
    sql_error, PathCol, RunDetail, RunInfo, RunMetrics, RunStatus, SqlPath, StepLoss, Store, StoredScore, NOW,
};
use crate::model::engine::{SampleScore, Summary};
use crate::events::{Event, Phase};
use crate::run::spec::ExperimentSpec;
use crate::vocab::{Split, Stage};
use crate::{Error, Result};

/// The metric summaries' column prefixes, in [`RunMetrics`] field order.
const METRIC_PREFIXES: [&str; 4] = ["train_before", "train_after", "heldout_before", "heldout_after"];

const RUN_SELECT: &str = "\
    SELECT r.id AS id, r.experiment_id AS experiment_id, e.name AS experiment_name, e.dataset_id AS dataset_id, \
           d.name AS dataset_name, r.status AS status, r.device AS device, r.created_at AS created_at, \
           r.started_at AS started_at, r.ended_at AS ended_at, e.spec_json AS spec_json, r.train_before_n AS train_before_n, \
           r.train_before_mean_label_prob AS train_before_mean_label_prob, r.train_before_accuracy AS train_before_accuracy, \
           r.train_after_n AS train_after_n, r.train_after_mean_label_prob AS train_after_mean_label_prob, \
           r.train_after_accuracy AS train_after_accuracy, r.heldout_before_n AS heldout_before_n, \
           r.heldout_before_mean_label_prob AS heldout_before_mean_label_prob, r.heldout_before_accuracy AS heldout_before_accuracy, \
           r.heldout_after_n AS heldout_after_n, r.heldout_after_mean_label_prob AS heldout_after_mean_label_prob, \
           r.heldout_after_accuracy AS heldout_after_accuracy, r.phase AS phase, r.phase_done AS phase_done, \
           r.phase_total AS phase_total, r.phase_eta_s AS phase_eta_s, r.error AS error, r.heartbeat_at AS heartbeat_at, \
           r.owner_pid AS owner_pid, r.owner_host AS owner_host, r.checkpoint_path AS checkpoint_path \
    FROM runs r JOIN experiments e ON e.id = r.experiment_id JOIN datasets d ON d.id = e.dataset_id";

const EXPERIMENT_SELECT: &str = "\
    SELECT e.id, e.name, e.dataset_id, d.name, e.spec_json, e.spec_toml, e.created_at, \
           (SELECT COUNT(*) FROM runs r WHERE r.experiment_id = e.id) \
    FROM experiments e JOIN datasets d ON d.id = e.dataset_id";

impl Store {
    // ---------------------------------------------------------------- experiments

    /// Records an experiment (its spec as JSON and as TOML) on dataset `dataset_id`; returns its id.
    pub fn create_experiment(&mut self, spec: &ExperimentSpec, dataset_id: i64) -> Result<i64> {
        let path = self.path.clone();
        let (json, toml) = (serde_json::to_string(spec)?, spec.to_toml()?);
        let tx = self.write_tx()?;
        let id = insert_experiment(&tx, &path, spec, dataset_id, (&json, &toml))?;
        tx.commit().ctx(&path, format!("recording experiment `{}`", spec.name))?;
        Ok(id)
    }

    /// Every experiment, newest first.
    pub fn experiments(&self) -> Result<Vec<ExperimentInfo>> {
        let sql = format!("{EXPERIMENT_SELECT} ORDER BY e.id DESC");
        self.list(&sql, "listing experiments", raw_experiment, Self::finish_experiment)
    }

    /// One experiment, with its parsed spec.
    pub fn experiment(&self, id: i64) -> Result<ExperimentInfo> {
        let raw = self
            .conn
            .query_row(&format!("{EXPERIMENT_SELECT} WHERE e.id = ?1"), [id], raw_experiment)
            .optional()
            .ctx(&self.path, format!("reading experiment {id}"))?
            .ok_or_else(|| Error::not_found_id("experiment", id))?;
        self.finish_experiment(raw)
    }

    fn finish_experiment(&self, raw: RawExperiment) -> Result<ExperimentInfo> {
        let spec = serde_json::from_str(&raw.spec_json).ctx(&self.path, format!("experiment {}: spec", raw.id))?;
        Ok(ExperimentInfo {
            id: raw.id,
            name: raw.name,
            dataset_id: raw.dataset_id,
            dataset_name: raw.dataset_name,
            spec,
            spec_toml: raw.spec_toml,
            created_at: raw.created_at,
            n_runs: uint(raw.n_runs),
        })
    }

    // ---------------------------------------------------------------- run lifecycle

    /// Creates a `queued` run of experiment `experiment_id`, owned by this process; returns its id.
    pub fn create_run(&mut self, experiment_id: i64) -> Result<i64> {
        let path = self.path.clone();
        let me = Owner::current();
        let tx = self.write_tx()?;
        let id = insert_run(&tx, &path, experiment_id, me)?;
        // Locked before the row is visible to anyone: a queued or running run whose lock is free is dead.
        let lock = lock_path(&path, id);
        hold_lock(&lock)?;
        if let Err(e) = tx.commit() {
            release_lock(&lock);
            return Err(sql_error(&path, format!("creating a run of experiment {experiment_id}"), e));
        }
        Ok(id)
    }

    /// Marks a run `running` on `device`.
    pub fn start_run(&mut self, run: i64, device: &str) -> Result<()> {
        let n = self
            .conn
            .execute(
                &format!(
                    "UPDATE runs SET status = 'running', device = ?2, started_at = {NOW}, heartbeat_at = {NOW} \
                     WHERE id = ?1"
                ),
                params![run, device],
            )
            .ctx(&self.path, format!("starting run {run}"))?;
        found_run(n, run)
    }

    /// Ends a run as `completed`, `failed` (with its error) or `cancelled`.
    pub fn finish_run(&mut self, run: i64, status: RunStatus, error: Option<&str>) -> Result<()> {
        if !matches!(status, RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled) {
            return Err(Error::Invalid(format!(
                "a run can only be finished as completed, failed or cancelled, not {status}"
            )));
        }
        let n = self
            .conn
            .execute(
                &format!(
                    "UPDATE runs SET status = ?2, error = ?3, ended_at = {NOW}, heartbeat_at = {NOW}, \
                     phase_eta_s = NULL WHERE id = ?1"
                ),
                params![run, status.as_str(), error],
            )
            .ctx(&self.path, format!("finishing run {run}"))?;
        found_run(n, run)?;
        release_lock(&lock_path(&self.path, run));
        Ok(())
    }

    /// Records a sign of life of the process running `run`.
    pub fn heartbeat(&mut self, run: i64) -> Result<()> {
        let n = self
            .conn
            .execute(&format!("UPDATE runs SET heartbeat_at = {NOW} WHERE id = ?1"), [run])
            .ctx(&self.path, format!("heartbeat of run {run}"))?;
        found_run(n, run)
    }

    /// Records the samples of one side of a run, in order (replacing that side if it was recorded before).
    pub fn record_split(&mut self, run: i64, split: Split, sample_ids: &[i64]) -> Result<()> {
        let path = self.path.clone();
        let doing = || format!("recording the {split} split of run {run}");
        let tx = self.write_tx()?;
        tx.execute("DELETE FROM run_splits WHERE run_id = ?1 AND split = ?2", params![run, split.as_str()])
            .ctx(&path, doing())?;
        {
            let mut ins = tx
                .prepare("INSERT INTO run_splits (run_id, split, position, sample_id) VALUES (?1, ?2, ?3, ?4)")
                .ctx(&path, doing())?;
            for (pos, id) in sample_ids.iter().enumerate() {
                ins.execute(params![run, split.as_str(), int(pos), id])
                    .ctx(&path, format!("{} (sample {id})", doing()))?;
            }
        }
        tx.commit().ctx(&path, doing())
    }

    /// Persists an event: steps and epochs as rows, phase and progress in the run's own columns, notes in its log.
    /// A run records through a [`RunRecorder`](super::RunRecorder), which batches and waits out a busy store.
    pub fn record_event(&mut self, run: i64, event: &Event) -> Result<()> {
        found_run(write_event(&self.conn, &self.path, run, event)?, run)
    }

    /// Persists `events` in one transaction, then a heartbeat, without waiting for the write lock: a busy store
    /// fails at once (see [`is_busy_error`](super::is_busy_error)) and nothing is written.
    pub(crate) fn record_events_now(&mut self, run: i64, events: &[Event]) -> Result<()> {
        let path = self.path.clone();
        let patience = self.busy_timeout;
        self.conn.busy_timeout(Duration::ZERO).ctx(&path, "setting the busy timeout")?;
        let written = (|| {
            let tx = self.write_tx()?;
            for event in events {
                found_run(write_event(&tx, &path, run, event)?, run)?;
            }
            let n = tx
                .execute(&format!("UPDATE runs SET heartbeat_at = {NOW} WHERE id = ?1"), [run])
                .ctx(&path, format!("heartbeat of run {run}"))?;
            found_run(n, run)?;
            tx.commit().ctx(&path, format!("recording {} event(s) of run {run}", events.len()))
        })();
        self.conn.busy_timeout(patience).ctx(&path, "setting the busy timeout")?;
        written
    }

    /// Records per-sample scores of one phase and split, in one transaction.
    pub fn record_scores(
        &mut self,
        run: i64,
        phase: Stage,
        split: Split,
        rows: &[(i64, SampleScore)],
    ) -> Result<()> {
        let path = self.path.clone();
        let doing = || format!("recording {split} scores ({phase}) of run {run}");
        let tx = self.write_tx()?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO scores (run_id, phase, split, sample_id, probs_json, logits_json, label, label_prob, \
                     correct) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .ctx(&path, doing())?;
            for (sample, s) in rows {
                ins.execute(params![
                    run,
                    phase.as_str(),
                    split.as_str(),
                    sample,
                    floats_json(&s.probs),
                    floats_json(&s.logits),
                    int(s.label),
                    f64::from(s.label_prob),
                    s.correct,
                ])
                .ctx(&path, format!("{} (sample {sample})", doing()))?;
            }
        }
        tx.commit().ctx(&path, doing())
    }

    /// Records the metric summaries measured so far (replacing the previous ones).
    pub fn record_summary(&mut self, run: i64, metrics: &RunMetrics) -> Result<()> {
        let cols: Vec<String> = METRIC_PREFIXES
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let k = 2 + 3 * i;
                format!("{p}_n = ?{}, {p}_mean_label_prob = ?{}, {p}_accuracy = ?{}", k, k + 1, k + 2)
            })
            .collect();
        let sql = format!("UPDATE runs SET {} WHERE id = ?1", cols.join(", "));
        let ms = [metrics.train_before, metrics.train_after, metrics.heldout_before, metrics.heldout_after];
        let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(run)];
        for m in ms {
            values.push(Box::new(m.map(|s| int(s.n))));
            values.push(Box::new(m.map(|s| s.mean_label_prob)));
            values.push(Box::new(m.map(|s| s.accuracy)));
        }
        let n = self
            .conn
            .execute(&sql, rusqlite::params_from_iter(values.iter()))
            .ctx(&self.path, format!("recording the metrics of run {run}"))?;
        found_run(n, run)
    }

    /// Records the folder of the run's fine-tuned checkpoint.
    pub fn set_checkpoint(&mut self, run: i64, path: &Path) -> Result<()> {
        self.set_run_path(run, "checkpoint_path", path, "checkpoint")
    }

    /// Sets the path column `column` of run `run` (`what` names it in the error).
    pub(super) fn set_run_path(&mut self, run: i64, column: &str, path: &Path, what: &str) -> Result<()> {
        let n = self
            .conn
            .execute(&format!("UPDATE runs SET {column} = ?2 WHERE id = ?1"), params![run, SqlPath(path)])
            .ctx(&self.path, format!("recording the {what} of run {run}"))?;
        found_run(n, run)
    }

    // ---------------------------------------------------------------- reading runs

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        let sql = format!("{RUN_SELECT} ORDER BY r.id DESC");
        self.list(&sql, "listing runs", raw_run, |s, raw| Ok(s.finish_run_info(raw)?.0))
    }

    /// Everything recorded about a run except its per-sample scores.
    pub fn run(&self, id: i64) -> Result<RunDetail> {
        let tx = self.read_tx()?;
        let path = &self.path;
        let doing = format!("reading run {id}");
        let raw = tx
            .query_row(&format!("{RUN_SELECT} WHERE r.id = ?1"), [id], raw_run)
            .optional()
            .ctx(path, &doing)?
            .ok_or_else(|| no_run(id))?;
        let (info, spec_json, checkpoint) = self.finish_run_info(raw)?;
        let spec: ExperimentSpec = serde_json::from_str(&spec_json).ctx(path, format!("run {id}: spec"))?;

        let mut train_ids = Vec::new();
        let mut heldout_ids = Vec::new();
        {
            let mut st = tx
                .prepare("SELECT split, sample_id FROM run_splits WHERE run_id = ?1 ORDER BY split, position")
                .ctx(path, &doing)?;
            let rows = st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).ctx(path, &doing)?;
            for r in rows {
                let (split, sample) = r.ctx(path, &doing)?;
                match Split::parse(&split).ok_or_else(|| Error::Invalid(format!("unknown split `{split}` in the store")))? {
                    Split::Train => train_ids.push(sample),
                    Split::Heldout => heldout_ids.push(sample),
                }
            }
        }
        let step_losses = {
            let mut st = tx
                .prepare("SELECT step, epoch, loss FROM step_losses WHERE run_id = ?1 ORDER BY step")
                .ctx(path, &doing)?;
            let rows = st
                .query_map([id], |r| {
                    Ok(StepLoss { step: uint(r.get(0)?), epoch: uint(r.get(1)?), loss: nan_if_null(r.get(2)?) })
                })
                .ctx(path, &doing)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx(path, &doing)?
        };
        let epoch_losses = {
            let mut st = tx
                .prepare(
                    "SELECT epoch, train_loss, has_heldout, heldout_loss FROM epoch_losses WHERE run_id = ?1 \
                     ORDER BY epoch",
                )
                .ctx(path, &doing)?;
            let rows = st
                .query_map([id], |r| {
                    let has_heldout: bool = r.get(2)?;
                    Ok(EpochLoss {
                        epoch: uint(r.get(0)?),
                        train_loss: nan_if_null(r.get(1)?),
                        heldout_loss: has_heldout.then(|| r.get::<_, Option<f64>>(3)).transpose()?.map(nan_if_null),
                    })
                })
                .ctx(path, &doing)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx(path, &doing)?
        };
        let log = {
            let mut st =
                tx.prepare("SELECT at, message FROM run_log WHERE run_id = ?1 ORDER BY id").ctx(path, &doing)?;
            let rows = st.query_map([id], |r| Ok(LogLine { at: r.get(0)?, message: r.get(1)? })).ctx(path, &doing)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().ctx(path, &doing)?
        };
        let system = self.run_system(id)?;
        Ok(RunDetail { info, spec, train_ids, heldout_ids, step_losses, epoch_losses, log, checkpoint, system })
    }

    /// Every per-sample score of a run, in the order recorded.
    pub fn run_scores(&self, run: i64) -> Result<Vec<StoredScore>> {
        let tx = self.read_tx()?;
        let path = &self.path;
        let doing = format!("reading the scores of run {run}");
        check_exists(&tx, path, "run", run)?;
        let mut st = tx
            .prepare(
                "SELECT sample_id, split, phase, probs_json, logits_json, label, label_prob, correct FROM scores \
                 WHERE run_id = ?1 ORDER BY id",
            )
            .ctx(path, &doing)?;
        let rows = st
            .query_map([run], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<f64>>(6)?,
                    r.get::<_, bool>(7)?,
                ))
            })
            .ctx(path, &doing)?;
        let mut out = Vec::new();
        for r in rows {
            let (sample_id, split, phase, probs, logits, label, label_prob, correct) = r.ctx(path, &doing)?;
            out.push(StoredScore {
                sample_id,
                split: Split::parse(&split).ok_or_else(|| Error::Invalid(format!("unknown split `{split}` in the store")))?,
                phase: phase.parse().map_err(|_| Error::Invalid(format!("unknown score phase `{phase}` in the store")))?,
                probs: parse_floats(path, &probs, "probabilities")?,
                logits: parse_floats(path, &logits, "logits")?,
                label: uint(label),
                label_prob: nan_if_null(label_prob) as f32,
                correct,
            });
        }
        Ok(out)
    }

    /// Builds a [`RunInfo`]; also returns the spec JSON and the checkpoint path.
    fn finish_run_info(&self, raw: RawRun) -> Result<(RunInfo, String, Option<std::path::PathBuf>)> {
        let spec: serde_json::Value =
            serde_json::from_str(&raw.spec_json).ctx(&self.path, format!("run {}: spec", raw.id))?;
        let f = |p: &str| spec.pointer(p).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
        let u = |p: &str| {
            spec.pointer(p).and_then(serde_json::Value::as_u64).map_or(0, |v| usize::try_from(v).unwrap_or(0))
        };
        let status = RunStatus::parse(&raw.status)?;
        let phase = raw.phase.as_deref().map(parse_phase).transpose()?;
        let info = RunInfo {
            id: raw.id,
            experiment_id: raw.experiment_id,
            experiment_name: raw.experiment_name,
            dataset_id: raw.dataset_id,
            dataset_name: raw.dataset_name,
            status,
            device: raw.device,
            created_at: raw.created_at,
            started_at: raw.started_at,
            ended_at: raw.ended_at,
            lr: f("/train/lr"),
            epochs: u("/train/epochs"),
            batch_size: u("/train/batch_size"),
            optimizer: spec.pointer("/train/optimizer").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
            weight_decay: f("/train/weight_decay"),
            train_samples: u("/sample/train"),
            heldout_samples: u("/sample/heldout"),
            metrics: raw.metrics,
            phase,
            phase_done: raw.phase_done.map(uint),
            phase_total: raw.phase_total.map(uint),
            phase_eta_s: raw.phase_eta_s,
            error: raw.error,
            heartbeat_at: raw.heartbeat_at,
            owner_pid: u32::try_from(raw.owner_pid).unwrap_or(0),
            owner_host: raw.owner_host,
        };
        Ok((info, raw.spec_json, raw.checkpoint))
    }
}

/// Inserts an experiment row (its spec as `(json, toml)`) on dataset `dataset_id`, which must exist; returns its id.
pub(super) fn insert_experiment(
    conn: &rusqlite::Connection,
    path: &Path,
    spec: &ExperimentSpec,
    dataset_id: i64,
    (json, toml): (&str, &str),
) -> Result<i64> {
    check_exists(conn, path, "dataset", dataset_id)?;
    conn.execute(
        &format!(
            "INSERT INTO experiments (name, dataset_id, spec_json, spec_toml, created_at) VALUES (?1, ?2, ?3, ?4, {NOW})"
        ),
        params![spec.name, dataset_id, json, toml],
    )
    .ctx(path, format!("recording experiment `{}`", spec.name))?;
    Ok(conn.last_insert_rowid())
}

/// Inserts a `queued` run of experiment `experiment_id` (which must exist) owned by `owner`; returns its id. The
/// caller takes its lock, or puts it in the queue, before committing.
pub(super) fn insert_run(conn: &rusqlite::Connection, path: &Path, experiment_id: i64, owner: &Owner) -> Result<i64> {
    check_exists(conn, path, "experiment", experiment_id)?;
    conn.execute(
        &format!(
            "INSERT INTO runs (experiment_id, status, created_at, owner_pid, owner_host, owner_start, heartbeat_at) \
             VALUES (?1, 'queued', {NOW}, ?2, ?3, ?4, {NOW})"
        ),
        params![experiment_id, owner.pid, owner.host, owner.start],
    )
    .ctx(path, format!("creating a run of experiment {experiment_id}"))?;
    Ok(conn.last_insert_rowid())
}

/// Writes one event; returns how many rows of the run it touched (0: no such run).
fn write_event(conn: &rusqlite::Connection, path: &Path, run: i64, event: &Event) -> Result<usize> {
    let doing = format!("recording an event of run {run}");
    let n = match event {
        Event::Step { epoch, step, loss } => conn
            .execute(
                "INSERT INTO step_losses (run_id, step, epoch, loss) VALUES (?1, ?2, ?3, ?4)",
                params![run, int(*step), int(*epoch), loss],
            )
            .ctx(path, format!("recording step {step} of run {run}"))?,
        Event::EpochEnded { epoch, train_loss, heldout_loss } => conn
            .execute(
                "INSERT INTO epoch_losses (run_id, epoch, train_loss, has_heldout, heldout_loss) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run, int(*epoch), train_loss, heldout_loss.is_some(), heldout_loss],
            )
            .ctx(path, format!("recording epoch {epoch} of run {run}"))?,
        Event::PhaseStarted { phase, total } => conn
            .execute(
                &format!(
                    "UPDATE runs SET phase = ?2, phase_done = 0, phase_total = ?3, phase_eta_s = NULL, \
                     heartbeat_at = {NOW} WHERE id = ?1"
                ),
                params![run, phase_str(*phase), int(*total)],
            )
            .ctx(path, doing)?,
        Event::Progress { phase, done, total, eta_s, .. } => conn
            .execute(
                &format!(
                    "UPDATE runs SET phase = ?2, phase_done = ?3, phase_total = ?4, phase_eta_s = ?5, \
                     heartbeat_at = {NOW} WHERE id = ?1"
                ),
                params![run, phase_str(*phase), int(*done), int(*total), eta_s.is_finite().then_some(*eta_s)],
            )
            .ctx(path, doing)?,
        Event::Info { message } => conn
            .execute(
                &format!("INSERT INTO run_log (run_id, at, message) VALUES (?1, {NOW}, ?2)"),
                params![run, message],
            )
            .ctx(path, doing)?,
    };
    Ok(n)
}

pub(super) fn no_run(id: i64) -> Error {
    Error::not_found_id("run", id)
}

pub(super) fn found_run(changed: usize, run: i64) -> Result<()> {
    if changed == 0 {
        Err(no_run(run))
    } else {
        Ok(())
    }
}

/// A phase's stored name (its serde name: `load`, `score_before`, ...).
pub(crate) fn phase_str(p: Phase) -> String {
    match serde_json::to_value(p) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{p:?}"),
    }
}

fn parse_phase(s: &str) -> Result<Phase> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| Error::Invalid(format!("unknown run phase `{s}`")))
}

struct RawExperiment {
    id: i64,
    name: String,
    dataset_id: i64,
    dataset_name: String,
    spec_json: String,
    spec_toml: String,
    created_at: String,
    n_runs: i64,
}

fn raw_experiment(r: &Row<'_>) -> rusqlite::Result<RawExperiment> {
    Ok(RawExperiment {
        id: r.get(0)?,
        name: r.get(1)?,
        dataset_id: r.get(2)?,
        dataset_name: r.get(3)?,
        spec_json: r.get(4)?,
        spec_toml: r.get(5)?,
        created_at: r.get(6)?,
        n_runs: r.get(7)?,
    })
}

struct RawRun {
    id: i64,
    experiment_id: i64,
    experiment_name: String,
    dataset_id: i64,
    dataset_name: String,
    status: String,
    device: Option<String>,
    created_at: String,
    started_at: Option<String>,
    ended_at: Option<String>,
    spec_json: String,
    metrics: RunMetrics,
    phase: Option<String>,
    phase_done: Option<i64>,
    phase_total: Option<i64>,
    phase_eta_s: Option<f64>,
    error: Option<String>,
    heartbeat_at: String,
    owner_pid: i64,
    owner_host: String,
    checkpoint: Option<std::path::PathBuf>,
}

fn raw_run(r: &Row<'_>) -> rusqlite::Result<RawRun> {
    let summary = |p: &str| -> rusqlite::Result<Option<Summary>> {
        let n: Option<i64> = r.get(format!("{p}_n").as_str())?;
        let Some(n) = n else { return Ok(None) };
        Ok(Some(Summary {
            n: uint(n),
            mean_label_prob: nan_if_null(r.get(format!("{p}_mean_label_prob").as_str())?),
            accuracy: nan_if_null(r.get(format!("{p}_accuracy").as_str())?),
        }))
    };
    let [tb, ta, hb, ha] = METRIC_PREFIXES;
    Ok(RawRun {
        id: r.get("id")?,
        experiment_id: r.get("experiment_id")?,
        experiment_name: r.get("experiment_name")?,
        dataset_id: r.get("dataset_id")?,
        dataset_name: r.get("dataset_name")?,
        status: r.get("status")?,
        device: r.get("device")?,
        created_at: r.get("created_at")?,
        started_at: r.get("started_at")?,
        ended_at: r.get("ended_at")?,
        spec_json: r.get("spec_json")?,
        metrics: RunMetrics {
            train_before: summary(tb)?,
            train_after: summary(ta)?,
            heldout_before: summary(hb)?,
            heldout_after: summary(ha)?,
        },
        phase: r.get("phase")?,
        phase_done: r.get("phase_done")?,
        phase_total: r.get("phase_total")?,
        phase_eta_s: r.get("phase_eta_s")?,
        error: r.get("error")?,
        heartbeat_at: r.get("heartbeat_at")?,
        owner_pid: r.get("owner_pid")?,
        owner_host: r.get("owner_host")?,
        checkpoint: r.get::<_, Option<PathCol>>("checkpoint_path")?.map(|p| p.0),
    })
}
