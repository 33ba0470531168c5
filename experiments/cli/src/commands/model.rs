//! `cliplab score` and `cliplab bench`: the model alone, no store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use experiments::events::{NullObserver, Phase};
use experiments::model::bench::{self, BenchOptions, BenchReport};
use experiments::model::clip::{ClipConfig, FreezeSpec};
use experiments::model::device;
use experiments::model::engine::{self, ClipBundle, McqSample};

use super::Ctx;

/// `score`: the softmax over `captions` for one image.
pub fn score(model: &Path, image: &Path, captions: &[String], ctx: &Ctx, json: bool) -> Result<()> {
    let device = device::select(ctx.device())?;
    if captions.len() < 2 {
        bail!("give at least two --caption choices");
    }
    let bundle = ClipBundle::load(model, &device, &FreezeSpec::default())?;
    tracing::info!(model = %model.display(), "model loaded");
    let pixels = bundle.load_image(image)?;
    let sample = McqSample::new(Arc::new(pixels), captions.to_vec(), 0)?;
    let scores = bundle.score(&[sample], 1, Phase::ScoreBefore, &mut NullObserver)?;
    let s = scores.first().context("no score")?;
    let dev = device::device_name(&device);
    if json {
        println!("{}", serde_json::json!({ "probs": s.probs, "logits": s.logits, "device": dev }));
        return Ok(());
    }
    println!("device: {dev}");
    for (i, (c, p)) in captions.iter().zip(&s.probs).enumerate() {
        println!("{}  {:>6.2}%  {c}", experiments::vocab::letter(i), p * 100.0);
    }
    Ok(())
}

/// What `bench` measures: a model folder's weights, or a size preset with random ones.
pub struct BenchArgs {
    pub model: Option<PathBuf>,
    pub preset: String,
    pub iters: usize,
    pub batch: usize,
    /// Tokens per caption.
    pub tokens: usize,
}

/// `bench`: scoring throughput and training-step time on this machine.
pub fn bench(args: BenchArgs, ctx: &Ctx, json: bool) -> Result<()> {
    let device = device::select(ctx.device())?;
    let mut opts = match &args.model {
        Some(dir) => {
            // A hub id (pulled when the cache lacks it) or a folder.
            let dir = experiments::model::hub::resolve(dir)?;
            let cfg = ClipConfig::from_file(&dir.join(engine::CONFIG_FILE))?;
            let mut o = BenchOptions::new(cfg);
            o.weights = Some(engine::weights_file(&dir)?);
            o
        }
        None => BenchOptions::new(ClipConfig::preset(&args.preset)?),
    };
    opts.iters = args.iters;
    opts.score_batch = args.batch;
    opts.caption_tokens = args.tokens;
    let name = args.model.as_ref().map(|m| m.display().to_string()).unwrap_or(args.preset);
    if !json {
        eprintln!("benchmarking {name} on {} ({} timed runs each)...", device::device_name(&device), args.iters);
    }
    let r = bench::run(&opts, &device)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_bench(&name, &r);
    }
    Ok(())
}

fn print_bench(name: &str, r: &BenchReport) {
    println!("model               {name} ({:.1}M parameters)", r.parameters as f64 / 1e6);
    println!("device              {} ({}, {} threads)", r.device, r.machine.cpu, r.machine.threads);
    println!("matrix products     {}", r.machine.blas);
    println!("captions            {} tokens", r.caption_tokens);
    println!("score 1 image x 5   {:.3} s", r.score_1x5_s);
    if r.score_pack_s > 0.0 {
        println!("  weights packed    {:.3} s (once, before scoring)", r.score_pack_s);
    }
    println!("score throughput    {:.2} images/s (batches of {}, 5 captions each)", r.score_images_per_s, r.score_batch);
    println!("train step {}x5      {:.3} s", r.train_batch, r.train_step_s);
    println!("  forward           {:.3} s", r.train_forward_s);
    println!("  backward          {:.3} s", r.train_backward_s);
    println!("  Adam updates      {:.3} s (inside the backward pass)", r.train_optimizer_s);
    if let Some(m) = r.peak_rss_mib {
        println!("peak memory         {m:.0} MiB");
    }
    if let Some(m) = r.gpu_memory_mib {
        println!("GPU memory          {m:.0} MiB in use ({})", r.machine.gpu.as_deref().unwrap_or("GPU"));
    }
}
