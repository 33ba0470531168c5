//! CPU vs CUDA parity of the engine (`scripts/gpu-check.sh` runs it on a GPU machine; it needs `--features cuda`
//! and a CUDA device, and fails without one).
//!
//! One random model, written to a folder and loaded on both devices, so both hold the same weights. On each:
//! the probabilities and logits over each image's own choices (`ClipBundle::score`'s path), the loss, every
//! trainable tensor's gradient, and the parameters after one Adam step (the fused CPU kernel against the
//! optimizer's tensor path on the GPU); then bf16 and f16 mixed precision on the GPU against its f32 run, a
//! bf16 training step, and the time of a training step in each precision. Prints one line per check,
//! `check|value|limit|ok`, and exits non-zero when any fails.
//!
//!   cargo run -p experiments --features cuda --release --example cuda_parity -- [--preset vit-b-32]

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use experiments::data::synth;
use experiments::events::NullObserver;
use experiments::model::clip::{ClipConfig, FreezeSpec};
use experiments::model::engine::{ClipBundle, McqSample, Precision, TrainConfig};
use experiments::model::optim::{AdamConfig, FusedAdam};
use experiments::model::preprocess::ImageProcessorConfig;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Probabilities, logits, loss, gradients by parameter name (f32, on the CPU) of one forward and backward pass.
struct Pass {
    probs: Vec<f32>,
    logits: Vec<f32>,
    loss: f32,
    grads: Vec<(String, Vec<f32>)>,
}

fn pass(b: &ClipBundle, data: &[McqSample]) -> Res<Pass> {
    let refs: Vec<&McqSample> = data.iter().collect();
    let logits = b.logits(&refs)?;
    let probs = experiments::model::clip::ops::softmax_last_dim(&logits.detach())?;
    let labels: Vec<u32> = data.iter().map(|s| s.label as u32).collect();
    let labels = Tensor::new(labels.as_slice(), &b.device)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
    let grads = loss.backward()?;
    let mut named = Vec::new();
    for (name, var) in b.params.named_vars() {
        let g = grads.get(&var).ok_or_else(|| format!("no gradient for {name}"))?;
        named.push((name, flat(g)?));
    }
    Ok(Pass { probs: flat(&probs)?, logits: flat(&logits)?, loss: loss.to_dtype(DType::F32)?.to_scalar()?, grads: named })
}

fn flat(t: &Tensor) -> Res<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// `max |a - b| / max |a|`: the difference relative to the tensor's scale.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    max_abs_diff(a, b) / scale
}

struct Table {
    failed: usize,
}

impl Table {
    fn row(&mut self, check: &str, value: f64, limit: f64) {
        let ok = value.is_finite() && value <= limit;
        if !ok {
            self.failed += 1;
        }
        println!("{check}|{value:.3e}|{limit:.0e}|{}", if ok { "ok" } else { "FAIL" });
    }

    fn info(&self, check: &str, value: String) {
        println!("{check}|{value}||");
    }
}

/// Seconds per training step (forward, backward, Adam) over `steps` steps after one warm-up.
fn step_time(b: &mut ClipBundle, data: &[McqSample], steps: usize) -> Res<f64> {
    let cfg = TrainConfig { epochs: 1, batch_size: data.len(), optimizer: AdamConfig::adam(1e-5), ..Default::default() };
    b.train(data, None, &cfg, &mut NullObserver)?;
    let clock = Instant::now();
    for _ in 0..steps {
        b.train(data, None, &cfg, &mut NullObserver)?;
    }
    b.device.synchronize()?;
    Ok(clock.elapsed().as_secs_f64() / steps as f64)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.iter().position(|a| a == "--preset").and_then(|i| args.get(i + 1)).cloned();
    let cuda = Device::new_cuda(0).map_err(|e| format!("no CUDA device: {e}"))?;
    let tokenizer = serde_json::to_vec(&synth::tiny_tokenizer_json())?;
    let vocab = synth::vocabulary().len() + 3;
    let (config, side) = match &preset {
        // A real size, with the tiny tokenizer (its ids fit any CLIP vocabulary).
        Some(name) => {
            let c = ClipConfig::preset(name)?;
            let side = c.vision_config.image_size;
            (c, side)
        }
        None => (ClipConfig::tiny(vocab, 64, 2, 64, 16), 64),
    };
    let dir = tempfile::tempdir()?;
    let folder = dir.path().join("model");
    ClipBundle::write_random(&folder, &config, tokenizer, ImageProcessorConfig::with_size(side), 11)?;
    let free = FreezeSpec::default();
    let mut cpu = ClipBundle::load(&folder, &Device::Cpu, &free)?;
    let mut gpu = ClipBundle::load(&folder, &cuda, &free)?;
    let data: Vec<McqSample> = synth::caption_contest(4, 5, 1, side as u32, 3)
        .into_iter()
        .map(|s| {
            let px = cpu.processor.preprocess(&image::DynamicImage::ImageRgb8(s.image))?;
            McqSample::new(Arc::new(px), s.caption_choices, s.label)
        })
        .collect::<experiments::Result<_>>()?;
    let mut t = Table { failed: 0 };
    t.info("model", format!("{} ({} parameters)", preset.as_deref().unwrap_or("tiny"), cpu.params.counts().0));

    let (c, g) = (pass(&cpu, &data)?, pass(&gpu, &data)?);
    t.row("f32 probabilities, max |cpu - cuda|", max_abs_diff(&c.probs, &g.probs) as f64, 1e-4);
    t.row("f32 logits, max |cpu - cuda| / max |cpu|", rel_diff(&c.logits, &g.logits) as f64, 1e-4);
    t.row("f32 loss, |cpu - cuda|", (c.loss - g.loss).abs() as f64, 1e-4);
    let worst = c.grads.iter().zip(&g.grads).map(|((n, a), (_, b))| (rel_diff(a, b), n)).fold((0f32, ""), |m, (d, n)| {
        if d > m.0 { (d, n.as_str()) } else { m }
    });
    t.info("gradients compared", format!("{} tensors, worst {}", c.grads.len(), worst.1));
    t.row("f32 gradients, max over tensors of max |cpu - cuda| / max |cpu|", worst.0 as f64, 1e-3);

    // One Adam step from the same gradients: the fused CPU kernel vs the tensor path on the GPU.
    let step = |b: &ClipBundle| -> Res<Vec<f32>> {
        let vars: Vec<Var> = b.params.named_vars().into_iter().map(|(_, v)| v).collect();
        let mut opt = FusedAdam::new(vars.clone(), AdamConfig::adamw(1e-3, 0.01))?;
        let refs: Vec<&McqSample> = data.iter().collect();
        let labels: Vec<u32> = data.iter().map(|s| s.label as u32).collect();
        let labels = Tensor::new(labels.as_slice(), &b.device)?;
        opt.backward_step(&candle_nn::loss::cross_entropy(&b.logits(&refs)?, &labels)?)?;
        let mut all = Vec::new();
        for v in &vars {
            all.extend(flat(v.as_tensor())?);
        }
        Ok(all)
    };
    let (pc, pg) = (step(&cpu)?, step(&gpu)?);
    t.row("parameters after one AdamW step, max |cpu - cuda|", max_abs_diff(&pc, &pg) as f64, 1e-5);

    // Mixed precision on the GPU against its own f32 run (the model has moved one step on both devices alike).
    let f32_gpu = pass(&gpu, &data)?;
    for precision in [Precision::Bf16, Precision::F16] {
        gpu.set_precision(precision);
        let h = pass(&gpu, &data)?;
        t.row(&format!("{precision} probabilities, max |f32 - {precision}|"), max_abs_diff(&f32_gpu.probs, &h.probs) as f64, 5e-2);
        let dtypes_ok = gpu.params.named_vars().iter().all(|(_, v)| v.dtype() == DType::F32);
        t.row(&format!("{precision}: master weights not f32 (count)"), if dtypes_ok { 0.0 } else { 1.0 }, 0.0);
    }
    let steps = if preset.is_some() { 5 } else { 20 };
    for precision in [Precision::F32, Precision::Bf16] {
        gpu.set_precision(precision);
        t.info(&format!("cuda training step, {precision} (s)"), format!("{:.4}", step_time(&mut gpu, &data, steps)?));
    }
    cpu.set_precision(Precision::F32);
    t.info("cpu training step, f32 (s)", format!("{:.4}", step_time(&mut cpu, &data, 2)?));
    if t.failed > 0 {
        return Err(format!("{} check(s) failed", t.failed).into());
    }
    Ok(())
}
