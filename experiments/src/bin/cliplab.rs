//! `cliplab`: the command-line face of CLIP Lab. Every command is a thin layer over the `experiments` crate.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use experiments::bench::{self, BenchOptions};
use experiments::clip::{ClipConfig, FreezeSpec};
use experiments::demo::{self, DemoOptions};
use experiments::device::{self, DeviceChoice};
use experiments::engine::{ClipBundle, McqSample};
use experiments::events::{Event, Observer, Phase};

#[derive(Parser)]
#[command(name = "cliplab", version, about = "Fine-tune and track CLIP on image + caption multiple-choice data")]
struct Cli {
    /// Compute device: auto (CUDA, then Metal, then CPU), cpu, cuda or metal.
    #[arg(long, global = true, default_value = "auto")]
    device: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score captions for one image: the softmax over the given captions.
    Score {
        /// A Hugging Face CLIP model folder (config.json, model.safetensors, tokenizer.json, preprocessor_config.json).
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        image: PathBuf,
        /// A caption choice (repeat for each choice).
        #[arg(long = "caption", required = true)]
        captions: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Measure scoring throughput and training-step time on this machine.
    Bench {
        /// Load this model folder's weights instead of random ones.
        #[arg(long, conflicts_with = "preset")]
        model: Option<PathBuf>,
        /// A size preset with random weights: vit-b-32, vit-b-16, vit-l-14.
        #[arg(long, default_value = "vit-b-32")]
        preset: String,
        /// Timed repetitions of each measurement.
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// Images per forward pass for the throughput figure.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Run the embedded demo: generated data, a tiny CLIP, fine-tuning, before/after metrics. No download.
    Demo {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        epochs: Option<usize>,
        #[arg(long)]
        images: Option<usize>,
        #[arg(long)]
        seed: Option<u64>,
    },
}

/// Prints events: a progress bar on a terminal, plain lines otherwise.
struct Printer {
    tty: bool,
    quiet: bool,
}

impl Observer for Printer {
    fn on_event(&mut self, event: &Event) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr();
        match event {
            Event::Info { message } => {
                let _ = writeln!(err, "{message}");
            }
            Event::PhaseStarted { phase, total } if !self.tty => {
                let _ = writeln!(err, "{} ({total} batches)", phase.label());
            }
            Event::Progress { phase, done, total, eta_s, .. } if self.tty => {
                let width = 30;
                let filled = if *total == 0 { width } else { done * width / total };
                let _ = write!(
                    err,
                    "\r{:<18} [{}{}] {done}/{total}  eta {:>5.0}s ",
                    phase.label(),
                    "#".repeat(filled),
                    ".".repeat(width - filled),
                    eta_s
                );
                if done == total {
                    let _ = writeln!(err);
                }
            }
            Event::EpochEnded { epoch, train_loss, heldout_loss } => {
                let held = heldout_loss.map(|l| format!(", held-out loss {l:.4}")).unwrap_or_default();
                let _ = writeln!(err, "{}epoch {epoch}: train loss {train_loss:.4}{held}", if self.tty { "\r" } else { "" });
            }
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line: the chain of causes.
            let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let choice: DeviceChoice = cli.device.parse()?;
    let device = device::select(choice)?;
    let tty = std::io::stderr().is_terminal();
    match cli.command {
        Command::Score { model, image, captions, json } => {
            if captions.len() < 2 {
                bail!("give at least two --caption choices");
            }
            let bundle = ClipBundle::load(&model, &device, &FreezeSpec::default())?;
            let pixels = bundle.load_image(&image)?;
            let sample = McqSample::new(Arc::new(pixels), captions.clone(), 0)?;
            let mut quiet = Printer { tty, quiet: true };
            let scores = bundle.score(&[sample], 1, Phase::ScoreBefore, &mut quiet)?;
            let s = scores.first().context("no score")?;
            let dev = device::device_name(&device);
            if json {
                println!("{}", serde_json::json!({ "probs": s.probs, "logits": s.logits, "device": dev }));
            } else {
                println!("device: {dev}");
                for (i, (c, p)) in captions.iter().zip(&s.probs).enumerate() {
                    println!("{}  {:>6.2}%  {c}", experiments::synth::label_letter(i), p * 100.0);
                }
            }
        }
        Command::Bench { model, preset, iters, batch, json } => {
            let mut opts = match &model {
                Some(dir) => {
                    let cfg = ClipConfig::from_file(&dir.join(experiments::engine::CONFIG_FILE))?;
                    let mut o = BenchOptions::new(cfg);
                    o.weights = Some(dir.join(experiments::engine::WEIGHTS_FILE));
                    o
                }
                None => BenchOptions::new(ClipConfig::preset(&preset)?),
            };
            opts.iters = iters;
            opts.score_batch = batch;
            let name = model.as_ref().map(|m| m.display().to_string()).unwrap_or(preset);
            if !json {
                eprintln!("benchmarking {name} on {} ({iters} timed runs each)...", device::device_name(&device));
            }
            let r = bench::run(&opts, &device)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("model               {name} ({:.1}M parameters)", r.parameters as f64 / 1e6);
                println!("device              {}", r.device);
                println!("score 1 image x 5   {:.3} s   (PyTorch CPU reference: ~0.23 s)", r.score_1x5_s);
                println!("score throughput    {:.2} images/s (batches of {}, 5 captions each)", r.score_images_per_s, r.score_batch);
                println!(
                    "train step {}x5      {:.3} s   (PyTorch CPU reference: ~1.8 s)",
                    r.train_batch, r.train_step_s
                );
                println!("  forward           {:.3} s", r.train_forward_s);
                println!("  backward          {:.3} s", r.train_backward_s);
                println!("  optimizer (Adam)  {:.3} s", r.train_optimizer_s);
                if let Some(m) = r.peak_rss_mib {
                    println!("peak memory         {m:.0} MiB");
                }
            }
        }
        Command::Demo { json, epochs, images, seed } => {
            let mut opts = DemoOptions::default();
            if let Some(e) = epochs {
                opts.epochs = e;
            }
            if let Some(n) = images {
                opts.images = n;
                opts.heldout = n / 5;
            }
            if let Some(s) = seed {
                opts.seed = s;
            }
            let mut printer = Printer { tty, quiet: json };
            let start = std::time::Instant::now();
            let r = demo::run_demo(&opts, &device, &mut printer)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!();
                println!("                  mean p(label)        accuracy");
                println!("                  before   after      before   after");
                for (name, b, a) in [("train", &r.train_before, &r.train_after), ("held-out", &r.heldout_before, &r.heldout_after)] {
                    println!(
                        "{name:<10} {:>5}  {:>6.3}  {:>6.3}     {:>5.1}%  {:>5.1}%",
                        b.n,
                        b.mean_label_prob,
                        a.mean_label_prob,
                        b.accuracy * 100.0,
                        a.accuracy * 100.0
                    );
                }
                println!("(chance: 20%; {:.0} s on {})", start.elapsed().as_secs_f64(), r.device);
            }
        }
    }
    Ok(())
}
