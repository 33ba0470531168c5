//! The values the store hands out and takes in.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::ColumnMap;
use crate::model::engine::Summary;
use crate::events::Phase;
use crate::run::spec::ExperimentSpec;
use crate::vocab::{Split, Stage};
use crate::{Error, Result};

/// Where a run stands. Spelled in lower case in the store, the JSON and for people (`completed`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr, strum::VariantArray)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum RunStatus {
    /// Created, not started yet.
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    /// Its process ended (killed, crashed, machine off) while it was queued or running.
    Interrupted,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: &'static [RunStatus] = <RunStatus as strum::VariantArray>::VARIANTS;

    /// The name stored in the database (and shown to users).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the run is over (no process works on it any more).
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// Parses a status (any case, surrounding white space ignored), naming the accepted ones when it fails.
    pub fn parse(s: &str) -> Result<Self> {
        s.trim().parse().map_err(|_| {
            let known: Vec<&str> = RunStatus::ALL.iter().map(|st| st.as_str()).collect();
            Error::Invalid(format!("unknown run status `{s}` (expected one of: {})", known.join(", ")))
        })
    }
}

/// A dataset as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DatasetInfo {
    pub id: i64,
    pub name: String,
    pub metadata_path: PathBuf,
    pub images_dir: Option<PathBuf>,
    pub columns: ColumnMap,
    pub n_samples: usize,
    pub n_images: usize,
    /// Rows left out at import (invalid rows, with `--skip-bad-rows`).
    pub n_skipped: usize,
    pub content_hash: String,
    pub created_at: String,
}

/// One stored sample (metadata row) with its image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StoredSample {
    pub id: i64,
    /// 1-based row of the metadata file.
    pub row: usize,
    pub filename: String,
    pub image_id: i64,
    pub image_path: PathBuf,
    pub image_sha256: String,
    pub choices: Vec<String>,
    /// 0-based index of the right choice.
    pub label: usize,
    /// Every other metadata column (a JSON object).
    pub extra: serde_json::Value,
}

/// An experiment as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ExperimentInfo {
    pub id: i64,
    pub name: String,
    pub dataset_id: i64,
    pub dataset_name: String,
    pub spec: ExperimentSpec,
    /// The spec as TOML (what `cliplab run --spec` reads).
    pub spec_toml: String,
    pub created_at: String,
    pub n_runs: usize,
}

/// Metric summaries of a run; `None`: not measured (yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RunMetrics {
    pub train_before: Option<Summary>,
    pub train_after: Option<Summary>,
    pub heldout_before: Option<Summary>,
    pub heldout_after: Option<Summary>,
}

/// A run as listed in the runs table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RunInfo {
    pub id: i64,
    pub experiment_id: i64,
    pub experiment_name: String,
    pub dataset_id: i64,
    pub dataset_name: String,
    pub status: RunStatus,
    /// The device it ran on (set when it starts).
    pub device: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    // Key hyperparameters (from the experiment's spec).
    pub lr: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: String,
    pub weight_decay: f64,
    /// Samples asked for in the train / held-out split.
    pub train_samples: usize,
    pub heldout_samples: usize,
    pub metrics: RunMetrics,
    /// The phase it is in (or was in when it ended) and its progress.
    pub phase: Option<Phase>,
    pub phase_done: Option<usize>,
    pub phase_total: Option<usize>,
    pub phase_eta_s: Option<f64>,
    pub error: Option<String>,
    /// Last sign of life of the process running it.
    pub heartbeat_at: String,
    pub owner_pid: u32,
    pub owner_host: String,
}

/// One optimizer step's loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StepLoss {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
}

/// One epoch's losses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct EpochLoss {
    pub epoch: usize,
    pub train_loss: f64,
    pub heldout_loss: Option<f64>,
}

/// One `Info` event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LogLine {
    pub at: String,
    pub message: String,
}

/// Everything recorded about a run except its per-sample scores (see [`super::Store::run_scores`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RunDetail {
    pub info: RunInfo,
    pub spec: ExperimentSpec,
    /// Sample ids of the train split, in draw order.
    pub train_ids: Vec<i64>,
    /// Sample ids of the held-out split, in draw order.
    pub heldout_ids: Vec<i64>,
    pub step_losses: Vec<StepLoss>,
    pub epoch_losses: Vec<EpochLoss>,
    pub log: Vec<LogLine>,
    /// The fine-tuned checkpoint folder, once saved.
    pub checkpoint: Option<PathBuf>,
    /// Speed, memory and machine, once the run measured them (see [`super::RunSystem`]).
    pub system: Option<super::RunSystem>,
}

/// One sample's scores in one phase of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StoredScore {
    pub sample_id: i64,
    pub split: Split,
    pub phase: Stage,
    pub probs: Vec<f32>,
    pub logits: Vec<f32>,
    pub label: usize,
    pub label_prob: f32,
    pub correct: bool,
}
