//! Work that reaches another machine: pushing runs to an MLflow tracking server and pulling a team's runs back
//! (`experiments::remote::mlflow`). Each call is a job the page names with a number of its own choosing: progress
//! arrives as [`AppEvent::Job`] events with that number, and [`App::cancel_job`] stops it between requests.
//!
//! The long calls work on a store connection of their own (WAL lets it write beside the app's), so the screens
//! stay responsive while a push waits on the network.

use experiments::events::{Callback, CancelToken, Event, Throttle, WithCancel};
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
        self.with_job(job, |store, obs| {
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
        let out = self.with_job(job, |store, obs| {
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

    /// Runs `work` as job `job`: a store connection of its own, events to the page, cancellation.
    fn with_job<T>(
        &self,
        job: u64,
        work: impl FnOnce(&mut Store, &mut dyn experiments::events::Observer) -> Result<T>,
    ) -> Result<T> {
        let token = CancelToken::new();
        if lock(&self.jobs).insert(job, token.clone()).is_some() {
            return Err(Error::Invalid(format!("job {job} is already running")));
        }
        let result = (|| {
            let mut store = Store::open(&self.home)?;
            let sink = self.sink.as_ref();
            let mut obs =
                WithCancel::new(Throttle::new(Callback::new(|e: &Event| sink.emit(AppEvent::Job { job, event: e.clone() }))), token);
            work(&mut store, &mut obs)
        })();
        lock(&self.jobs).remove(&job);
        result
    }
}

/// A client for `given` (else the default tracking server), with the credentials of the environment.
fn client(store: &Store, given: Option<&str>) -> experiments::Result<Client> {
    let given = given.map(str::trim).filter(|u| !u.is_empty());
    Client::new(&mlflow::resolve_tracking_uri(store, given)?, Auth::from_env())
}
