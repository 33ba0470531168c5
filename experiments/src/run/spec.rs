//! An experiment spec: what data, which model, which hyperparameters. Written by users as TOML, stored as JSON.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::clip::FreezeSpec;
use crate::model::device::DeviceChoice;
use crate::model::engine::TrainConfig;
use crate::model::optim::{AdamConfig, OptimizerKind};
use crate::{Error, Result};

/// How samples are drawn from the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct SampleSpec {
    /// Samples in the training split.
    pub train: usize,
    /// Samples in the held-out split (no image is on both sides).
    #[serde(default)]
    pub heldout: usize,
    /// Seeds the draw.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// Fine-tuning hyperparameters (defaults: the tutorial's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields, default)]
pub struct TrainSpec {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub weight_decay: f64,
    /// Seeds shuffling.
    pub seed: u64,
    /// Images per forward pass when scoring.
    pub eval_batch_size: usize,
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self { epochs: 5, batch_size: 2, optimizer: OptimizerKind::Adam, lr: 1e-4, weight_decay: 0.0, seed: 42, eval_batch_size: 16 }
    }
}

fn default_seed() -> u64 {
    42
}

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    pub name: String,
    /// A dataset in the store, by name or id.
    pub dataset: String,
    /// A Hugging Face CLIP model folder.
    pub model: PathBuf,
    #[serde(default)]
    pub device: DeviceChoice,
    pub sample: SampleSpec,
    #[serde(default)]
    pub train: TrainSpec,
    #[serde(default)]
    pub freeze: FreezeSpec,
    /// Save the fine-tuned checkpoint in the run's folder (needed for `cliplab export`).
    #[serde(default = "yes")]
    pub save_checkpoint: bool,
    /// Free text.
    #[serde(default)]
    pub notes: String,
}

fn yes() -> bool {
    true
}

impl ExperimentSpec {
    /// Parses TOML; a relative `model` path is taken relative to `base` (the spec file's folder).
    pub fn from_toml(text: &str, base: Option<&Path>) -> Result<Self> {
        let mut spec: Self = toml::from_str(text).map_err(|e| Error::Invalid(format!("spec: {e}")))?;
        if let Some(base) = base {
            if spec.model.is_relative() {
                spec.model = base.join(&spec.model);
            }
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Reads a TOML spec file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = crate::error::read_file(path)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::bad_file(path, "not UTF-8 text"))?;
        Self::from_toml(&text, path.parent()).map_err(|e| match e {
            Error::Invalid(m) => Error::bad_file(path, m),
            other => other,
        })
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::Invalid(format!("spec: {e}")))
    }

    /// Checks values a user could get wrong.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::Invalid("spec: `name` is empty".into()));
        }
        if self.sample.train == 0 {
            return Err(Error::Invalid("spec: `sample.train` must be at least 1".into()));
        }
        self.train_config().validate()
    }

    /// The engine's training config.
    pub fn train_config(&self) -> TrainConfig {
        let t = &self.train;
        let optimizer = match t.optimizer {
            OptimizerKind::Adam => AdamConfig { weight_decay: t.weight_decay, ..AdamConfig::adam(t.lr) },
            OptimizerKind::AdamW => AdamConfig::adamw(t.lr, t.weight_decay),
        };
        TrainConfig { epochs: t.epochs, batch_size: t.batch_size, optimizer, seed: t.seed, eval_batch_size: t.eval_batch_size.max(1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tutorial_spec_and_rejects_typos() {
        let text = r#"
            name = "tutorial"
            dataset = "newyorker"
            model = "models/clip-vit-base-patch32"
            [sample]
            train = 10
            heldout = 10
            [train]
            epochs = 5
            batch_size = 2
            optimizer = "adam"
            lr = 1e-4
        "#;
        let s = ExperimentSpec::from_toml(text, Some(Path::new("/specs"))).expect("parse");
        assert_eq!(s.model, PathBuf::from("/specs/models/clip-vit-base-patch32"));
        assert_eq!(s.train_config().optimizer, AdamConfig::adam(1e-4));
        assert_eq!(s.sample.seed, 42);
        let back = ExperimentSpec::from_toml(&s.to_toml().expect("toml"), None).expect("reparse");
        assert_eq!(back, s);
        let e = ExperimentSpec::from_toml(&text.replace("epochs", "epoch"), None).expect_err("typo");
        assert!(e.to_string().contains("epoch"), "{e}");
        let e = ExperimentSpec::from_toml(&text.replace("lr = 1e-4", "lr = -1.0"), None).expect_err("bad lr");
        assert!(e.to_string().contains("lr") || e.to_string().contains("learning"), "{e}");
    }

    #[test]
    fn the_shipped_tutorial_spec_is_the_tutorials_run() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/newyorker-tutorial.toml");
        let s = ExperimentSpec::from_file(&p).expect("parse");
        assert_eq!((s.sample.train, s.sample.heldout), (10, 10));
        let t = s.train_config();
        assert_eq!((t.epochs, t.batch_size), (5, 2));
        assert_eq!(t.optimizer, AdamConfig::adam(1e-4));
        assert!(s.model.ends_with("models/clip-vit-base-patch32"));
    }
}
