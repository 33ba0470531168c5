//! Experiments: the model folders an experiment may name, the form's defaults and checks, and recording one.

use std::path::Path;

use experiments::model::engine::{self, CONFIG_FILE, WEIGHTS_FILE};
use experiments::model::hub::{self, HubConfig};
use experiments::run::runner;
use experiments::run::spec::{ExperimentSpec, FieldProblem, SampleSpec, TrainSpec};
use experiments::run::store::ExperimentInfo;

use super::{lock, App};
use crate::views::*;
use crate::{Error, Result};

impl App {
    pub fn experiments(&self) -> Result<Vec<ExperimentInfo>> {
        Ok(self.store().experiments()?)
    }

    pub(super) fn allow_model(&self, path: &Path, source: &str) {
        let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        self.allow_model_named(path, name, source);
    }

    /// Like [`Self::allow_model`], under a name of the caller's (a hub model's `owner/name`, not its commit).
    pub(super) fn allow_model_named(&self, path: &Path, name: String, source: &str) {
        let mut models = lock(&self.models);
        if !models.iter().any(|m| m.path == path) {
            models.insert(ModelChoice { path: path.to_path_buf(), name, source: source.into() });
        }
    }

    /// Re-reads the model folders the app knows: those of earlier experiments, the demo's, and the CLIP models in
    /// the Hugging Face cache (downloaded by CLIP Lab or by `transformers`).
    pub(super) fn refresh_models(&self) -> Result<()> {
        for m in hub::list_cached(&HubConfig::from_env())? {
            let name = if m.revisions.iter().any(|r| r == "main") || m.revisions.is_empty() {
                m.repo.clone()
            } else {
                format!("{}@{}", m.repo, m.revisions.join(","))
            };
            self.allow_model_named(&m.folder, name, "hub");
        }
        for e in self.store().experiments()? {
            if e.spec.model.is_dir() {
                self.allow_model(&e.spec.model, "experiment");
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.home.join("demo")) {
            for entry in rd.flatten() {
                let p = entry.path();
                if p.join(CONFIG_FILE).is_file() && p.join(WEIGHTS_FILE).is_file() {
                    self.allow_model(&p, "demo");
                }
            }
        }
        Ok(())
    }

    pub fn models(&self) -> Result<Vec<ModelChoice>> {
        self.refresh_models()?;
        Ok(lock(&self.models).iter().cloned().collect())
    }

    /// Asks for a Hugging Face CLIP folder (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub fn pick_model(&self) -> Result<Option<ModelChoice>> {
        let Some(dir) = self.picker.pick_folder("CLIP model folder (config.json, model.safetensors, tokenizer.json)") else {
            return Ok(None);
        };
        // Any form the loader reads: one safetensors file, shards with their index, or a PyTorch checkpoint; a
        // tokenizer.json or vocab.json + merges.txt.
        engine::check_model_folder(&dir)?;
        self.allow_model(&dir, "picked");
        Ok(lock(&self.models).iter().find(|m| m.path == dir).cloned())
    }

    /// The tutorial's spec, on the first dataset and model the app knows.
    pub fn default_spec(&self) -> Result<ExperimentSpec> {
        let dataset = self.datasets()?.into_iter().last().map(|d| d.name).unwrap_or_default();
        let model = self.models()?.into_iter().next().map(|m| m.path).unwrap_or_default();
        Ok(ExperimentSpec {
            name: String::new(),
            dataset,
            model,
            device: Default::default(),
            sample: SampleSpec { train: 10, heldout: 10, seed: 42 },
            train: TrainSpec::default(),
            freeze: Default::default(),
            save_checkpoint: true,
            keep_best: None,
            notes: String::new(),
        })
    }

    /// Every problem with a spec, per form field (empty: it can run): the core's own checks
    /// ([`ExperimentSpec::problems`]), then what needs the app's state (a known model folder, an imported dataset
    /// that the split fits).
    pub fn check_spec(&self, spec: &ExperimentSpec) -> Result<Vec<FieldProblem>> {
        let mut errs = spec.problems();
        if !lock(&self.models).iter().any(|m| m.path == spec.model) {
            errs.push(FieldProblem {
                field: "model".into(),
                message: "pick the model folder with \"Browse…\" (or one the app already knows)".into(),
            });
        } else {
            errs.extend(spec.model_problems());
        }
        // (The store lock is released before `dataset_samples` takes it again.)
        let dataset = self.store().dataset(&spec.dataset);
        match dataset {
            // Only "no such dataset" is the form's problem; a store that fails is the app's, and says so.
            Err(experiments::Error::NotFound { .. }) => {
                errs.push(FieldProblem { field: "dataset".into(), message: "choose an imported dataset".into() })
            }
            Err(e) => return Err(e.into()),
            Ok(ds) => {
                let samples = self.dataset_samples(ds.id)?;
                if let Err(e) = runner::draw_splits(&samples, spec.sample.train, spec.sample.heldout, spec.sample.seed) {
                    errs.push(FieldProblem { field: "sample.heldout".into(), message: e.to_string() });
                }
            }
        }
        Ok(errs)
    }

    /// Records an experiment after [`App::check_spec`] finds nothing wrong.
    pub fn create_experiment(&self, spec: &ExperimentSpec) -> Result<ExperimentInfo> {
        let errs = self.check_spec(spec)?;
        if let Some(first) = errs.first() {
            let field = if first.field.is_empty() { String::new() } else { format!("{}: ", first.field) };
            return Err(Error::Invalid(format!("{field}{}", first.message)));
        }
        let mut store = self.store();
        let id = runner::create_experiment(&mut store, spec)?;
        Ok(store.experiment(id)?)
    }
}

#[cfg(test)]
mod tests {
    use experiments::run::store::Store;

    #[test]
    fn a_missing_dataset_is_not_found_and_nothing_else_is() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = Store::open(tmp.path()).expect("store");
        let missing = store.dataset("no such dataset").expect_err("nothing imported");
        assert!(matches!(missing, experiments::Error::NotFound { .. }), "{missing}");
        let other = experiments::Error::Invalid("spec: bad".into());
        assert!(!matches!(other, experiments::Error::NotFound { .. }));
    }
}
