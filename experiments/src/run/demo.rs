//! The embedded demo: a generated caption-contest-style dataset and a tiny CLIP, fine-tuned end to end with no
//! download. Everything is derived from the seed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::clip::{ClipConfig, FreezeSpec};
use crate::data::{self, ColumnMap, ImportOptions, OnError};
use crate::model::device::DeviceChoice;
use crate::model::engine::{ClipBundle, Precision};
use crate::events::{CancelToken, Event, Observer};
use crate::model::optim::OptimizerKind;
use crate::model::preprocess::ImageProcessorConfig;
use crate::run::runner::{self, RunOutcome};
use crate::run::spec::{ExperimentSpec, SampleSpec, TrainSpec};
use crate::run::store::Store;
use crate::data::synth;
use crate::{fsio, Result};

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

/// The most images the demo draws: they are drawn in memory (64×64 RGB, 12 KiB each) before they are written,
/// so this bounds the demo's memory to about 250 MB whatever count is asked for.
pub const MAX_IMAGES: usize = 20_000;

/// Written last into the demo's data folder: the number of images and the SHA-256 of `metadata.jsonl`. A folder
/// without it, or whose metadata does not match it, is not the demo's finished work and is drawn again.
const MANIFEST_FILE: &str = "demo.json";

/// Writes the demo dataset and tiny model under `home/demo` (once per size and seed; later calls reuse them) and
/// returns where they are. Nothing goes into the store: the desktop app imports them like any user data.
///
/// Both are written into a temporary folder, flushed and renamed into place, and checked before they are reused,
/// so a demo killed while it writes leaves nothing that a later demo trusts.
pub fn prepare(home: &Path, opts: &DemoOptions, obs: &mut dyn Observer) -> Result<DemoFiles> {
    if opts.images > MAX_IMAGES {
        return Err(crate::Error::Invalid(format!("demo: {} images, at most {MAX_IMAGES}", opts.images)));
    }
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
    if !data_is_complete(&data_dir, opts.images) {
        obs.on_event(&Event::Info { message: format!("demo: drawing {} caption-contest images", opts.images) });
        remove_leftover(&data_dir)?;
        let tmp = fsio::temp_dir_for(&data_dir)?;
        let generated = synth::caption_contest(opts.images, 5, 1, 64, opts.seed);
        let written = synth::write_dataset(tmp.path(), &generated)?;
        let (sha256, _) = data::sha256_file(&written)?;
        let manifest = serde_json::json!({ "images": opts.images, "metadata_sha256": sha256 });
        fsio::write_file(&tmp.path().join(MANIFEST_FILE), manifest.to_string().as_bytes())?;
        fsio::publish_dir(tmp, &data_dir)?;
    }
    let model = root.join(format!("tiny-clip-w{}-l{}-s{}", opts.width, opts.layers, opts.seed));
    if crate::model::engine::check_model_folder(&model).is_err() {
        remove_leftover(&model)?;
        let tokenizer = serde_json::to_vec(&synth::tiny_tokenizer_json())?;
        ClipBundle::write_random(&model, &opts.model_config(), tokenizer, ImageProcessorConfig::with_size(opts.image_size), opts.seed)?;
    }
    Ok(DemoFiles { dataset_name: format!("demo-{tag}"), metadata, images_dir: data_dir.join(synth::IMAGES_DIR), model })
}

/// Whether `dir` holds a finished demo dataset of `images` images (its manifest matches its metadata).
fn data_is_complete(dir: &Path, images: usize) -> bool {
    let Ok(bytes) = std::fs::read(dir.join(MANIFEST_FILE)) else { return false };
    let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return false };
    let hash = data::sha256_file(&dir.join(synth::METADATA_FILE)).map(|(h, _)| h).ok();
    manifest["images"].as_u64() == Some(images as u64) && manifest["metadata_sha256"].as_str() == hash.as_deref()
}

/// Removes what an interrupted demo left at `path` (the demo's own folder under `home/demo`).
fn remove_leftover(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(crate::Error::io(path, e)),
        _ => Ok(()),
    }
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
            precision: Precision::F32,
        },
        freeze: FreezeSpec::default(),
        save_checkpoint: true,
        keep_best: None,
        notes: "The embedded demo: generated drawings, a tiny random CLIP.".into(),
    };
    let experiment = runner::create_experiment(store, &spec)?;
    runner::run_experiment(store, home, experiment, obs, cancel)
}
