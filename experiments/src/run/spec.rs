//! An experiment spec: what data, which model, which hyperparameters. Written by users as TOML, stored as JSON.
//!
//! [`TrainSpec`] is how users write the training settings; the engine runs on [`TrainConfig`], made from it by
//! the one conversion `TrainConfig::from(&TrainSpec)`. The defaults are stated once, in `TrainConfig::default()`
//! (the tutorial's); `TrainSpec::default()` is that config in the spec's words. [`ExperimentSpec::problems`] lists
//! every problem with a spec by field, for the CLI and the app alike.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::clip::FreezeSpec;
use crate::model::device::DeviceChoice;
use crate::model::engine::{Precision, TrainConfig};
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
    /// Seeds the draw (default: the training seed's default).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

/// Fine-tuning hyperparameters as users write them (defaults: [`TrainConfig::default`], the tutorial's).
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
    /// What the model computes in, scoring and training: "f32" (default), or "bf16" / "f16" for mixed precision
    /// on a GPU (f32 master weights and optimizer state). Refused on the CPU.
    #[serde(skip_serializing_if = "Precision::is_f32")]
    #[cfg_attr(feature = "ts", ts(skip))]
    pub precision: Precision,
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self::from(&TrainConfig::default())
    }
}

impl From<&TrainConfig> for TrainSpec {
    /// The spec that converts back to `c` (the spec has no words for Adam's betas and epsilon: they stay the
    /// optimizer's defaults).
    fn from(c: &TrainConfig) -> Self {
        Self {
            epochs: c.epochs,
            batch_size: c.batch_size,
            optimizer: c.optimizer.kind,
            lr: c.optimizer.lr,
            weight_decay: c.optimizer.weight_decay,
            seed: c.seed,
            eval_batch_size: c.eval_batch_size,
            precision: c.precision,
        }
    }
}

impl From<&TrainSpec> for TrainConfig {
    /// The engine's config for the settings `t`.
    fn from(t: &TrainSpec) -> Self {
        let optimizer = match t.optimizer {
            OptimizerKind::Adam => AdamConfig { weight_decay: t.weight_decay, ..AdamConfig::adam(t.lr) },
            OptimizerKind::AdamW => AdamConfig::adamw(t.lr, t.weight_decay),
        };
        Self {
            epochs: t.epochs,
            batch_size: t.batch_size,
            optimizer,
            seed: t.seed,
            eval_batch_size: t.eval_batch_size.max(1),
            precision: t.precision,
        }
    }
}

fn default_seed() -> u64 {
    TrainConfig::default().seed
}

/// One problem with a spec: the field at fault (a path such as `train.lr`; empty: the spec as a whole) and what
/// is wrong, in words for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

impl FieldProblem {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
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
    /// Keep the checkpoints of only the best K runs of this experiment, or of its sweep, by the held-out
    /// accuracy after fine-tuning (the train accuracy without a held-out split); the others' checkpoints are
    /// deleted when a run completes, their records kept. None: keep every checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(skip))]
    pub keep_best: Option<usize>,
    /// Free text.
    #[serde(default)]
    pub notes: String,
}

/// `save_checkpoint`'s default.
fn yes() -> bool {
    true
}

impl ExperimentSpec {
    /// Parses TOML; a relative `model` path is taken relative to `base` (the spec file's folder).
    ///
    /// Beyond the field docs (kept as they are: the app's generated bindings carry them): `model` may be a hub id
    /// written `hf://owner/name[@revision]` (pulled into the hub cache on first use, see `model::hub`), and
    /// `dataset` a dataset folder URL (`gs://…/`, `s3://…/`, `https://…/`) naming the dataset imported from it
    /// (`run::inputs::prepare` imports it when the store lacks it).
    pub fn from_toml(text: &str, base: Option<&Path>) -> Result<Self> {
        let mut spec: Self = toml::from_str(text).map_err(|e| Error::Invalid(format!("spec: {e}")))?;
        if let Some(base) = base {
            // `hf://owner/name` is a hub id, never a path (a bare `owner/name` stays a path relative to the spec).
            let hub_id = spec.model.to_str().is_some_and(|m| m.starts_with(crate::model::hub::HF_PREFIX));
            if spec.model.is_relative() && !hub_id {
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

    /// Every problem with the spec's own values, by field (empty: it is valid). Needs neither the store nor
    /// the disk, and allocates nothing by a count the user typed (the app calls it on every keystroke): whether
    /// the dataset exists, the split fits it or the model folder is complete is checked where those are at hand
    /// ([`ExperimentSpec::model_problems`], `runner::draw_splits`, `runner::check_experiment`).
    pub fn problems(&self) -> Vec<FieldProblem> {
        let mut out = Vec::new();
        let mut check = |ok: bool, field: &str, message: &str| {
            if !ok {
                out.push(FieldProblem::new(field, message));
            }
        };
        let t = &self.train;
        check(!self.name.trim().is_empty(), "name", "give the experiment a name");
        check(t.lr.is_finite() && t.lr > 0.0, "train.lr", "the learning rate must be a positive number");
        check(t.weight_decay.is_finite() && t.weight_decay >= 0.0, "train.weight_decay", "weight decay must be zero or more");
        check(t.epochs > 0, "train.epochs", "at least one epoch");
        check(t.batch_size > 0, "train.batch_size", "the batch size must be at least 1");
        check(t.eval_batch_size > 0, "train.eval_batch_size", "the scoring batch size must be at least 1");
        check(self.sample.train > 0, "sample.train", "at least one training sample");
        let half_on_cpu = self.device == DeviceChoice::Cpu && !t.precision.is_f32();
        check(!half_on_cpu, "train.precision", "bf16 and f16 are for GPUs: on the CPU use \"f32\" (or device = \"cuda\")");
        check(self.keep_best != Some(0), "keep_best", "keep at least one checkpoint (or leave keep_best out)");
        let f = &self.freeze;
        check(!(f.vision && f.text && f.logit_scale), "freeze", "everything is frozen: nothing would be trained");
        if out.is_empty() {
            // What the engine checks beyond the fields above (today nothing a spec can reach: kept as the net).
            if let Err(e) = self.train_config().validate() {
                out.push(FieldProblem::new("train", e.to_string()));
            }
        }
        out
    }

    /// Problems with the spec's model folder on disk (today: it holds no weights file, whole, sharded or
    /// `pytorch_model.bin`). A hub id has none here: it is pulled on first use.
    pub fn model_problems(&self) -> Vec<FieldProblem> {
        let weights = crate::model::engine::WEIGHTS_FILE;
        let index = crate::model::engine::WEIGHTS_INDEX_FILE;
        if crate::model::engine::weights_file(&self.model).is_ok()
            || self.model.join(index).is_file()
            || crate::model::hub::HubId::from_model_path(&self.model).is_some()
        {
            Vec::new()
        } else {
            vec![FieldProblem::new("model", format!("{}: no {weights} in it", self.model.display()))]
        }
    }

    /// Checks values a user could get wrong: the first of [`ExperimentSpec::problems`], as an error.
    pub fn validate(&self) -> Result<()> {
        match self.problems().first() {
            Some(p) => Err(Error::Invalid(format!("spec: {p}"))),
            None => Ok(()),
        }
    }

    /// The engine's training config (`TrainConfig::from(&self.train)`).
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig::from(&self.train)
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

    fn tutorial() -> ExperimentSpec {
        let text = "name = \"t\"\ndataset = \"d\"\nmodel = \"/m\"\n[sample]\ntrain = 10\n";
        ExperimentSpec::from_toml(text, None).expect("parse")
    }

    #[test]
    fn the_spec_defaults_are_the_engine_defaults_and_convert_both_ways() {
        let s = tutorial();
        assert_eq!(s.train_config(), TrainConfig::default());
        assert_eq!(TrainSpec::from(&TrainConfig::default()), TrainSpec::default());
        assert_eq!(s.sample.seed, TrainConfig::default().seed);
        let t = TrainSpec { optimizer: OptimizerKind::AdamW, lr: 3e-4, weight_decay: 0.1, ..TrainSpec::default() };
        assert_eq!(TrainConfig::from(&t).optimizer, AdamConfig::adamw(3e-4, 0.1));
        assert_eq!(TrainSpec::from(&TrainConfig::from(&t)), t);
    }

    #[test]
    fn problems_name_every_bad_field_and_validate_reports_the_first() {
        assert!(tutorial().problems().is_empty());
        let mut s = tutorial();
        s.name = " ".into();
        s.train.lr = f64::NAN;
        s.train.weight_decay = -1.0;
        s.train.epochs = 0;
        s.train.batch_size = 0;
        s.train.eval_batch_size = 0;
        s.sample.train = 0;
        s.freeze = FreezeSpec { vision: true, text: true, logit_scale: true, ..FreezeSpec::default() };
        let fields: Vec<String> = s.problems().into_iter().map(|p| p.field).collect();
        let want = [
            "name",
            "train.lr",
            "train.weight_decay",
            "train.epochs",
            "train.batch_size",
            "train.eval_batch_size",
            "sample.train",
            "freeze",
        ];
        assert_eq!(fields, want);
        let e = s.validate().expect_err("invalid").to_string();
        assert_eq!(e, "spec: `name`: give the experiment a name");
        let mut s = tutorial();
        s.train.epochs = 0;
        assert!(s.validate().expect_err("no epochs").to_string().contains("train.epochs"));
        assert_eq!(s.model_problems()[0].field, "model", "no weights in /m");
    }

    #[test]
    fn precision_parses_defaults_to_f32_and_half_is_refused_on_the_cpu() {
        let s = tutorial();
        assert_eq!(s.train.precision, Precision::F32);
        // f32 is not written out: specs stored before the option existed read and write the same.
        assert!(!s.to_toml().expect("toml").contains("precision"));
        let base = "name = \"t\"\ndataset = \"d\"\nmodel = \"/m\"\n[sample]\ntrain = 10\n[train]\n";
        for (word, want) in [("bf16", Precision::Bf16), ("f16", Precision::F16), ("f32", Precision::F32)] {
            let s = ExperimentSpec::from_toml(&format!("{base}precision = \"{word}\"\n"), None).expect(word);
            assert_eq!((s.train.precision, s.train_config().precision), (want, want));
            let back = ExperimentSpec::from_toml(&s.to_toml().expect("toml"), None).expect("reparse");
            assert_eq!(back, s);
        }
        let e = ExperimentSpec::from_toml(&format!("{base}precision = \"fp8\"\n"), None).expect_err("fp8");
        assert!(e.to_string().contains("fp8"), "{e}");
        let half_on = |device: &str| {
            let text = format!("device = \"{device}\"\n{base}precision = \"bf16\"\n");
            ExperimentSpec::from_toml(&text, None)
        };
        let e = half_on("cpu").expect_err("bf16 on the cpu").to_string();
        assert!(e.contains("train.precision") && e.contains("GPU"), "{e}");
        // Auto or CUDA: checked where the device is known (the runner, `Precision::check_device`).
        assert!(half_on("cuda").is_ok() && half_on("auto").is_ok());
        let e = Precision::Bf16.check_device(&candle_core::Device::Cpu).expect_err("cpu").to_string();
        assert!(e.contains("bf16") && e.contains("f32"), "{e}");
        assert!(Precision::F32.check_device(&candle_core::Device::Cpu).is_ok());
    }

    #[test]
    fn the_shipped_tutorial_spec_is_the_tutorials_run() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/newyorker-tutorial.toml");
        let s = ExperimentSpec::from_file(&p).expect("parse");
        assert_eq!((s.sample.train, s.sample.heldout), (10, 10));
        let t = s.train_config();
        assert_eq!((t.epochs, t.batch_size), (5, 2));
        assert_eq!(t.optimizer, AdamConfig::adam(1e-4));
        // The tutorial's model and data, fetched by `cliplab run` when missing (run::inputs).
        assert_eq!(s.model, PathBuf::from("hf://openai/clip-vit-base-patch32"));
        assert_eq!(s.dataset, "gs://datachain-demo/newyorker_caption_contest/");
    }
}
