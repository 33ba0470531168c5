//! What a spec names that is not on this machine yet, fetched before the experiment is recorded: a model named by
//! its Hugging Face hub id is pulled into the hub cache, and a dataset named by a folder URL (`gs://…/`, `s3://…/`,
//! `https://…/`) is imported from it under that URL as its name (so the next run finds it in the store).
//!
//! The faces call [`prepare`] with their progress observer before `runner::create_experiment`; without it a hub id
//! is still pulled on first use (silently, by `model::hub::resolve`), while a dataset URL must have been imported.

use std::path::Path;

use serde::Serialize;

use crate::data::remote::{self, is_url};
use crate::data::{ColumnMap, ImportOptions, OnError};
use crate::events::{CancelToken, Event, Observer};
use crate::model::hub::{self, HubConfig, HubId, PulledModel};
use crate::run::spec::ExperimentSpec;
use crate::run::store::Store;
use crate::{Error, Result};

/// What [`prepare`] fetched (`None`: nothing was needed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Prepared {
    pub model: Option<PulledModel>,
    /// The id of the dataset imported from the spec's URL.
    pub dataset_id: Option<i64>,
}

/// Pulls the spec's hub model if the cache lacks it and imports the spec's dataset URL if the store lacks it (see
/// the module docs). The dataset is validated as any import is before it is stored; Ctrl-C (`cancel`) stops
/// between files with nothing stored.
pub fn prepare(
    store: &mut Store,
    home: &Path,
    spec: &ExperimentSpec,
    obs: &mut dyn Observer,
    cancel: &CancelToken,
) -> Result<Prepared> {
    let mut out = Prepared::default();
    if let Some(id) = HubId::from_model_path(&spec.model) {
        let cfg = HubConfig::from_env();
        if hub::cached(&id, &cfg).is_none() {
            out.model = Some(hub::pull(&id, &cfg, obs, cancel)?);
        }
    }
    if is_url(&spec.dataset) {
        match store.dataset(&spec.dataset) {
            Ok(_) => {}
            Err(Error::NotFound { .. }) => out.dataset_id = Some(import_folder(store, home, &spec.dataset, obs, cancel)?),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Imports the dataset folder at `url` (its one metadata file and its `images/`), named by the URL.
fn import_folder(store: &mut Store, home: &Path, url: &str, obs: &mut dyn Observer, cancel: &CancelToken) -> Result<i64> {
    obs.on_event(&Event::Info { message: format!("importing the dataset at {url}") });
    let source = remote::resolve_folder(url)?;
    let opts = ImportOptions {
        name: url.to_string(),
        metadata: source.metadata.into(),
        images_dir: source.images.map(Into::into),
        columns: ColumnMap::default(),
        on_error: OnError::Reject,
        extract_dir: Some(home.join("images")),
    };
    let mut imported = remote::import_any(&opts, home, obs, cancel.clone())?;
    store.insert_dataset(&imported).inspect_err(|_| imported.discard_extracted())
}
