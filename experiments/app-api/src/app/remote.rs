//! Work that reaches another machine: pushing runs to an MLflow tracking server and pulling a team's runs back
//! (`experiments::remote::mlflow`), downloading a CLIP model from the Hugging Face hub (`model::hub`), and
//! starting an import from bucket or web URLs (`data::remote`; the download itself happens in the draft's
//! preview, with the import's progress and cancel). Each push, pull or download is a job the page names with a
//! number of its own choosing: progress arrives as [`AppEvent::Job`] events with that number, and
//! [`App::cancel_job`] stops it between requests (or files).
//!
//! The MLflow calls work on a store connection of their own (WAL lets it write beside the app's), so the screens
//! stay responsive while a push waits on the network.

use std::path::PathBuf;

use experiments::data::remote as remote_data;
use experiments::events::{Callback, CancelToken, Event, Observer, Throttle, WithCancel};
use experiments::model::hub::{self, HubConfig, HubId};
use experiments::remote::mlflow::{self, Auth, Client, PullOptions, PushOptions};
use experiments::run::store::Store;

use super::{lock, App};
use crate::views::*;
use crate::{Error, Result};

impl App {
    /// The tracking server the MLflow dialogs start with: `MLFLOW_TRACKING_URI`, else the one this home last
    /// reached (remembered in its settings).
    pub fn mlflow_defaults(&self) -> Result<MlflowDefaults> {
        let tracking_uri = mlflow::resolve_tracking_uri(&self.store(), None).ok();
        Ok(MlflowDefaults { tracking_uri })
    }

    /// Pushes runs to a tracking server (`tracking_uri` empty: the default above); pushing again updates the same
    /// MLflow runs. Stops at the first run that fails; the runs pushed before it stay pushed.
    pub fn mlflow_push(&self, job: u64, request: &MlflowPushRequest) -> Result<Vec<PushedRun>> {
        if request.run_ids.is_empty() {
            return Err(Error::Invalid("no run to push".into()));
        }
        self.with_job(job, |obs, _| {
            let store = &mut Store::open(&self.home)?;
            let client = client(store, request.tracking_uri.as_deref())?;
            let opts = PushOptions {
                experiment: request.experiment.clone().filter(|e| !e.trim().is_empty()),
                with_checkpoint: request.with_checkpoint,
            };
            let mut out = Vec::new();
            for &run in &request.run_ids {
                let o = mlflow::push_run(store, &client, run, &opts, obs)?;
                out.push(PushedRun {
                    run: o.run,
                    remote_run_id: o.remote_run_id,
                    url: o.url,
                    created: o.created,
                    metrics_logged: o.metrics_logged,
                    artifacts: o.artifacts,
                    warnings: o.warnings,
                });
            }
            Ok(out)
        })
    }

    /// Pulls the runs CLIP Lab pushed to an MLflow experiment into this store (read-only copies).
    pub fn mlflow_pull(&self, job: u64, request: &MlflowPullRequest) -> Result<PulledRuns> {
        let experiment = request.experiment.trim();
        if experiment.is_empty() {
            return Err(Error::Invalid("name the MLflow experiment to pull from".into()));
        }
        let out = self.with_job(job, |obs, _| {
            let store = &mut Store::open(&self.home)?;
            let client = client(store, request.tracking_uri.as_deref())?;
            let opts = PullOptions { experiment: experiment.to_string(), runs: request.remote_run_ids.clone() };
            let o = mlflow::pull_runs(store, &client, &opts, obs)?;
            Ok(PulledRuns {
                runs: o.pulled.iter().map(|p| p.run).collect(),
                replaced: o.pulled.iter().filter(|p| p.replaced).count(),
                skipped: o.skipped.into_iter().map(|(id, why)| format!("MLflow run {id}: {why}")).collect(),
            })
        })?;
        // Pulled runs replace earlier copies: forget what the screens cached of them.
        let mut cache = lock(&self.finished_runs);
        for run in &out.runs {
            cache.remove(run);
        }
        Ok(out)
    }

    /// Asks job `job` to stop (after its current request); unknown or finished jobs are ignored.
    pub fn cancel_job(&self, job: u64) {
        if let Some(token) = lock(&self.jobs).get(&job) {
            token.cancel();
        }
    }

    /// "Download model…": pulls a CLIP model (`owner/name` or `owner/name@revision`) into the Hugging Face cache,
    /// resuming what an earlier download left, and adds it to the models an experiment may name. Honours
    /// `HF_ENDPOINT`, `HF_TOKEN`, `HF_HUB_OFFLINE` as `cliplab model pull` does.
    pub fn pull_model(&self, job: u64, repo: &str) -> Result<ModelChoice> {
        let repo = repo.trim();
        let id = HubId::parse(repo).ok_or_else(|| {
            Error::Invalid(format!("`{repo}` is not a hub model id (owner/name, or owner/name@revision)"))
        })?;
        let pulled = self.with_job(job, |obs, cancel| Ok(hub::pull(&id, &HubConfig::from_env(), obs, cancel)?))?;
        self.allow_model_named(&pulled.folder, id.to_string(), "hub");
        let found = lock(&self.models).iter().find(|m| m.path == pulled.folder).cloned();
        found.ok_or_else(|| Error::Invalid(format!("{}: downloaded, but not listed", pulled.folder.display())))
    }

    /// "Import from URL…": a draft over `gs://`, `s3://` or `https://` URLs: a metadata file and its image folder,
    /// or a dataset folder alone (its one metadata file and `images/`, as the tutorial's bucket is laid out). The
    /// preview downloads what the home's cache lacks, then validates as for local files.
    pub fn import_url(&self, metadata: &str, images: Option<&str>) -> Result<ImportDraft> {
        let metadata = metadata.trim();
        let images = images.map(str::trim).filter(|s| !s.is_empty());
        if !remote_data::is_url(metadata) {
            return Err(Error::Invalid(format!("`{metadata}` is not a gs://, s3:// or https:// URL")));
        }
        let source = match images {
            None if metadata.ends_with('/') => remote_data::resolve_folder(metadata)?,
            _ => {
                let opts = experiments::data::ImportOptions {
                    name: String::new(),
                    metadata: PathBuf::from(metadata),
                    images_dir: images.map(PathBuf::from),
                    columns: Default::default(),
                    on_error: Default::default(),
                    extract_dir: None,
                };
                remote_data::remote_source(&opts)?
                    .ok_or_else(|| Error::Invalid(format!("`{metadata}` is not a remote URL")))?
            }
        };
        let name = dataset_name(&source.metadata);
        Ok(self.new_draft(name, PathBuf::from(&source.metadata), source.images.map(PathBuf::from)))
    }

    /// Runs `work` as job `job`: its events to the page, and its cancellation.
    fn with_job<T>(&self, job: u64, work: impl FnOnce(&mut dyn Observer, &CancelToken) -> Result<T>) -> Result<T> {
        let token = CancelToken::new();
        if lock(&self.jobs).insert(job, token.clone()).is_some() {
            return Err(Error::Invalid(format!("job {job} is already running")));
        }
        let sink = self.sink.as_ref();
        let mut obs = WithCancel::new(
            Throttle::new(Callback::new(|e: &Event| sink.emit(AppEvent::Job { job, event: e.clone() }))),
            token.clone(),
        );
        let result = work(&mut obs, &token);
        lock(&self.jobs).remove(&job);
        result
    }
}

/// A client for `given` (else the default tracking server), with the credentials of the environment.
fn client(store: &Store, given: Option<&str>) -> experiments::Result<Client> {
    let given = given.map(str::trim).filter(|u| !u.is_empty());
    Client::new(&mlflow::resolve_tracking_uri(store, given)?, Auth::from_env())
}

/// A dataset name from a metadata URL: its file name without the extension (`new_yorker_meta`).
fn dataset_name(url: &str) -> String {
    let file = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let stem = file.split_once('.').map_or(file, |(stem, _)| stem);
    if stem.is_empty() { "dataset".into() } else { stem.to_string() }
}
