//! The embedded demo: a generated caption-contest-style dataset and a tiny CLIP, fine-tuned end to end with no
//! download. Everything is derived from the seed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::clip::{ClipConfig, FreezeSpec};
use crate::data::{self, ColumnMap, ImportOptions, OnError};
use crate::model::device::DeviceChoice;
use crate::model::engine::ClipBundle;
use crate::events::{CancelToken, Event, Observer};
use crate::model::optim::OptimizerKind;
use crate::model::preprocess::ImageProcessorConfig;
use crate::run::runner::{self, RunOutcome};
use crate::run::spec::{ExperimentSpec, SampleSpec, TrainSpec};
use crate::run::store::Store;
use crate::data::synth;
use crate::Result;

/// Sizes of the demo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DemoOptions {
    /// Generated images (one sample each).
    pub images: usize,
    /// How many of them are held out (never trained on).
    pub heldout: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    /// Width of the tiny model's towers.
    pub width: usize,
    /// Encoder layers per tower.
    pub layers: usize,
    /// Image side in pixels.
    pub image_size: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { images: 2000, heldout: 400, epochs: 5, batch_size: 16, lr: 2e-3, seed: 7, width: 32, layers: 2, image_size: 32 }
    }
}

impl DemoOptions {
    /// The tiny model of the demo.
    pub fn model_config(&self) -> ClipConfig {
        ClipConfig::tiny(synth::vocabulary().len() + 3, self.width, self.layers, self.image_size, 8)
    }
}

/// The demo's files on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DemoFiles {
    /// The name the demo dataset gets in the store.
    pub dataset_name: String,
    /// `metadata.jsonl` of the generated dataset.
    pub metadata: PathBuf,
    /// Its image folder.
    pub images_dir: PathBuf,
    /// The tiny random CLIP (a Hugging Face-style model folder).
    pub model: PathBuf,
}

/// Writes the demo dataset and tiny model under `home/demo` (once per size and seed; later calls reuse them) and
/// returns where they are. Nothing goes into the store: the desktop app imports them like any user data.
pub fn prepare(home: &Path, opts: &DemoOptions, obs: &mut dyn Observer) -> Result<DemoFiles> {
    if opts.images < 2 || opts.heldout >= opts.images {
        return Err(crate::Error::Invalid(format!(
            "demo: {} images with {} held out leaves nothing to train on",
            opts.images, opts.heldout
        )));
    }
    let tag = format!("{}img-s{}", opts.images, opts.seed);
    let root = home.join("demo");
    let data_dir = root.join(format!("data-{tag}"));
    let metadata = data_dir.join(synth::METADATA_FILE);
    if !metadata.is_file() {
        obs.on_event(&Event::Info { message: format!("demo: drawing {} caption-contest images", opts.images) });
        let generated = synth::caption_contest(opts.images, 5, 1, 64, opts.seed);
        let written = synth::write_dataset(&data_dir, &generated)?;
        debug_assert_eq!(written, metadata);
    }
    let model = root.join(format!("tiny-clip-w{}-l{}-s{}", opts.width, opts.layers, opts.seed));
    if !model.join(crate::model::engine::WEIGHTS_FILE).is_file() {
        let tokenizer = serde_json::to_vec(&synth::tiny_tokenizer_json())?;
        ClipBundle::write_random(&model, &opts.model_config(), tokenizer, ImageProcessorConfig::with_size(opts.image_size), opts.seed)?;
    }
    Ok(DemoFiles { dataset_name: format!("demo-{tag}"), metadata, images_dir: data_dir.join(synth::IMAGES_DIR), model })
}

/// Generates the demo dataset and tiny model in `home/demo` (once per size and seed), imports the dataset,
/// creates the demo experiment and runs it. Everything lands in the store like any other run.
pub fn run_demo(
    store: &mut Store,
    home: &Path,
    opts: &DemoOptions,
    device: DeviceChoice,
    obs: &mut dyn Observer,
    cancel: CancelToken,
) -> Result<RunOutcome> {
    let files = prepare(home, opts, obs)?;
    let tag = format!("{}img-s{}", opts.images, opts.seed);
    let dataset_name = files.dataset_name.clone();
    if store.dataset(&dataset_name).is_err() {
        let imported = data::import(
            &ImportOptions {
                name: dataset_name.clone(),
                metadata: files.metadata.clone(),
                images_dir: Some(files.images_dir.clone()),
                columns: ColumnMap::default(),
                on_error: OnError::Reject,
                extract_dir: None,
            },
            obs,
            cancel.clone(),
        )?;
        store.insert_dataset(&imported)?;
    }
    let model = files.model;
    let spec = ExperimentSpec {
        name: format!("demo ({tag})"),
        dataset: dataset_name,
        model,
        device,
        sample: SampleSpec { train: opts.images - opts.heldout, heldout: opts.heldout, seed: opts.seed },
        train: TrainSpec {
            epochs: opts.epochs,
            batch_size: opts.batch_size,
            optimizer: OptimizerKind::Adam,
            lr: opts.lr,
            weight_decay: 0.0,
            seed: opts.seed,
            eval_batch_size: 64,
        },
        freeze: FreezeSpec::default(),
        save_checkpoint: true,
        notes: "The embedded demo: generated drawings, a tiny random CLIP.".into(),
    };
    let experiment = runner::create_experiment(store, &spec)?;
    runner::run_experiment(store, home, experiment, obs, cancel)
}
