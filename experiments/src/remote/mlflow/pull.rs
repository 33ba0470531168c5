//! Pulling runs that CLIP Lab pushed from other machines into the local store, read-only.
//!
//! Each run comes with its [`RunRecord`] and [`DatasetRecord`] artifacts. Its samples are mapped onto a local
//! dataset with the same content hash (by metadata row); without one, the dataset's rows are stored as a new
//! dataset, `<name> (from <server>)`, whose images are not here (charts and numbers need none). Pulling again replaces the local copy and
//! keeps its id; a run this store pushed itself is not pulled back.

use std::collections::HashMap;
use std::path::PathBuf;

use super::api::{self, RemoteRun};
use super::client::Client;
use super::{
    metrics_from_record, origin_of, DatasetRecord, RunRecord, DATASET_RECORD, RECORD_FORMAT, RUN_RECORD, TAG_ORIGIN,
    TAG_RUN_ID,
};
use crate::data::{DatasetRow, ImportedDataset};
use crate::events::{Event, Observer};
use crate::run::store::{EpochLoss, PulledRun, StepLoss, Store};
use crate::validation::ValidationReport;
use crate::{Error, Result};

/// What to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOptions {
    /// The MLflow experiment to pull from.
    pub experiment: String,
    /// MLflow run ids; empty: every run CLIP Lab pushed to the experiment.
    pub runs: Vec<String>,
}

/// One pulled run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PulledOne {
    pub remote_run_id: String,
    /// Its id in the local store.
    pub run: i64,
    /// Whether an earlier copy was replaced.
    pub replaced: bool,
    /// Where it was recorded.
    pub origin: String,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct PullOutcome {
    pub pulled: Vec<PulledOne>,
    /// Runs left out, with why (not CLIP Lab's, pushed from this store).
    pub skipped: Vec<(String, String)>,
}

/// Pulls the runs of `opts` from the server into `store`.
pub fn pull_runs(
    store: &mut Store,
    client: &Client,
    opts: &PullOptions,
    obs: &mut dyn Observer,
) -> Result<PullOutcome> {
    let uri = client.tracking_uri().to_string();
    let experiment_id = api::experiment_id(client, &opts.experiment, false)?.ok_or_else(|| Error::NotFound {
        what: "MLflow experiment".into(),
        key: format!("named `{}`", opts.experiment),
        hint: format!(" on {uri}"),
    })?;
    let runs: Vec<RemoteRun> = if opts.runs.is_empty() {
        api::search_runs(client, &experiment_id, "")?
    } else {
        let mut v = Vec::new();
        for id in &opts.runs {
            let r = api::get_run(client, id)?.ok_or_else(|| Error::NotFound {
                what: "MLflow run".into(),
                key: format!("`{id}`"),
                hint: format!(" on {uri}"),
            })?;
            v.push(r);
        }
        v
    };
    let mut out = PullOutcome::default();
    let mut datasets: HashMap<String, i64> = HashMap::new();
    for r in runs {
        let Some(origin) = r.tags.get(TAG_ORIGIN).filter(|_| r.tags.contains_key(TAG_RUN_ID)) else {
            out.skipped.push((r.run_id.clone(), "not pushed by CLIP Lab".into()));
            continue;
        };
        let local = r.tags.get(TAG_RUN_ID).and_then(|id| id.parse::<i64>().ok());
        if local.is_some_and(|id| origin_of(store.path(), id) == *origin) {
            out.skipped.push((r.run_id.clone(), format!("pushed from this store (run {})", local.unwrap_or(0))));
            continue;
        }
        obs.on_event(&Event::Info { message: format!("pulling MLflow run {} ({origin})", r.run_id) });
        let root = r.artifact_root(client)?;
        let record: RunRecord = read_record(client, &root, RUN_RECORD)?;
        let dataset: DatasetRecord = read_record(client, &root, DATASET_RECORD)?;
        if record.format != RECORD_FORMAT || dataset.format != RECORD_FORMAT {
            return Err(Error::Invalid(format!(
                "MLflow run {}: records of format {} / {}, this CLIP Lab reads {RECORD_FORMAT}",
                r.run_id, record.format, dataset.format
            )));
        }
        let key = format!("{}/{}", dataset.content_hash, dataset.samples.len());
        let dataset_id = match datasets.get(&key) {
            Some(&id) => id,
            None => {
                let id = local_dataset(store, &dataset, &uri)?;
                datasets.insert(key, id);
                id
            }
        };
        let pulled = to_local(store, &record, &dataset, dataset_id, &uri, &r.run_id)?;
        let replaced = store.pulled_run_id(&uri, &r.run_id)?.is_some();
        let run = store.insert_pulled_run(&pulled)?;
        out.pulled.push(PulledOne { remote_run_id: r.run_id, run, replaced, origin: origin.clone() });
    }
    super::remember_tracking_uri(store, &uri)?;
    Ok(out)
}

fn read_record<T: serde::de::DeserializeOwned>(client: &Client, root: &str, path: &str) -> Result<T> {
    let bytes = client.get_artifact(root, path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Invalid(format!("{}: artifact {path}: {e}", client.tracking_uri())))
}

/// The local dataset the run's samples map onto: one with the same content hash and rows, else a new one made
/// from the record (named `<original> (from <server>)`).
fn local_dataset(store: &mut Store, d: &DatasetRecord, uri: &str) -> Result<i64> {
    for local in store.datasets()? {
        if local.content_hash == d.content_hash && local.n_samples == d.samples.len() {
            return Ok(local.id);
        }
    }
    let taken: Vec<String> = store.datasets()?.into_iter().map(|x| x.name).collect();
    let host = uri.split("://").nth(1).unwrap_or(uri).split('/').next().unwrap_or(uri);
    // Not the original's name: that stays free for importing the dataset itself here.
    let name = std::iter::once(format!("{} (from {host})", d.name))
        .chain((2..).map(|i| format!("{} (from {host}) {i}", d.name)))
        .find(|n| !taken.contains(n))
        .unwrap_or_else(|| d.name.clone());
    let n = d.samples.len();
    let imported = ImportedDataset {
        name,
        metadata_path: PathBuf::from(format!("{uri} (pulled from MLflow)")),
        images_dir: None,
        columns: d.columns.clone(),
        rows: d
            .samples
            .iter()
            .map(|s| DatasetRow {
                row: s.row,
                filename: s.filename.clone(),
                choices: s.choices.clone(),
                label: s.label,
                extra: s.extra.as_object().cloned().unwrap_or_default(),
            })
            .collect(),
        images: d.images.clone(),
        report: ValidationReport { total_rows: n, valid_rows: n, problems: Vec::new() },
        content_hash: d.content_hash.clone(),
        extracted: Vec::new(),
    };
    store.insert_dataset(&imported)
}

/// The record with its sample ids mapped onto the local dataset (by metadata row).
fn to_local(
    store: &Store,
    r: &RunRecord,
    d: &DatasetRecord,
    dataset_id: i64,
    uri: &str,
    remote: &str,
) -> Result<PulledRun> {
    let local_by_row: HashMap<usize, i64> =
        store.dataset_samples(dataset_id)?.into_iter().map(|s| (s.row, s.id)).collect();
    let by_origin_id: HashMap<i64, i64> =
        d.samples.iter().filter_map(|s| Some((s.id, *local_by_row.get(&s.row)?))).collect();
    let map = |id: i64| {
        by_origin_id
            .get(&id)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("MLflow run {remote}: sample {id} is not in its dataset record")))
    };
    let ids = |v: &[i64]| v.iter().map(|&id| map(id)).collect::<Result<Vec<i64>>>();
    let mut scores = r.scores.clone();
    for s in &mut scores {
        s.sample_id = map(s.sample_id)?;
    }
    // The spec as it was written on the origin (its `dataset` names the origin's dataset); the run's experiment
    // row links the local one.
    let spec = r.spec.clone();
    Ok(PulledRun {
        tracking_uri: uri.to_string(),
        remote_run_id: remote.to_string(),
        origin: r.origin.clone(),
        dataset_id,
        spec,
        lifecycle: r.lifecycle.clone(),
        metrics: metrics_from_record(&r.metrics),
        train_ids: ids(&r.train_ids)?,
        heldout_ids: ids(&r.heldout_ids)?,
        step_losses: r.step_losses.iter().map(|&(step, epoch, loss)| StepLoss { step, epoch, loss: loss.0 }).collect(),
        epoch_losses: r
            .epoch_losses
            .iter()
            .map(|&(epoch, train, held)| EpochLoss { epoch, train_loss: train.0, heldout_loss: held.map(|h| h.0) })
            .collect(),
        scores,
    })
}
