//! `cliplab bench`: how fast this machine scores and fine-tunes a CLIP of real size.
//!
//! Inputs are random (pixels, and captions of `caption_tokens` tokens) so no download is needed; the weights
//! are random too unless a model folder is given. The reference figures to beat on a 2-core CPU are PyTorch's:
//! `scripts/bench.sh` runs both, alternately, and prints them side by side.

use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::device::{gpu_info, peak_rss_mib, Machine};
use crate::model::clip::{build_model, ClipConfig, ClipModel, FreezeSpec, ParamStore, WeightSource};
use crate::model::optim::{AdamConfig, FusedAdam};
use crate::Result;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub config: ClipConfig,
    /// `None`: random weights.
    pub weights: Option<std::path::PathBuf>,
    /// Images per forward pass for the throughput figure.
    pub score_batch: usize,
    pub choices: usize,
    pub caption_tokens: usize,
    /// Images per training step.
    pub train_batch: usize,
    /// Timed repetitions (after one warm-up).
    pub iters: usize,
}

impl BenchOptions {
    pub fn new(config: ClipConfig) -> Self {
        Self { config, weights: None, score_batch: 8, choices: 5, caption_tokens: 20, train_batch: 2, iters: 3 }
    }
}

/// Measured figures (seconds unless said otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub device: String,
    pub parameters: usize,
    /// Scoring 1 image against its 5 captions.
    pub score_1x5_s: f64,
    /// Packing the linear weights once before scoring ([`ClipModel::packed`]; 0 where packing is not available),
    /// as a scoring phase does before its first batch: not part of the scoring figures.
    #[serde(default)]
    pub score_pack_s: f64,
    /// Images per second scored in batches of `score_batch`, 5 captions each.
    pub score_images_per_s: f64,
    pub score_batch: usize,
    /// One training step of `train_batch` images x 5 captions: forward, backward, optimizer and total. The
    /// optimizer updates each parameter inside the backward pass ([`FusedAdam::backward_step`]): its time is that of
    /// the updates, and the backward's is the rest of the pass.
    pub train_forward_s: f64,
    pub train_backward_s: f64,
    pub train_optimizer_s: f64,
    pub train_step_s: f64,
    pub train_batch: usize,
    pub caption_tokens: usize,
    /// Peak resident memory of the process (MiB), where the OS reports it.
    pub peak_rss_mib: Option<f64>,
    /// GPU memory in use after the measurements (MiB), on a CUDA device.
    #[serde(default)]
    pub gpu_memory_mib: Option<f64>,
    /// Where it ran: CPU model, threads, matrix-product library, version.
    pub machine: Machine,
}

struct Inputs {
    pixels: Tensor,
    ids: Tensor,
    last: Vec<usize>,
    choices: Tensor,
    labels: Tensor,
}

fn inputs(cfg: &ClipConfig, images: usize, choices: usize, tokens: usize, device: &Device, rng: &mut ChaCha8Rng) -> Result<Inputs> {
    let side = cfg.vision_config.image_size;
    let n = images * 3 * side * side;
    let px: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    let pixels = Tensor::from_vec(px, (images, 3, side, side), device)?;
    let tokens = tokens.clamp(2, cfg.text_config.max_position_embeddings);
    let vocab = cfg.text_config.vocab_size as u32;
    let eos = vocab - 1;
    let rows = images * choices;
    let mut ids = Vec::with_capacity(rows * tokens);
    for _ in 0..rows {
        ids.push(vocab.saturating_sub(2));
        ids.extend((0..tokens - 2).map(|_| rng.random_range(1..vocab.saturating_sub(2).max(2))));
        ids.push(eos);
    }
    let ids = Tensor::from_vec(ids, (rows, tokens), device)?;
    let idx: Vec<u32> = (0..rows as u32).collect();
    let choices_t = Tensor::from_vec(idx, (images, choices), device)?;
    let labels: Vec<u32> = (0..images).map(|i| (i % choices) as u32).collect();
    Ok(Inputs { pixels, ids, last: vec![tokens - 1; rows], choices: choices_t, labels: Tensor::new(labels.as_slice(), device)? })
}

fn sync(device: &Device) -> Result<()> {
    device.synchronize()?;
    Ok(())
}

/// Seconds per scoring forward pass of `x` by `model`, the scoring view that `ClipBundle::score` makes once per
/// scoring phase ([`ClipModel::packed`]: no autograd graph, weights packed once).
fn time_score(model: &ClipModel, x: &Inputs, iters: usize, device: &Device) -> Result<f64> {
    let run = || -> Result<()> {
        let l = model.choice_logits(&x.pixels, &x.ids, &x.last, &x.choices, None)?;
        let _ = l.to_device(&Device::Cpu)?;
        Ok(())
    };
    run()?;
    sync(device)?;
    let t = Instant::now();
    for _ in 0..iters {
        run()?;
    }
    sync(device)?;
    Ok(t.elapsed().as_secs_f64() / iters as f64)
}

/// Runs the benchmark on `device`.
pub fn run(opts: &BenchOptions, device: &Device) -> Result<BenchReport> {
    let source = match &opts.weights {
        Some(p) => WeightSource::File(p.clone()),
        None => WeightSource::Random { seed: 0 },
    };
    let (model, params): (ClipModel, ParamStore) = build_model(&opts.config, source, &FreezeSpec::default(), device)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let iters = opts.iters.max(1);
    let one = inputs(&opts.config, 1, opts.choices, opts.caption_tokens, device, &mut rng)?;
    let t = Instant::now();
    let scoring = model.packed()?;
    let score_pack_s = if crate::model::blas::packed_available() && device.is_cpu() { t.elapsed().as_secs_f64() } else { 0.0 };
    let score_1x5_s = time_score(&scoring, &one, iters, device)?;
    let many = inputs(&opts.config, opts.score_batch, opts.choices, opts.caption_tokens, device, &mut rng)?;
    let per_batch = time_score(&scoring, &many, iters, device)?;
    drop((many, scoring));

    let x = inputs(&opts.config, opts.train_batch, opts.choices, opts.caption_tokens, device, &mut rng)?;
    let mut opt = FusedAdam::new(params.vars(), AdamConfig::adam(1e-5))?;
    let (mut fwd, mut bwd, mut step) = (0.0, 0.0, 0.0);
    for i in 0..=iters {
        let t0 = Instant::now();
        let logits = model.choice_logits(&x.pixels, &x.ids, &x.last, &x.choices, None)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &x.labels)?;
        let _ = loss.to_device(&Device::Cpu)?;
        sync(device)?;
        let t1 = Instant::now();
        // As the engine trains: each parameter is updated as soon as the backward pass has its gradient.
        opt.backward_step(&loss)?;
        sync(device)?;
        let t2 = Instant::now();
        if i > 0 {
            let update = opt.last_update_seconds();
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64() - update;
            step += update;
        }
    }
    let n = iters as f64;
    Ok(BenchReport {
        device: crate::model::device::device_name(device),
        machine: Machine::current(device),
        parameters: params.counts().0,
        score_1x5_s,
        score_pack_s,
        score_images_per_s: opts.score_batch as f64 / per_batch,
        score_batch: opts.score_batch,
        train_forward_s: fwd / n,
        train_backward_s: bwd / n,
        train_optimizer_s: step / n,
        train_step_s: (fwd + bwd + step) / n,
        train_batch: opts.train_batch,
        caption_tokens: opts.caption_tokens,
        peak_rss_mib: peak_rss_mib(),
        gpu_memory_mib: gpu_info(device).map(|(_, mib)| mib),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_runs_on_a_tiny_model() -> Result<()> {
        let mut o = BenchOptions::new(ClipConfig::tiny(60, 32, 1, 32, 8));
        o.iters = 1;
        let r = run(&o, &Device::Cpu)?;
        assert!(r.score_images_per_s > 0.0 && r.train_step_s > 0.0);
        assert!((r.train_step_s - (r.train_forward_s + r.train_backward_s + r.train_optimizer_s)).abs() < 1e-9);
        assert!(r.parameters > 0);
        Ok(())
    }
}
