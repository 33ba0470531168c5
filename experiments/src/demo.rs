//! The embedded demo: a generated caption-contest-style dataset and a tiny CLIP, fine-tuned end to end with no
//! download. Everything is derived from the seed.

use std::sync::Arc;

use candle_core::Device;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::clip::{ClipConfig, FreezeSpec};
use crate::engine::{ClipBundle, McqSample, Summary, TrainConfig, TrainReport};
use crate::events::{Event, Observer, Phase};
use crate::optim::AdamConfig;
use crate::preprocess::ImageProcessorConfig;
use crate::{synth, Result};

/// Sizes of the demo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Before/after metrics of the demo run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoReport {
    pub device: String,
    pub train_before: Summary,
    pub heldout_before: Summary,
    pub train_after: Summary,
    pub heldout_after: Summary,
    pub losses: TrainReport,
}

/// Generates the data and model, scores, fine-tunes and scores again.
pub fn run_demo(opts: &DemoOptions, device: &Device, obs: &mut dyn Observer) -> Result<DemoReport> {
    let config = opts.model_config();
    let tokenizer = serde_json::to_vec(&synth::tiny_tokenizer_json())?;
    let processor = ImageProcessorConfig::with_size(opts.image_size);
    let mut bundle = ClipBundle::random(&config, tokenizer, processor, opts.seed, &FreezeSpec::default(), device)?;
    obs.on_event(&Event::Info {
        message: format!(
            "demo: {} generated images ({} held out), tiny CLIP ({} parameters) on {}",
            opts.images,
            opts.heldout,
            bundle.params.counts().0,
            crate::device::device_name(device)
        ),
    });
    let generated = synth::caption_contest(opts.images, 5, 1, opts.image_size as u32, opts.seed);
    let mut samples = Vec::with_capacity(generated.len());
    for s in generated {
        let px = bundle.processor.preprocess(&image::DynamicImage::ImageRgb8(s.image))?;
        samples.push(McqSample::new(Arc::new(px), s.caption_choices, s.label)?);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5eed);
    samples.shuffle(&mut rng);
    let heldout = samples.split_off(samples.len().saturating_sub(opts.heldout));
    let train = samples;
    let eval_bs = 64;
    let tb = bundle.score(&train, eval_bs, Phase::ScoreBefore, obs)?;
    let hb = bundle.score(&heldout, eval_bs, Phase::ScoreBefore, obs)?;
    let cfg = TrainConfig {
        epochs: opts.epochs,
        batch_size: opts.batch_size,
        optimizer: AdamConfig::adam(opts.lr),
        seed: opts.seed,
        eval_batch_size: eval_bs,
    };
    let losses = bundle.train(&train, Some(&heldout), &cfg, obs)?;
    let ta = bundle.score(&train, eval_bs, Phase::ScoreAfter, obs)?;
    let ha = bundle.score(&heldout, eval_bs, Phase::ScoreAfter, obs)?;
    Ok(DemoReport {
        device: crate::device::device_name(device),
        train_before: Summary::of(&tb),
        heldout_before: Summary::of(&hb),
        train_after: Summary::of(&ta),
        heldout_after: Summary::of(&ha),
        losses,
    })
}
