//! Scoring and fine-tuning CLIP on multiple-choice captions, and the model folder it loads from and exports to.
//!
//! A sample is an image with its own caption choices and the index of the right one. Scoring is the softmax of
//! the image's logits over ITS OWN choices (not over the batch); fine-tuning minimises the cross-entropy of those
//! logits against the right index, batched over many images in one forward pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::clip::{build_model, ClipConfig, ClipModel, FreezeSpec, ParamStore, WeightSource};
use crate::events::{Event, Observer, Phase, PhaseClock};
use crate::model::optim::{AdamConfig, FusedAdam};
use crate::model::preprocess::{ImageProcessor, ImageProcessorConfig};
use crate::model::tokenize::CaptionTokenizer;
use crate::{Error, Result};

/// The four files of a Hugging Face CLIP model folder.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";
/// Provenance written beside an exported checkpoint.
pub const PROVENANCE_FILE: &str = "cliplab.json";
/// A sharded folder's list of which weights file holds each tensor (Hugging Face's format; transformers loads
/// such folders too). Read when the folder has no `model.safetensors`: run checkpoints that store only the
/// tensors a run changed are sharded this way (`run::checkpoint`).
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";

/// A loaded model with everything needed to score and train it.
pub struct ClipBundle {
    pub config: ClipConfig,
    pub model: ClipModel,
    pub params: ParamStore,
    pub tokenizer: CaptionTokenizer,
    pub processor: ImageProcessor,
    pub device: Device,
    /// The folder it was loaded from (None for an in-memory random model).
    pub source: Option<PathBuf>,
    tokenizer_json: Arc<Vec<u8>>,
    /// What scoring and training compute in ([`ClipBundle::set_precision`]); the parameters stay f32.
    precision: Precision,
}

impl std::fmt::Debug for ClipBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipBundle").field("source", &self.source).field("device", &self.device).finish()
    }
}

/// The PyTorch checkpoint older hub repositories hold instead of [`WEIGHTS_FILE`] (read when that is absent).
pub const PYTORCH_WEIGHTS_FILE: &str = "pytorch_model.bin";
/// The BPE files older hub repositories hold instead of [`TOKENIZER_FILE`] (read when that is absent).
pub const VOCAB_FILE: &str = "vocab.json";
pub const MERGES_FILE: &str = "merges.txt";

fn required(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    if p.is_file() {
        return Ok(p);
    }
    let hint = " (a CLIP model folder holds config.json, model.safetensors or pytorch_model.bin, tokenizer.json or \
                vocab.json + merges.txt, and preprocessor_config.json)";
    Err(Error::MissingFile { path: p, hint: hint.to_string() })
}

/// The one weights file of an unsharded model folder: [`WEIGHTS_FILE`], else [`PYTORCH_WEIGHTS_FILE`].
pub fn weights_file(dir: &Path) -> Result<PathBuf> {
    let bin = dir.join(PYTORCH_WEIGHTS_FILE);
    if !dir.join(WEIGHTS_FILE).is_file() && bin.is_file() {
        return Ok(bin);
    }
    required(dir, WEIGHTS_FILE)
}

/// The tokenizer of a model folder as `tokenizer.json` bytes, and the file they name in errors: [`TOKENIZER_FILE`],
/// else one made from [`VOCAB_FILE`] + [`MERGES_FILE`] (see [`crate::model::bpe`]).
fn tokenizer_json(dir: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let (vocab, merges) = (dir.join(VOCAB_FILE), dir.join(MERGES_FILE));
    if !dir.join(TOKENIZER_FILE).is_file() && vocab.is_file() && merges.is_file() {
        let bytes = crate::model::bpe::tokenizer_json_from_vocab_merges(&vocab, &merges)?;
        return Ok((vocab, bytes));
    }
    let path = required(dir, TOKENIZER_FILE)?;
    let bytes = crate::error::read_file(&path)?;
    Ok((path, bytes))
}

/// What a model folder holds besides its weights, read and checked: everything [`ClipBundle::load`] needs before it
/// reads the weights.
struct FolderParts {
    config: ClipConfig,
    tokenizer: CaptionTokenizer,
    tokenizer_json: Vec<u8>,
    processor: ImageProcessor,
    weights: Vec<PathBuf>,
}

/// The weights files of a model folder: `model.safetensors`, else the shards that `model.safetensors.index.json`
/// names (plain file names in the folder, each once), else `pytorch_model.bin` (see [`weights_file`]).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join(WEIGHTS_INDEX_FILE);
    if dir.join(WEIGHTS_FILE).is_file() || !index.is_file() {
        return Ok(vec![weights_file(dir)?]);
    }
    let v: serde_json::Value = serde_json::from_slice(&crate::error::read_file(&index)?)
        .map_err(|e| Error::bad_file(&index, format!("not JSON: {e}")))?;
    let Some(map) = v.get("weight_map").and_then(|m| m.as_object()) else {
        return Err(Error::bad_file(&index, "no `weight_map` object"));
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for (tensor, file) in map {
        let name = file.as_str().filter(|f| !f.is_empty() && Path::new(f).file_name() == Some(std::ffi::OsStr::new(f)));
        let Some(name) = name else {
            return Err(Error::bad_file(&index, format!("`{tensor}`: {file} is not a file name in the folder")));
        };
        let path = dir.join(name);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::bad_file(&index, "its `weight_map` is empty"));
    }
    Ok(files)
}

/// The key of `cliplab.json` that records the SHA-256 of the tokenizer a checkpoint was exported with.
pub const TOKENIZER_HASH_KEY: &str = "tokenizer_sha256";

/// Hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// For a checkpoint CLIP Lab exported: `tokenizer.json` must be the one it was exported with (its hash in
/// `cliplab.json`). Folders without `cliplab.json` or without the hash (other sources, older exports) pass.
fn check_tokenizer_hash(dir: &Path, tokenizer_json: &[u8]) -> Result<()> {
    let prov_path = dir.join(PROVENANCE_FILE);
    if !prov_path.is_file() {
        return Ok(());
    }
    let prov: serde_json::Value = serde_json::from_slice(&crate::error::read_file(&prov_path)?)
        .map_err(|e| Error::bad_file(&prov_path, format!("not JSON: {e}")))?;
    let Some(want) = prov.get(TOKENIZER_HASH_KEY) else {
        return Ok(());
    };
    let got = sha256_hex(tokenizer_json);
    if want.as_str() != Some(got.as_str()) {
        return Err(Error::bad_file(
            dir.join(TOKENIZER_FILE),
            format!(
                "not the tokenizer this checkpoint was exported with ({PROVENANCE_FILE} records SHA-256 {}, this \
                 file has {got})",
                want.as_str().unwrap_or("?")
            ),
        ));
    }
    Ok(())
}

impl FolderParts {
    fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::MissingFile { path: dir.to_path_buf(), hint: " (model folder)".into() });
        }
        let config = ClipConfig::from_file(&required(dir, CONFIG_FILE)?)?;
        let (tok_path, tokenizer_json) = tokenizer_json(dir)?;
        let tokenizer = CaptionTokenizer::from_bytes(&tok_path, &tokenizer_json, &config.text_config)?;
        check_tokenizer_hash(dir, &tokenizer_json)?;
        let processor = ImageProcessor::new(ImageProcessorConfig::from_file(&required(dir, PREPROCESSOR_FILE)?)?);
        let (h, w) = processor.config().output_size();
        let side = config.vision_config.image_size;
        if h != side || w != side {
            return Err(Error::bad_file(
                dir.join(PREPROCESSOR_FILE),
                format!("produces {h}x{w} images but the model expects {side}x{side} (vision_config.image_size)"),
            ));
        }
        let weights = weight_files(dir)?;
        match weights.as_slice() {
            [one] => crate::model::clip::params::check_weights(one, &config)?,
            shards => crate::model::clip::params::check_safetensors_files(shards, &config)?,
        }
        Ok(Self { config, tokenizer, tokenizer_json, processor, weights })
    }
}

/// Checks a model folder as [`ClipBundle::load`] would, without reading the weights: the config, tokenizer and
/// preprocessor files, and the weights file's header (complete, every tensor there with the config's shape).
/// Returns the model's config.
/// A Hugging Face hub id (`openai/clip-vit-base-patch32`) is taken as the cached snapshot of that model, pulled first
/// when it is not in the cache (see [`crate::model::hub::resolve`]).
pub fn check_model_folder(dir: &Path) -> Result<ClipConfig> {
    Ok(FolderParts::read(&crate::model::hub::resolve(dir)?)?.config)
}

impl ClipBundle {
    /// Loads a Hugging Face `CLIPModel` folder (`openai/clip-vit-base-patch32` layout, or sharded: see
    /// [`weight_files`]), checked as [`check_model_folder`] checks it before any weight is read. A hub id is
    /// resolved as there.
    pub fn load(dir: &Path, device: &Device, freeze: &FreezeSpec) -> Result<Self> {
        let dir = &crate::model::hub::resolve(dir)?;
        let FolderParts { config, tokenizer, tokenizer_json, processor, weights } = FolderParts::read(dir)?;
        let source = match <[PathBuf; 1]>::try_from(weights) {
            Ok([one]) => WeightSource::File(one),
            Err(shards) => WeightSource::Files(shards),
        };
        let (model, params) = build_model(&config, source, freeze, device)?;
        Ok(Self {
            config,
            model,
            params,
            tokenizer,
            processor,
            device: device.clone(),
            source: Some(dir.to_path_buf()),
            tokenizer_json: Arc::new(tokenizer_json),
            precision: Precision::F32,
        })
    }

    /// A model with random weights (benchmarks, tests) and the given tokenizer JSON.
    pub fn random(
        config: &ClipConfig,
        tokenizer_json: Vec<u8>,
        processor: ImageProcessorConfig,
        seed: u64,
        freeze: &FreezeSpec,
        device: &Device,
    ) -> Result<Self> {
        let tok = tokenizers::Tokenizer::from_bytes(&tokenizer_json)
            .map_err(|e| Error::Tokenizer(format!("cannot load tokenizer: {e}")))?;
        let tokenizer = CaptionTokenizer::new(tok, &config.text_config)?;
        let (model, params) = build_model(config, WeightSource::Random { seed }, freeze, device)?;
        Ok(Self {
            config: config.clone(),
            model,
            params,
            tokenizer,
            processor: ImageProcessor::new(processor),
            device: device.clone(),
            source: None,
            tokenizer_json: Arc::new(tokenizer_json),
            precision: Precision::F32,
        })
    }

    /// Writes a model folder that CLIP Lab and `transformers.CLIPModel.from_pretrained` both load:
    /// `model.safetensors` (every tensor, Hugging Face names), `config.json`, `tokenizer.json`,
    /// `preprocessor_config.json`, and `cliplab.json` with `provenance` plus the tokenizer's SHA-256 (checked on
    /// load). Files are written to a temporary folder beside `out`, flushed and moved into place (see
    /// [`crate::fsio`]), so a failure leaves no half-written checkpoint; `out` must not exist or be empty.
    pub fn export(&self, out: &Path, provenance: &serde_json::Value) -> Result<()> {
        if out.exists() && !crate::fsio::is_empty_dir(out) {
            return Err(Error::Invalid(format!("{}: already exists and is not empty", out.display())));
        }
        let tmp = crate::fsio::temp_dir_for(out)?;
        self.params.save_safetensors(&tmp.path().join(WEIGHTS_FILE))?;
        let write_json = |file: &str, v: &serde_json::Value| -> Result<()> {
            crate::fsio::write_file(&tmp.path().join(file), serde_json::to_string_pretty(v)?.as_bytes())
        };
        write_json(CONFIG_FILE, &self.config.to_hf_json())?;
        write_json(PREPROCESSOR_FILE, &self.processor.config().to_json())?;
        crate::fsio::write_file(&tmp.path().join(TOKENIZER_FILE), self.tokenizer_json.as_slice())?;
        let mut provenance = provenance.clone();
        if let Some(o) = provenance.as_object_mut() {
            o.insert(TOKENIZER_HASH_KEY.into(), sha256_hex(&self.tokenizer_json).into());
        }
        write_json(PROVENANCE_FILE, &provenance)?;
        crate::fsio::publish_dir(tmp, out)?;
        Ok(())
    }

    /// Writes a fresh random model folder (tiny test models, the demo).
    pub fn write_random(
        out: &Path,
        config: &ClipConfig,
        tokenizer_json: Vec<u8>,
        processor: ImageProcessorConfig,
        seed: u64,
    ) -> Result<()> {
        let b = Self::random(config, tokenizer_json, processor, seed, &FreezeSpec::default(), &Device::Cpu)?;
        b.export(out, &serde_json::json!({ "source": "random", "seed": seed }))
    }

    /// Makes scoring and training compute in `precision`: bf16 or f16 compute (the towers' weights cast at each
    /// forward pass) with the f32 parameters as master weights and the optimizer's state in f32; F32 (the
    /// default) computes in the parameters' own dtype. Works on any device (the CPU too, slowly: the fused CPU ops
    /// are f32 only); runs refuse half precision on the CPU ([`Precision::check_device`]).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The bytes of the tokenizer's `tokenizer.json` (written as they are into checkpoints).
    pub fn tokenizer_json(&self) -> &[u8] {
        &self.tokenizer_json
    }

    /// Preprocesses one image file.
    pub fn load_image(&self, path: &Path) -> Result<Vec<f32>> {
        self.processor.load(path)
    }

    /// Logits `[b, k]` of each sample's image against its own choices (padding choices get -1e9), tracked for
    /// backprop (training). Scoring uses [`ClipBundle::score_logits`], which records no graph.
    pub fn logits(&self, batch: &[&McqSample]) -> Result<Tensor> {
        self.logits_of(&self.compute_model(&self.model)?, batch)
    }

    /// The same logits as [`ClipBundle::logits`] with no autograd graph behind them: computed by the model's
    /// detached view ([`ClipModel::detached`]: the same weights, not copied), so every activation is freed as soon
    /// as the next layer has used it instead of being held until the logits are dropped.
    pub fn score_logits(&self, batch: &[&McqSample]) -> Result<Tensor> {
        self.logits_of(&self.scoring_model()?, batch)
    }

    /// The model that scoring computes with: detached from autograd, in the bundle's precision. Made once per
    /// scoring call (it shares the parameters' storage, so it would see any update, but none happens while
    /// scoring); cheap: no weight is copied in f32.
    fn scoring_model(&self) -> Result<ClipModel> {
        self.compute_model(&self.model.detached()?)
    }

    /// `model` computing in the bundle's precision (itself for f32; weights cast for bf16 and f16).
    fn compute_model(&self, model: &ClipModel) -> Result<ClipModel> {
        Ok(model.cast(self.precision.dtype())?)
    }

    /// Logits of `batch` computed by `model` (the bundle's model or a view of it, in the bundle's precision).
    fn logits_of(&self, model: &ClipModel, batch: &[&McqSample]) -> Result<Tensor> {
        let pixels: Vec<Vec<f32>> = batch.iter().map(|s| s.pixels.as_ref().clone()).collect();
        let pix = self.processor.batch_tensor(&pixels, &self.device)?;
        let k = batch.iter().map(|s| s.choices.len()).max().unwrap_or(0);
        let mut captions: Vec<&str> = Vec::new();
        let mut index = Vec::with_capacity(batch.len() * k);
        let mut mask = Vec::with_capacity(batch.len() * k);
        for s in batch {
            let first = captions.len() as u32;
            captions.extend(s.choices.iter().map(String::as_str));
            for j in 0..k {
                if j < s.choices.len() {
                    index.push(first + j as u32);
                    mask.push(0f32);
                } else {
                    index.push(first);
                    mask.push(-1e9f32);
                }
            }
        }
        let tokens = self.tokenizer.batch(&captions, &self.device)?;
        let index = Tensor::from_vec(index, (batch.len(), k), &self.device)?;
        let ragged = mask.iter().any(|&m| m != 0.0);
        let mask = if ragged { Some(Tensor::from_vec(mask, (batch.len(), k), &self.device)?) } else { None };
        let pix = pix.to_dtype(self.precision.dtype())?;
        Ok(model.choice_logits(&pix, &tokens.ids, &tokens.last, &index, mask.as_ref())?)
    }

    /// Scores every sample (softmax over its own choices), `batch_size` images per forward pass.
    pub fn score(
        &self,
        samples: &[McqSample],
        batch_size: usize,
        phase: Phase,
        obs: &mut dyn Observer,
    ) -> Result<Vec<SampleScore>> {
        let batch_size = batch_size.max(1);
        let mut clock = PhaseClock::start(phase, samples.len().div_ceil(batch_size), obs);
        let mut out = Vec::with_capacity(samples.len());
        // Weights packed once for the whole phase (`ClipModel::packed`): no batch repacks them. Not in `mean_loss`,
        // which runs between epochs while the optimizer's moments are alive (the copy would raise the peak).
        let model = self.scoring_model()?.packed()?;
        for chunk in samples.chunks(batch_size) {
            if obs.cancelled() {
                return Err(Error::Cancelled);
            }
            let refs: Vec<&McqSample> = chunk.iter().collect();
            let logits = self.logits_of(&model, &refs)?;
            let probs = crate::model::clip::ops::softmax_last_dim(&logits)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            let logits = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for ((s, p), l) in chunk.iter().zip(probs).zip(logits) {
                out.push(SampleScore::new(s, p, l));
            }
            clock.tick(obs);
        }
        Ok(out)
    }

    /// Fine-tunes the model in place on `train`; reports through `obs`; evaluates `heldout` after each epoch if
    /// given. Returns the loss of every step.
    pub fn train(
        &mut self,
        train: &[McqSample],
        heldout: Option<&[McqSample]>,
        cfg: &TrainConfig,
        obs: &mut dyn Observer,
    ) -> Result<TrainReport> {
        cfg.validate()?;
        if train.is_empty() {
            return Err(Error::Invalid("the training split is empty".into()));
        }
        let vars = self.params.vars();
        if vars.is_empty() {
            return Err(Error::Invalid("nothing to train: every parameter is frozen".into()));
        }
        let mut opt = FusedAdam::new(vars, cfg.optimizer)?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let steps_per_epoch = train.len().div_ceil(cfg.batch_size);
        let mut clock = PhaseClock::start(Phase::Train, steps_per_epoch.saturating_mul(cfg.epochs), obs);
        let mut report = TrainReport::default();
        let mut order: Vec<usize> = (0..train.len()).collect();
        for epoch in 1..=cfg.epochs {
            order.shuffle(&mut rng);
            let mut epoch_loss = 0.0;
            for chunk in order.chunks(cfg.batch_size) {
                if obs.cancelled() {
                    return Err(Error::Cancelled);
                }
                let batch: Vec<&McqSample> = chunk.iter().map(|&i| &train[i]).collect();
                let labels: Vec<u32> = batch.iter().map(|s| s.label as u32).collect();
                let labels = Tensor::new(labels.as_slice(), &self.device)?;
                let logits = self.logits(&batch)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
                opt.backward_step(&loss)?;
                let loss = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                if !loss.is_finite() {
                    return Err(Error::Invalid(format!(
                        "the loss became {loss} at epoch {epoch}; lower the learning rate"
                    )));
                }
                report.step_losses.push(loss);
                epoch_loss += loss;
                obs.on_event(&Event::Step { epoch, step: report.step_losses.len(), loss });
                clock.tick(obs);
            }
            let train_loss = epoch_loss / steps_per_epoch as f64;
            let heldout_loss = match heldout {
                Some(h) if !h.is_empty() => Some(self.mean_loss(h, cfg.eval_batch_size)?),
                _ => None,
            };
            report.epoch_losses.push(train_loss);
            report.heldout_losses.push(heldout_loss);
            obs.on_event(&Event::EpochEnded { epoch, train_loss, heldout_loss });
        }
        Ok(report)
    }

    /// Mean cross-entropy over `samples` (no gradients).
    pub fn mean_loss(&self, samples: &[McqSample], batch_size: usize) -> Result<f64> {
        let mut total = 0.0;
        let model = self.scoring_model()?;
        for chunk in samples.chunks(batch_size.max(1)) {
            let refs: Vec<&McqSample> = chunk.iter().collect();
            let logits = self.logits_of(&model, &refs)?;
            let labels: Vec<u32> = chunk.iter().map(|s| s.label as u32).collect();
            let labels = Tensor::new(labels.as_slice(), &self.device)?;
            let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let picked = lsm.gather(&labels.unsqueeze(1)?, 1)?.sum_all()?;
            total -= picked.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
        Ok(total / samples.len().max(1) as f64)
    }
}

/// One multiple-choice sample, image already preprocessed.
#[derive(Debug, Clone)]
pub struct McqSample {
    /// `CHW` pixels from [`ImageProcessor`].
    pub pixels: Arc<Vec<f32>>,
    pub choices: Vec<String>,
    /// Index of the right choice.
    pub label: usize,
}

impl McqSample {
    /// Checks the label is among the choices and there are at least two.
    pub fn new(pixels: Arc<Vec<f32>>, choices: Vec<String>, label: usize) -> Result<Self> {
        if choices.len() < 2 {
            return Err(Error::Invalid(format!("a sample needs at least 2 caption choices, got {}", choices.len())));
        }
        crate::vocab::check_label(label, choices.len(), "")?;
        Ok(Self { pixels, choices, label })
    }
}

/// Scores of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleScore {
    /// Probability of each choice (sums to 1).
    pub probs: Vec<f32>,
    pub logits: Vec<f32>,
    pub label: usize,
    /// Probability of the right choice.
    pub label_prob: f32,
    /// Whether the most probable choice is the right one.
    pub correct: bool,
}

impl SampleScore {
    fn new(s: &McqSample, mut probs: Vec<f32>, mut logits: Vec<f32>) -> Self {
        probs.truncate(s.choices.len());
        logits.truncate(s.choices.len());
        let top = probs
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &p)| if p > best.1 { (i, p) } else { best })
            .0;
        Self { label_prob: probs.get(s.label).copied().unwrap_or(0.0), correct: top == s.label, probs, logits, label: s.label }
    }
}

/// Mean label probability and accuracy over some scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Summary {
    pub n: usize,
    pub mean_label_prob: f64,
    pub accuracy: f64,
}

impl Summary {
    pub fn of(scores: &[SampleScore]) -> Self {
        let n = scores.len();
        if n == 0 {
            return Self { n, mean_label_prob: 0.0, accuracy: 0.0 };
        }
        Self {
            n,
            mean_label_prob: scores.iter().map(|s| s.label_prob as f64).sum::<f64>() / n as f64,
            accuracy: scores.iter().filter(|s| s.correct).count() as f64 / n as f64,
        }
    }
}

/// Fine-tuning hyperparameters, as the engine uses them. Experiments build it from their
/// `run::spec::TrainSpec` (`TrainConfig::from(&spec)`); its `Default` is the one set of
/// default settings, which `TrainSpec::default()` restates in the spec's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: AdamConfig,
    /// Seeds the shuffling (and, for random models, the init).
    pub seed: u64,
    /// Images per forward pass when scoring.
    pub eval_batch_size: usize,
    /// What the model computes in (mixed precision on GPUs); the runner sets it on the bundle for scoring and
    /// training alike.
    #[serde(default)]
    pub precision: Precision,
}

impl Default for TrainConfig {
    /// The tutorial's: 5 epochs, batch size 2, Adam with lr 1e-4, seed 42, 16 images per scoring pass, f32.
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 2,
            optimizer: AdamConfig::adam(1e-4),
            seed: 42,
            eval_batch_size: 16,
            precision: Precision::F32,
        }
    }
}

/// The dtype the model computes in. Whatever it is, the parameters (master weights) and the optimizer's moments
/// stay f32: bf16 and f16 are mixed precision, as PyTorch's autocast, for GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision throughout (the default; the CPU's fused ops).
    #[default]
    F32,
    /// bfloat16 compute (f32's range, 8 bits of mantissa): Ampere and later GPUs.
    Bf16,
    /// float16 compute (5 exponent bits: large activations can overflow).
    F16,
}

impl Precision {
    /// The compute dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }

    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// Half precision is for GPUs: on the CPU the fused ops are f32 only, so bf16/f16 would run candle's slow
    /// composite ops and be both slower and less exact than f32. An error naming the fix on the CPU.
    pub fn check_device(self, device: &Device) -> Result<()> {
        if !self.is_f32() && device.is_cpu() {
            return Err(Error::Invalid(format!(
                "precision {self} is for GPUs: this run is on the CPU, where f32 is faster and exact (set \
                 train.precision = \"f32\" or run on a CUDA device)"
            )));
        }
        Ok(())
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        })
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::Invalid("epochs must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        self.optimizer.validate()
    }
}

/// Losses of a fine-tuning run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub step_losses: Vec<f64>,
    pub epoch_losses: Vec<f64>,
    pub heldout_losses: Vec<Option<f64>>,
}
