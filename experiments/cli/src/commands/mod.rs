//! One function per command, each a thin call into the `experiments` core plus its printing; grouped as the
//! command line groups them. [`Ctx`] carries what every command may need (home, device, cancel handle).

pub mod dataset;
pub mod demo;
pub mod disk;
pub mod experiment;
pub mod hub;
pub mod manage;
pub mod mlflow;
pub mod model;
pub mod queue;
pub mod report;
pub mod runs;
pub mod serve;
pub mod sweep;
pub mod view;

use std::path::PathBuf;

use anyhow::Result;
use experiments::events::{CancelToken, ProgressRenderer};
use experiments::model::device::DeviceChoice;
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::Store;

/// What the global flags and the process give every command.
pub struct Ctx {
    /// The CLIP Lab home: the store and the run folders.
    pub home: PathBuf,
    /// `--device` when given: it wins over a spec's device.
    pub device: Option<DeviceChoice>,
    /// Set by the first Ctrl-C: long jobs stop between steps.
    pub cancel: CancelToken,
}

impl Ctx {
    /// Opens (creating if needed) the store in the home.
    pub fn open(&self) -> Result<Store> {
        let store = Store::open(&self.home)?;
        if store.created() {
            eprintln!(
                "cliplab: created a new, empty store at {} (choose another with --home or $CLIPLAB_HOME)",
                store.path().display()
            );
        }
        tracing::info!(path = %store.path().display(), "store opened");
        Ok(store)
    }

    /// The device for commands without a spec: `--device`, else auto.
    pub fn device(&self) -> DeviceChoice {
        self.device.unwrap_or_default()
    }

    /// `spec` with `--device` applied when it was given (the command line wins over the spec's `device`).
    pub fn apply_device(&self, mut spec: ExperimentSpec) -> ExperimentSpec {
        if let Some(d) = self.device {
            spec.device = d;
        }
        spec
    }

    /// The progress display for a long job: silent with `--json` (stdout is the result, stderr stays clean).
    pub fn progress(&self, json: bool) -> ProgressRenderer {
        ProgressRenderer::stderr(json)
    }
}
