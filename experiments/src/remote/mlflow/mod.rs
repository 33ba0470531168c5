//! CLIP Lab runs on an MLflow tracking server: [`push_run`] sends a local run (params, tags, metrics with their
//! steps, artifacts) and [`pull_runs`] brings runs that CLIP Lab pushed from other machines into the local store,
//! read-only, with everything `compare` needs.
//!
//! - `client`: the REST calls (and the artifact proxy), auth from MLflow's environment variables, errors.
//! - `api`: the MLflow objects CLIP Lab uses (experiments, runs, metric histories) and `log-batch` in batches
//!   within MLflow's limits.
//! - `push` / `pull`: the two directions. Once one completed, the home remembers the server
//!   ([`resolve_tracking_uri`] falls back to it).
//!
//! What a pull needs travels as two JSON artifacts next to the charts and the per-sample CSV:
//! `cliplab/run.json` ([`RunRecord`]: splits, losses, summaries, every score) and `cliplab/dataset.json`
//! ([`DatasetRecord`]: the samples and their image records). The CSV is for people: it rounds probabilities to
//! six digits and lacks the caption texts, so a run rebuilt from it would not compare equal to the original.

mod api;
mod client;
mod pull;
mod push;

pub use api::{LOG_BATCH_BYTES, MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH};
pub use client::{is_not_found, tracking_uri, Auth, Client};
pub use pull::{pull_runs, PullOptions, PullOutcome, PulledOne};
pub use push::{push_run, push_runs, PushOptions, PushOutcome};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::data::{ColumnMap, ImageRecord};
use crate::model::engine::Summary;
use crate::run::spec::ExperimentSpec;
use crate::run::store::{RunLifecycle, RunMetrics, Store, StoredSample, StoredScore, SETTING_TRACKING_URI};
use crate::Result;

/// Tag: the run's id in the store it was recorded in.
pub const TAG_RUN_ID: &str = "cliplab.run_id";
/// Tag: where the run was recorded (`<host>:<store file>#<run id>`); how a push finds its remote run again
/// when the local store does not know it yet (a push that stopped half-way).
pub const TAG_ORIGIN: &str = "cliplab.origin";
/// Artifact: the [`RunRecord`].
pub const RUN_RECORD: &str = "cliplab/run.json";
/// Artifact: the [`DatasetRecord`].
pub const DATASET_RECORD: &str = "cliplab/dataset.json";
/// The version of the JSON records this build writes and reads.
pub const RECORD_FORMAT: u32 = 1;

/// A run as pushed: what the local store holds about it, sample ids as in the origin store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub format: u32,
    pub origin: String,
    pub run_id: i64,
    pub experiment_name: String,
    pub spec: ExperimentSpec,
    /// Status, device, times and error: flattened, so the JSON keeps them beside the other fields.
    #[serde(flatten)]
    pub lifecycle: RunLifecycle,
    /// Train before, train after, held-out before, held-out after: `(n, mean p(label), accuracy)`.
    pub metrics: [Option<(usize, Exact, Exact)>; 4],
    pub train_ids: Vec<i64>,
    pub heldout_ids: Vec<i64>,
    /// `(step, epoch, loss)`.
    pub step_losses: Vec<(usize, usize, Exact)>,
    /// `(epoch, train loss, held-out loss)`.
    pub epoch_losses: Vec<(usize, Exact, Option<Exact>)>,
    pub scores: Vec<StoredScore>,
}

/// An f64 carried as its shortest round-trip text (`"1.6312533617019653"`, `"NaN"`): serde_json's default
/// number parser may land one ULP off, and a pulled run must compare equal to its original.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exact(pub f64);

impl Serialize for Exact {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:?}", self.0))
    }
}

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Exact).map_err(|_| serde::de::Error::custom(format!("`{text}` is not a number")))
    }
}

/// [`RunMetrics`] as the record carries them.
pub(crate) fn metrics_to_record(m: &RunMetrics) -> [Option<(usize, Exact, Exact)>; 4] {
    [m.train_before, m.train_after, m.heldout_before, m.heldout_after]
        .map(|s| s.map(|s| (s.n, Exact(s.mean_label_prob), Exact(s.accuracy))))
}

/// The record's metrics back as [`RunMetrics`].
pub(crate) fn metrics_from_record(r: &[Option<(usize, Exact, Exact)>; 4]) -> RunMetrics {
    let s = |x: Option<(usize, Exact, Exact)>| x.map(|(n, p, a)| Summary { n, mean_label_prob: p.0, accuracy: a.0 });
    RunMetrics { train_before: s(r[0]), train_after: s(r[1]), heldout_before: s(r[2]), heldout_after: s(r[3]) }
}

/// The dataset a pushed run used: enough to rebuild its samples in another store (images are not sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    pub format: u32,
    pub name: String,
    pub content_hash: String,
    pub columns: ColumnMap,
    pub samples: Vec<StoredSample>,
    pub images: Vec<ImageRecord>,
}

/// The tracking URI to use: `given`, else `MLFLOW_TRACKING_URI`, else the one this home last reached (remembered
/// in its settings by [`push_runs`] and [`pull_runs`]).
pub fn resolve_tracking_uri(store: &Store, given: Option<&str>) -> Result<String> {
    match tracking_uri(given) {
        Ok(uri) => Ok(uri),
        Err(e) => match store.setting(SETTING_TRACKING_URI)? {
            Some(remembered) => tracking_uri(Some(&remembered)),
            None => Err(e),
        },
    }
}

/// Remembers `uri` as the home's tracking server (after a push or pull that reached it).
pub(crate) fn remember_tracking_uri(store: &mut Store, uri: &str) -> Result<()> {
    store.set_setting(SETTING_TRACKING_URI, uri)
}

/// Where run `run` of the store at `db` is recorded: `<host>:<store file>#<run id>`.
pub fn origin_of(db: &std::path::Path, run: i64) -> String {
    format!("{}:{}#{run}", crate::run::store::host_name(), db.display())
}
