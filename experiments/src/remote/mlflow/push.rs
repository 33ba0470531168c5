//! Pushing a local run to an MLflow tracking server.
//!
//! Idempotent: the MLflow run a push created is remembered in the store (`remote_pushes`) once the push has
//! completed, and found again by its `cliplab.origin` tag when a push stopped half-way; pushing again logs only
//! what the server lacks (params not yet logged, metric points whose step is missing or whose value changed) and
//! uploads the artifacts again. Nothing is written to the local store before the push has completed.

use std::collections::BTreeMap;
use std::path::Path;

use super::api::{self, Point, RemoteRun};
use super::client::Client;
use super::{
    metrics_to_record, origin_of, DatasetRecord, Exact, RunRecord, DATASET_RECORD, RECORD_FORMAT, RUN_RECORD,
    TAG_ORIGIN, TAG_RUN_ID,
};
use crate::events::{Event, Observer};
use crate::report::analysis::flatten_json;
use crate::run::store::{RunDetail, RunLifecycle, RunStatus, Store};
use crate::vocab::{Split, Stage};
use crate::{Error, Result};

/// MLflow's longest param value.
const MAX_PARAM_VALUE: usize = 6000;

/// What to push where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOptions {
    /// The MLflow experiment; `None`: the run's CLIP Lab experiment name.
    pub experiment: Option<String>,
    /// Upload the fine-tuned checkpoint folder too.
    pub with_checkpoint: bool,
}

/// What one push did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PushOutcome {
    pub run: i64,
    pub experiment_id: String,
    pub remote_run_id: String,
    /// The run's page in the MLflow UI.
    pub url: String,
    /// Whether this push created the MLflow run (false: it updated the one pushed before).
    pub created: bool,
    pub params_logged: usize,
    pub metrics_logged: usize,
    pub tags_logged: usize,
    pub artifacts: usize,
    /// `log-batch` requests sent.
    pub batches: usize,
    /// What the push could not do as asked (a param whose value changed, a NaN loss, charts that failed).
    pub warnings: Vec<String>,
}

/// Pushes several runs, in order; stops at the first failure.
pub fn push_runs(
    store: &mut Store,
    client: &Client,
    runs: &[i64],
    opts: &PushOptions,
    obs: &mut dyn Observer,
) -> Result<Vec<PushOutcome>> {
    runs.iter().map(|&r| push_run(store, client, r, opts, obs)).collect()
}

/// Pushes run `run` (see the module docs); a run still training can be pushed and pushed again.
pub fn push_run(
    store: &mut Store,
    client: &Client,
    run: i64,
    opts: &PushOptions,
    obs: &mut dyn Observer,
) -> Result<PushOutcome> {
    store.check_not_pulled(run)?;
    let detail = store.run(run)?;
    let origin = origin_of(store.path(), run);
    let exp_name = opts.experiment.clone().unwrap_or_else(|| detail.info.experiment_name.clone());
    let info = |obs: &mut dyn Observer, m: String| obs.on_event(&Event::Info { message: m });
    info(obs, format!("run {run}: pushing to {} (experiment `{exp_name}`)", client.tracking_uri()));
    let experiment_id = api::experiment_id(client, &exp_name, true)?
        .ok_or_else(|| Error::Invalid(format!("{}: experiment `{exp_name}` has no id", client.tracking_uri())))?;
    let dataset = store.dataset(&detail.info.dataset_id.to_string())?;
    let tags = run_tags(&detail, &origin, &dataset.name, &dataset.content_hash);
    let (remote, created) = match find_remote(store, client, run, &experiment_id, &origin)? {
        Some(r) => (r, false),
        None => {
            let start = iso_to_ms(&detail.info.created_at).unwrap_or_else(now_ms);
            let name = format!("cliplab run {run} · {}", detail.info.experiment_name);
            (api::create_run(client, &experiment_id, &name, start, &tags)?, true)
        }
    };
    let mut warnings = Vec::new();
    let params = new_params(&detail, &remote, &mut warnings)?;
    let metrics = new_points(client, &remote.run_id, &detail, &mut warnings)?;
    let tags: Vec<(String, String)> = tags.into_iter().filter(|(k, v)| remote.tags.get(k) != Some(v)).collect();
    info(
        obs,
        format!("run {run}: logging {} params, {} metric points, {} tags", params.len(), metrics.len(), tags.len()),
    );
    let batches = api::log_batch(client, &remote.run_id, &metrics, &params, &tags)?;
    let artifacts = upload_artifacts(store, client, &detail, &remote, &origin, opts, &mut warnings, obs)?;
    let end = detail.info.ended_at.as_deref().and_then(iso_to_ms);
    api::update_run(
        client,
        &remote.run_id,
        mlflow_status(detail.info.status),
        end.filter(|_| detail.info.status.is_finished()),
    )?;
    store.remember_push(run, client.tracking_uri(), &experiment_id, &remote.run_id)?;
    super::remember_tracking_uri(store, client.tracking_uri())?;
    for w in &warnings {
        info(obs, format!("run {run}: {w}"));
    }
    Ok(PushOutcome {
        run,
        url: format!("{}/#/experiments/{experiment_id}/runs/{}", client.tracking_uri(), remote.run_id),
        experiment_id,
        remote_run_id: remote.run_id,
        created,
        params_logged: params.len(),
        metrics_logged: metrics.len(),
        tags_logged: tags.len(),
        artifacts,
        batches,
        warnings,
    })
}

/// The MLflow run this run was pushed to in `experiment_id`: the one the store remembers, else one tagged with
/// this run's origin (a push that stopped before it was remembered).
fn find_remote(
    store: &Store,
    client: &Client,
    run: i64,
    experiment_id: &str,
    origin: &str,
) -> Result<Option<RemoteRun>> {
    if let Some(p) = store.remote_push(run, client.tracking_uri())? {
        if let Some(r) = api::get_run(client, &p.remote_run_id)? {
            if r.experiment_id == experiment_id {
                return Ok(Some(r));
            }
        }
    }
    let found = api::search_runs(client, experiment_id, &format!("tags.`{TAG_RUN_ID}` = '{run}'"))?;
    Ok(found.into_iter().find(|r| r.tags.get(TAG_ORIGIN).map(String::as_str) == Some(origin)))
}

/// The run's tags: where it comes from, its dataset, model, device and status.
fn run_tags(d: &RunDetail, origin: &str, dataset: &str, hash: &str) -> Vec<(String, String)> {
    let mut t = vec![
        (TAG_RUN_ID.to_string(), d.info.id.to_string()),
        (TAG_ORIGIN.to_string(), origin.to_string()),
        ("cliplab.experiment".to_string(), d.info.experiment_name.clone()),
        ("cliplab.dataset".to_string(), dataset.to_string()),
        ("cliplab.dataset_hash".to_string(), hash.to_string()),
        ("cliplab.model".to_string(), d.spec.model.display().to_string()),
        ("cliplab.device".to_string(), d.info.device.clone().unwrap_or_default()),
        ("cliplab.status".to_string(), d.info.status.to_string()),
    ];
    if !d.spec.notes.trim().is_empty() {
        // MLflow shows this tag as the run's description.
        t.push(("mlflow.note.content".to_string(), d.spec.notes.clone()));
    }
    t
}

/// The spec, flattened (`train.lr`, `sample.seed`, ...), as MLflow params: those the run lacks. MLflow never
/// lets a param change: one logged before with another value is left as it is, with a warning.
fn new_params(d: &RunDetail, remote: &RemoteRun, warnings: &mut Vec<String>) -> Result<Vec<(String, String)>> {
    let mut spec = serde_json::to_value(&d.spec)?;
    if let Some(o) = spec.as_object_mut() {
        o.remove("notes");
    }
    let mut out = Vec::new();
    for (k, v) in flatten_json(&spec) {
        let v = match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        if v.len() > MAX_PARAM_VALUE {
            warnings.push(format!("param `{k}` is longer than MLflow's {MAX_PARAM_VALUE} characters; not logged"));
            continue;
        }
        match remote.params.get(&k) {
            Some(old) if *old == v => {}
            Some(old) => warnings.push(format!(
                "param `{k}` is `{old}` on the server and `{v}` here; MLflow params cannot change, the server keeps `{old}`"
            )),
            None => out.push((k, v)),
        }
    }
    Ok(out)
}

/// Every metric series of the run: `train_loss` per step, `epoch_train_loss` / `epoch_heldout_loss` per epoch,
/// and the summaries (`train_before_accuracy`, `heldout_after_mean_label_prob`, `..._n`) at step 0.
pub(crate) fn run_series(d: &RunDetail) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut s: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let i = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    s.insert("train_loss".into(), d.step_losses.iter().map(|l| (i(l.step), l.loss)).collect());
    s.insert("epoch_train_loss".into(), d.epoch_losses.iter().map(|e| (i(e.epoch), e.train_loss)).collect());
    let held: Vec<(i64, f64)> = d.epoch_losses.iter().filter_map(|e| Some((i(e.epoch), e.heldout_loss?))).collect();
    if !held.is_empty() {
        s.insert("epoch_heldout_loss".into(), held);
    }
    let m = &d.info.metrics;
    for (split, stage, sum) in [
        (Split::Train, Stage::Before, m.train_before),
        (Split::Train, Stage::After, m.train_after),
        (Split::Heldout, Stage::Before, m.heldout_before),
        (Split::Heldout, Stage::After, m.heldout_after),
    ] {
        if let Some(sum) = sum {
            let p = format!("{}_{}", split.as_str(), stage.as_str());
            s.insert(format!("{p}_mean_label_prob"), vec![(0, sum.mean_label_prob)]);
            s.insert(format!("{p}_accuracy"), vec![(0, sum.accuracy)]);
            s.insert(format!("{p}_n"), vec![(0, sum.n as f64)]);
        }
    }
    s
}

/// The metric points the server lacks: a step it does not have, or whose last value differs. NaN is left out
/// (JSON has no NaN), with a warning.
fn new_points(client: &Client, run_id: &str, d: &RunDetail, warnings: &mut Vec<String>) -> Result<Vec<Point>> {
    let now = now_ms();
    let mut out = Vec::new();
    for (key, series) in run_series(d) {
        let have = api::metric_history(client, run_id, &key)?;
        let mut nan = 0;
        for (step, value) in series {
            if !value.is_finite() {
                nan += 1;
                continue;
            }
            if !have.get(&step).is_some_and(|&v| same_value(v, value)) {
                out.push(Point { key: key.clone(), value, step, timestamp_ms: now });
            }
        }
        if nan > 0 {
            warnings.push(format!("metric `{key}`: {nan} NaN or infinite value(s) not logged"));
        }
    }
    Ok(out)
}

/// Uploads the spec, the pull records, the charts and the per-sample CSV (and the checkpoint when asked);
/// returns how many files.
#[allow(clippy::too_many_arguments)]
fn upload_artifacts(
    store: &Store,
    client: &Client,
    d: &RunDetail,
    remote: &RemoteRun,
    origin: &str,
    opts: &PushOptions,
    warnings: &mut Vec<String>,
    obs: &mut dyn Observer,
) -> Result<usize> {
    let root = remote.artifact_root(client)?;
    let run = d.info.id;
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("spec.toml".into(), d.spec.to_toml()?.into_bytes()),
        (RUN_RECORD.into(), serde_json::to_vec(&run_record(store, d, origin)?)?),
        (DATASET_RECORD.into(), serde_json::to_vec(&dataset_record(store, d.info.dataset_id)?)?),
    ];
    let tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let charts = tmp.path().join("charts");
    match crate::report::compare::compare_runs(store, &[run], &charts) {
        Ok(report) => {
            for f in report.files {
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let bytes = std::fs::read(&f).map_err(|e| Error::io(&f, e))?;
                let dest = if name.ends_with(".csv") { name } else { format!("charts/{name}") };
                files.push((dest, bytes));
            }
        }
        Err(e) => warnings.push(format!("charts not uploaded: {e}")),
    }
    let mut n = 0;
    for (path, bytes) in &files {
        client.put_artifact(&root, path, bytes)?;
        n += 1;
    }
    if opts.with_checkpoint {
        match d.checkpoint.as_deref().filter(|p| p.is_dir()) {
            Some(dir) => {
                let list = files_under(dir)?;
                obs.on_event(&Event::Info {
                    message: format!("run {run}: uploading the checkpoint ({} files)", list.len()),
                });
                for rel in list {
                    let path = dir.join(&rel);
                    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
                    client.put_artifact(&root, &format!("checkpoint/{rel}"), &bytes)?;
                    n += 1;
                }
            }
            None => warnings.push("no checkpoint folder to upload".into()),
        }
    }
    Ok(n)
}

/// The run as [`RunRecord`].
fn run_record(store: &Store, d: &RunDetail, origin: &str) -> Result<RunRecord> {
    Ok(RunRecord {
        format: RECORD_FORMAT,
        origin: origin.to_string(),
        run_id: d.info.id,
        experiment_name: d.info.experiment_name.clone(),
        spec: d.spec.clone(),
        lifecycle: RunLifecycle::of(&d.info),
        metrics: metrics_to_record(&d.info.metrics),
        train_ids: d.train_ids.clone(),
        heldout_ids: d.heldout_ids.clone(),
        step_losses: d.step_losses.iter().map(|s| (s.step, s.epoch, Exact(s.loss))).collect(),
        epoch_losses: d
            .epoch_losses
            .iter()
            .map(|e| (e.epoch, Exact(e.train_loss), e.heldout_loss.map(Exact)))
            .collect(),
        scores: store.run_scores(d.info.id)?,
    })
}

/// The run's dataset as [`DatasetRecord`].
fn dataset_record(store: &Store, dataset_id: i64) -> Result<DatasetRecord> {
    let info = store.dataset(&dataset_id.to_string())?;
    Ok(DatasetRecord {
        format: RECORD_FORMAT,
        name: info.name,
        content_hash: info.content_hash,
        columns: info.columns,
        samples: store.dataset_samples(dataset_id)?,
        images: store.dataset_images(dataset_id)?,
    })
}

/// Every file under `dir`, as `/`-separated relative paths, sorted.
fn files_under(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let p = e.map_err(|e| Error::io(&d, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a value read back from MLflow is the one logged: its JSON answers keep 15 to 16 significant digits,
/// not always the 17 that round-trip an f64.
pub(crate) fn same_value(server: f64, ours: f64) -> bool {
    server == ours || (server - ours).abs() <= 1e-13 * server.abs().max(ours.abs())
}

/// MLflow's run status for a CLIP Lab status.
fn mlflow_status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Queued | RunStatus::Running => "RUNNING",
        RunStatus::Completed => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Cancelled | RunStatus::Interrupted => "KILLED",
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch of the store's UTC times (`2025-01-31T12:00:00.000Z`).
pub(crate) fn iso_to_ms(t: &str) -> Option<i64> {
    let (date, time) = t.trim_end_matches('Z').split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut hms = time.splitn(3, ':');
    let (h, min) = (hms.next()?.parse::<i64>().ok()?, hms.next()?.parse::<i64>().ok()?);
    let secs: f64 = hms.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60) * 1000 + (secs * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::{iso_to_ms, same_value};

    #[test]
    fn values_read_back_with_fewer_digits_count_as_the_same() {
        assert!(same_value(1.631253361701965, 1.6312533617019653));
        assert!(same_value(0.0, 0.0));
        assert!(!same_value(1.6312533, 1.6312534));
        assert!(!same_value(0.0, 1e-300));
    }

    #[test]
    fn store_times_convert_to_epoch_milliseconds() {
        assert_eq!(iso_to_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(iso_to_ms("2025-01-31T12:00:00.250Z"), Some(1_738_324_800_250));
        assert_eq!(iso_to_ms("2024-03-01T00:00:01Z"), Some(1_709_251_201_000));
        assert_eq!(iso_to_ms("yesterday"), None);
    }
}
