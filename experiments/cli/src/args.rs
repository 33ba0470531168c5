//! The command line as `clap` parses it: global flags, commands and their arguments.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cliplab", version, about = "Fine-tune and track CLIP on image + caption multiple-choice data")]
pub struct Cli {
    /// Compute device: auto (CUDA, then Metal, then CPU), cpu, cuda or metal. Given, it wins over a spec's
    /// `device`, and a device this build or machine cannot use is an error. Default: the spec's, else auto.
    #[arg(long, global = true)]
    pub device: Option<String>,
    /// The CLIP Lab home (the store and run folders). Default: $CLIPLAB_HOME, else the platform data dir.
    #[arg(long, global = true)]
    pub home: Option<PathBuf>,
    /// More log output on stderr: -v for info, -vv for debug (default: warnings only).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Open the native monitor window (`cliplab-view`): runs, live loss curves, comparisons, per-sample scores.
    View {
        /// Runs to show: one is opened, several are compared.
        #[arg(value_name = "RUN")]
        runs: Vec<i64>,
    },
}

#[derive(Subcommand)]
pub enum DatasetCmd {
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
    /// List the imported datasets.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one dataset: its import report and its first samples.
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
pub enum ExperimentCmd {
    /// Record an experiment from a TOML spec (checks the dataset and model exist).
    Create {
        #[arg(long)]
        spec: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List the recorded experiments.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum RunsCmd {
    /// List the runs with their before/after accuracy.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one run: its settings, losses and metrics.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// The command's name as typed (`dataset import`), for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Score { .. } => "score",
            Command::Bench { .. } => "bench",
            Command::Dataset(DatasetCmd::Import { .. }) => "dataset import",
            Command::Dataset(DatasetCmd::List { .. }) => "dataset list",
            Command::Dataset(DatasetCmd::Show { .. }) => "dataset show",
            Command::Experiment(ExperimentCmd::Create { .. }) => "experiment create",
            Command::Experiment(ExperimentCmd::List { .. }) => "experiment list",
            Command::Run { .. } => "run",
            Command::Runs(RunsCmd::List { .. }) => "runs list",
            Command::Runs(RunsCmd::Show { .. }) => "runs show",
            Command::Export { .. } => "export",
            Command::Compare { .. } => "compare",
            Command::Plot { .. } => "plot",
            Command::Demo { .. } => "demo",
            Command::View { .. } => "view",
        }
    }
}
