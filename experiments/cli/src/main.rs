//! `cliplab`: the command-line face of CLIP Lab. Every command is a thin layer over the `experiments` crate.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use experiments::model::bench::{self, BenchOptions};
use experiments::model::clip::{ClipConfig, FreezeSpec};
use experiments::data::{self, ColumnMap, ImportOptions, OnError};
use experiments::run::demo::{self, DemoOptions};
use experiments::model::device::{self, DeviceChoice};
use experiments::model::engine::{ClipBundle, McqSample, Summary};
use experiments::events::{Event, Observer, Phase};
use experiments::run::runner::{self, RunOutcome};
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::Store;

#[derive(Parser)]
#[command(name = "cliplab", version, about = "Fine-tune and track CLIP on image + caption multiple-choice data")]
struct Cli {
    /// Compute device: auto (CUDA, then Metal, then CPU), cpu, cuda or metal.
    #[arg(long, global = true, default_value = "auto")]
    device: String,
    /// The CLIP Lab home (the store and run folders). Default: $CLIPLAB_HOME, else the platform data dir.
    #[arg(long, global = true)]
    home: Option<PathBuf>,
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
    /// Datasets: import, list, show.
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Experiments: create from a spec.
    #[command(subcommand)]
    Experiment(ExperimentCmd),
    /// Create an experiment from a spec and run it.
    Run {
        #[arg(long)]
        spec: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Runs: list, show.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Copy a run's fine-tuned checkpoint folder to OUT (loads in CLIP Lab and in transformers).
    Export {
        run: i64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare runs: charts (SVG + PNG), a per-sample CSV, and the summary, hyperparameter diff and flips.
    Compare {
        #[arg(required = true, num_args = 2..)]
        runs: Vec<i64>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// One run's charts (SVG + PNG), per-sample CSV and summary.
    Plot {
        run: i64,
        #[arg(long)]
        out: PathBuf,
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

#[derive(Subcommand)]
enum DatasetCmd {
    /// Import a folder of images plus a metadata file (parquet, CSV or JSONL) joined on the file name.
    Import {
        #[arg(long)]
        name: String,
        #[arg(long)]
        metadata: PathBuf,
        /// The image folder (searched recursively). Omit for parquet files that embed their images.
        #[arg(long)]
        images: Option<PathBuf>,
        /// Leave out bad rows (and report them) instead of rejecting the whole import.
        #[arg(long)]
        skip_bad_rows: bool,
        #[arg(long, default_value = "filename")]
        filename_column: String,
        #[arg(long, default_value = "caption_choices")]
        choices_column: String,
        #[arg(long, default_value = "label")]
        label_column: String,
        #[arg(long, default_value = "image")]
        image_column: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        /// Name or id.
        dataset: String,
        /// How many samples to print.
        #[arg(long, default_value_t = 5)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ExperimentCmd {
    /// Record an experiment from a TOML spec (checks the dataset and model exist).
    Create {
        #[arg(long)]
        spec: PathBuf,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RunsCmd {
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
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
    let tty = std::io::stderr().is_terminal();
    let home = cli.home.clone().unwrap_or_else(Store::default_home);
    let open = || -> Result<Store> { Ok(Store::open(&home)?) };
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let c = cancel.clone();
        // First Ctrl-C: stop between steps and keep what was recorded; a second one exits at once.
        let _ = ctrlc::set_handler(move || {
            if c.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ncancelling after the current step (Ctrl-C again to quit now)...");
        });
    }
    match cli.command {
        Command::Dataset(cmd) => dataset_cmd(cmd, &mut open()?, &home, tty)?,
        Command::Experiment(ExperimentCmd::Create { spec, json }) => {
            let mut store = open()?;
            let spec = ExperimentSpec::from_file(&spec)?;
            let id = runner::create_experiment(&mut store, &spec)?;
            if json {
                println!("{}", serde_json::json!({ "experiment_id": id }));
            } else {
                println!("experiment {id} created: {}", spec.name);
            }
        }
        Command::Experiment(ExperimentCmd::List { json }) => {
            let exps = open()?.experiments()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&exps)?);
            } else {
                println!("{:>4}  {:<32} {:<20} created", "id", "name", "dataset");
                for e in exps {
                    println!("{:>4}  {:<32} {:<20} {}", e.id, e.name, e.spec.dataset, e.created_at);
                }
            }
        }
        Command::Run { spec, json } => {
            let mut store = open()?;
            let spec = ExperimentSpec::from_file(&spec)?;
            let id = runner::create_experiment(&mut store, &spec)?;
            let mut printer = Printer { tty, quiet: json };
            let out = runner::run_experiment(&mut store, &home, id, &mut printer, cancel)?;
            print_outcome(&out, json)?;
        }
        Command::Runs(RunsCmd::List { json }) => {
            let runs = open()?.runs()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                println!(
                    "{:>4}  {:<11} {:<24} {:<16} {:>8} {:>6} {:>5}  {:>15}  {:>15}",
                    "run", "status", "experiment", "dataset", "lr", "epochs", "batch", "held-out acc", "train acc"
                );
                for r in runs {
                    let acc = |b: Option<Summary>, a: Option<Summary>| match (b, a) {
                        (Some(b), Some(a)) => format!("{:.0}% -> {:.0}%", b.accuracy * 100.0, a.accuracy * 100.0),
                        (Some(b), None) => format!("{:.0}% -> ?", b.accuracy * 100.0),
                        _ => "-".into(),
                    };
                    println!(
                        "{:>4}  {:<11} {:<24} {:<16} {:>8.1e} {:>6} {:>5}  {:>15}  {:>15}",
                        r.id,
                        r.status.to_string(),
                        truncate(&r.experiment_name, 24),
                        truncate(&r.dataset_name, 16),
                        r.lr,
                        r.epochs,
                        r.batch_size,
                        acc(r.metrics.heldout_before, r.metrics.heldout_after),
                        acc(r.metrics.train_before, r.metrics.train_after),
                    );
                }
            }
        }
        Command::Runs(RunsCmd::Show { id, json }) => {
            let store = open()?;
            let detail = store.run(id)?;
            if json {
                let scores = store.run_scores(id)?;
                let mut v = serde_json::to_value(&detail)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("scores".into(), serde_json::to_value(&scores)?);
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_run(&detail);
            }
        }
        Command::Compare { runs, out, json } => print_compare(&open()?, &runs, &out, json)?,
        Command::Plot { run, out, json } => print_compare(&open()?, &[run], &out, json)?,
        Command::Export { run, out } => {
            let store = open()?;
            runner::export_checkpoint(&store, run, &out)?;
            println!("exported run {run} to {}", out.display());
        }
        Command::Score { model, image, captions, json } => {
            let device = device::select(choice)?;
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
                    println!("{}  {:>6.2}%  {c}", experiments::vocab::letter(i), p * 100.0);
                }
            }
        }
        Command::Bench { model, preset, iters, batch, json } => {
            let device = device::select(choice)?;
            let mut opts = match &model {
                Some(dir) => {
                    let cfg = ClipConfig::from_file(&dir.join(experiments::model::engine::CONFIG_FILE))?;
                    let mut o = BenchOptions::new(cfg);
                    o.weights = Some(dir.join(experiments::model::engine::WEIGHTS_FILE));
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
            let mut store = open()?;
            let out = demo::run_demo(&mut store, &home, &opts, choice, &mut printer, cancel)?;
            print_outcome(&out, json)?;
            if !json {
                println!("(chance: 20%; {:.0} s; store: {})", start.elapsed().as_secs_f64(), store.path().display());
            }
        }
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

fn print_summary_table(m: &experiments::run::store::RunMetrics) {
    println!("                  mean p(label)        accuracy");
    println!("                  before   after      before   after");
    for (name, b, a) in [("train", m.train_before, m.train_after), ("held-out", m.heldout_before, m.heldout_after)] {
        let Some(b) = b else { continue };
        let (ap, aa) = a.map(|a| (format!("{:>6.3}", a.mean_label_prob), format!("{:>5.1}%", a.accuracy * 100.0)))
            .unwrap_or_else(|| ("     -".into(), "    -".into()));
        println!("{name:<10} {:>5}  {:>6.3}  {ap}     {:>5.1}%  {aa}", b.n, b.mean_label_prob, b.accuracy * 100.0);
    }
}

fn print_outcome(out: &RunOutcome, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(out)?);
        return Ok(());
    }
    println!();
    println!("run {} completed on {}", out.run_id, out.device);
    print_summary_table(&out.metrics);
    if let Some(c) = &out.checkpoint {
        println!("checkpoint: {}", c.display());
    }
    Ok(())
}

fn print_run(d: &experiments::run::store::RunDetail) {
    let i = &d.info;
    println!("run {}  [{}]  experiment {} `{}`  dataset `{}`", i.id, i.status, i.experiment_id, i.experiment_name, i.dataset_name);
    println!("device {}  started {}  ended {}", i.device.as_deref().unwrap_or("-"), i.started_at.as_deref().unwrap_or("-"), i.ended_at.as_deref().unwrap_or("-"));
    println!(
        "lr {:e}  epochs {}  batch {}  optimizer {}  weight decay {}  seed {}  freeze: {}",
        d.spec.train.lr, d.spec.train.epochs, d.spec.train.batch_size, d.spec.train.optimizer, d.spec.train.weight_decay,
        d.spec.train.seed, d.spec.freeze.describe()
    );
    println!("samples: {} train, {} held-out (seed {})", d.train_ids.len(), d.heldout_ids.len(), d.spec.sample.seed);
    if let Some(e) = &i.error {
        println!("error: {e}");
    }
    if !d.epoch_losses.is_empty() {
        println!("epoch  train loss  held-out loss");
        for e in &d.epoch_losses {
            println!("{:>5}  {:>10.4}  {}", e.epoch, e.train_loss, e.heldout_loss.map(|l| format!("{l:>13.4}")).unwrap_or_else(|| "            -".into()));
        }
    }
    print_summary_table(&i.metrics);
    if let Some(c) = &d.checkpoint {
        println!("checkpoint: {}", c.display());
    }
}

/// Copies a checkpoint folder to `out` through a temporary folder, so a failure leaves nothing half-copied.
fn dataset_cmd(cmd: DatasetCmd, store: &mut Store, home: &Path, tty: bool) -> Result<()> {
    match cmd {
        DatasetCmd::Import { name, metadata, images, skip_bad_rows, filename_column, choices_column, label_column, image_column, json } => {
            let opts = ImportOptions {
                name: name.clone(),
                metadata,
                images_dir: images,
                columns: ColumnMap { filename: filename_column, choices: choices_column, label: label_column, image: image_column },
                on_error: if skip_bad_rows { OnError::Skip } else { OnError::Reject },
                extract_dir: Some(home.join("images")),
            };
            let mut printer = Printer { tty, quiet: json };
            let imported = data::import(&opts, &mut printer)?;
            let id = store.insert_dataset(&imported)?;
            if json {
                println!("{}", serde_json::json!({ "dataset_id": id, "name": name, "report": imported.report, "content_hash": imported.content_hash }));
            } else {
                let r = &imported.report;
                println!("imported `{name}` (id {id}): {} samples, {} images", r.valid_rows, imported.images.len());
                if !r.problems.is_empty() {
                    println!("skipped {} of {} rows:", r.total_rows - r.valid_rows, r.total_rows);
                    for p in r.problems.iter().take(20) {
                        println!("  {p}");
                    }
                    if r.problems.len() > 20 {
                        println!("  ... and {} more (cliplab dataset show {name} --json)", r.problems.len() - 20);
                    }
                }
            }
        }
        DatasetCmd::List { json } => {
            let list = store.datasets()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:>4}  {:<24} {:>8} {:>7} {:>8}  hash", "id", "name", "samples", "images", "skipped");
                for d in list {
                    println!("{:>4}  {:<24} {:>8} {:>7} {:>8}  {}", d.id, truncate(&d.name, 24), d.n_samples, d.n_images, d.n_skipped, &d.content_hash[..12.min(d.content_hash.len())]);
                }
            }
        }
        DatasetCmd::Show { dataset, limit, json } => {
            let d = store.dataset(&dataset)?;
            let samples = store.dataset_samples(d.id)?;
            let report = store.dataset_report(d.id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({
                    "dataset": d, "report": report, "samples": samples.iter().take(limit).collect::<Vec<_>>()
                }))?);
            } else {
                println!("dataset {} `{}`: {} samples, {} images, {} rows skipped", d.id, d.name, d.n_samples, d.n_images, d.n_skipped);
                println!("metadata: {}", d.metadata_path.display());
                println!("content hash: {}", d.content_hash);
                for s in samples.iter().take(limit) {
                    println!("\nrow {}  {}", s.row, s.filename);
                    for (i, c) in s.choices.iter().enumerate() {
                        let mark = if i == s.label { "*" } else { " " };
                        println!("  {mark}{} {c}", experiments::vocab::letter(i));
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_compare(store: &Store, runs: &[i64], out: &Path, json: bool) -> Result<()> {
    let r = experiments::report::compare::compare_runs(store, runs, out)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("{}", r.summary);
    if !r.hyperparameter_diff.is_empty() {
        println!("hyperparameters that differ:\n{}", r.hyperparameter_diff);
    }
    println!("{}", r.flips);
    println!("accuracy per answer letter:\n{}", r.letters);
    println!("wrote {} files to {}", r.files.len(), out.display());
    Ok(())
}
