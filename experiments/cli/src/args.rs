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
        /// A Hugging Face CLIP model folder (config.json, model.safetensors, tokenizer.json, preprocessor_config.json),
        /// or a hub id (openai/clip-vit-base-patch32) when no such folder exists: pulled into the hub cache first.
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
        /// Load this model folder's (or hub id's) weights instead of random ones.
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
        /// Tokens per caption (20: short captions; 77: padded to CLIP's context, as the tutorial does).
        #[arg(long, default_value_t = 20)]
        tokens: usize,
        #[arg(long)]
        json: bool,
    },
    /// Models from the Hugging Face hub: pull, list (the standard cache: HF_HOME / HF_HUB_CACHE).
    #[command(subcommand)]
    Model(ModelCmd),
    /// Datasets: import, list, show.
    #[command(subcommand)]
    Dataset(DatasetCmd),
    /// Experiments: create from a spec.
    #[command(subcommand)]
    Experiment(ExperimentCmd),
    /// Create an experiment from a spec and run it; with --grid, a sweep: one run per grid point.
    Run {
        #[arg(long)]
        spec: PathBuf,
        /// Sweep a spec key over values: `train.lr=1e-5,3e-5,1e-4` (repeat for a grid: every combination).
        #[arg(long = "grid", value_name = "KEY=V1,V2,...")]
        grid: Vec<String>,
        /// Only put the run(s) in the queue (`cliplab queue run` runs them).
        #[arg(long)]
        queue: bool,
        #[arg(long)]
        json: bool,
    },
    /// The run queue: run, list, cancel, move.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Runs: list, show.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Copy a run's fine-tuned checkpoint folder to OUT (loads in CLIP Lab and in transformers).
    Export {
        run: i64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare runs: charts (SVG + PNG), a per-sample CSV, and the summary, hyperparameter diff and flips; or,
    /// with --sweep, a sweep's chart (held-out metric against each swept key) and its runs' loss curves.
    Compare {
        #[arg(required_unless_present = "sweep", num_args = 2..)]
        runs: Vec<i64>,
        /// A sweep id (printed by `run --grid`).
        #[arg(long, conflicts_with = "runs")]
        sweep: Option<i64>,
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
    /// Free disk space no run needs: checkpoints a spec's keep_best no longer keeps, and shared files no
    /// checkpoint uses. Without --yes, only says what it would free.
    Gc {
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Serve the app's screens over HTTP for a browser (`cliplab-serve`), e.g. on a GPU server reached over SSH.
    /// Prints a URL with a random token; Ctrl-C stops it.
    Serve {
        /// Address and port to listen on. Anything but loopback needs --expose.
        #[arg(long, default_value = "127.0.0.1:8765")]
        bind: String,
        /// A folder the page may pick files and folders in (datasets, models, export destinations); repeat for
        /// more. The home is always allowed.
        #[arg(long = "allow-dir", value_name = "DIR")]
        allow_dirs: Vec<PathBuf>,
        /// Listen on a non-loopback address: anyone who reaches it with the token can use the app (plain HTTP).
        #[arg(long)]
        expose: bool,
    },
    /// MLflow tracking servers: push runs, pull a team's runs (auth: MLFLOW_TRACKING_TOKEN or
    /// MLFLOW_TRACKING_USERNAME/PASSWORD).
    #[command(subcommand)]
    Mlflow(MlflowCmd),
}

#[derive(Subcommand)]
pub enum MlflowCmd {
    /// Push runs (params, tags, metrics, charts, per-sample CSV); pushing again updates the same MLflow runs.
    Push {
        #[arg(required = true)]
        runs: Vec<i64>,
        /// The tracking server (default: $MLFLOW_TRACKING_URI, else the one this home last used).
        #[arg(long)]
        tracking_uri: Option<String>,
        /// The MLflow experiment (default: each run's CLIP Lab experiment name).
        #[arg(long)]
        experiment: Option<String>,
        /// Upload the fine-tuned checkpoint folder too.
        #[arg(long)]
        with_checkpoint: bool,
        #[arg(long)]
        json: bool,
    },
    /// Pull runs CLIP Lab pushed to an experiment into this store (read-only copies; `compare` takes them).
    Pull {
        /// The tracking server (default: $MLFLOW_TRACKING_URI, else the one this home last used).
        #[arg(long)]
        tracking_uri: Option<String>,
        #[arg(long)]
        experiment: String,
        /// MLflow run ids (default: every CLIP Lab run of the experiment).
        #[arg(long = "run")]
        runs: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ModelCmd {
    /// Download a CLIP model from the hub into its cache (resumes, checks sizes and hashes); prints its folder.
    /// Honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE.
    Pull {
        /// The repository, e.g. openai/clip-vit-base-patch32.
        repo_id: String,
        /// A branch, tag or commit.
        #[arg(long, default_value = "main")]
        revision: String,
        #[arg(long)]
        json: bool,
    },
    /// List the CLIP models in the hub cache.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DatasetCmd {
    /// Import a folder of images plus a metadata file (parquet, CSV or JSONL) joined on the file name; both may be
    /// gs://, s3:// or https:// URLs (downloaded into the home's cache first; anonymous unless credentials are in
    /// the environment).
    Import {
        #[arg(long)]
        name: String,
        /// The metadata file: a path or a URL.
        #[arg(long)]
        metadata: PathBuf,
        /// The image folder (searched recursively), a path or a URL. Omit for parquet files that embed their images.
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
    /// Delete a dataset's records (and the images its import extracted into the home, if no other dataset uses
    /// them; never your own files); refused while experiments use it, unless --with-runs.
    Delete {
        /// Name or id.
        dataset: String,
        /// Also delete the experiments and runs that use it (and their run folders).
        #[arg(long)]
        with_runs: bool,
        /// Without it, only say what would be deleted.
        #[arg(long)]
        yes: bool,
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
    /// Delete an experiment with its runs and their run folders.
    Delete {
        id: i64,
        /// Without it, only say what would be deleted.
        #[arg(long)]
        yes: bool,
    },
    #[command(flatten)]
    Label(LabelCmd),
}

/// `tag`, `untag` and `note`: the same three commands under `runs` and `experiment`.
#[derive(Subcommand)]
pub enum LabelCmd {
    /// Add a tag (`runs list --tag` finds a run by its own tags and its experiment's).
    Tag {
        /// The run's or experiment's id.
        id: i64,
        tag: String,
    },
    /// Remove a tag.
    Untag {
        /// The run's or experiment's id.
        id: i64,
        tag: String,
    },
    /// Set the note (an empty text removes it).
    Note {
        /// The run's or experiment's id.
        id: i64,
        text: String,
    },
}

#[derive(Subcommand)]
pub enum RunsCmd {
    /// List the runs with their before/after accuracy and disk use (archived runs only with --all).
    List {
        /// Only runs with this tag (on the run or its experiment).
        #[arg(long)]
        tag: Option<String>,
        /// Archived runs too.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Archive runs: hidden from `runs list` (without --all) and the app's runs table; nothing is deleted.
    Archive {
        #[arg(required = true)]
        runs: Vec<i64>,
    },
    /// Bring archived runs back into the default views.
    Unarchive {
        #[arg(required = true)]
        runs: Vec<i64>,
    },
    /// Delete a run's checkpoint folder; its records (scores, losses, metrics) stay.
    DeleteCheckpoint { run: i64 },
    #[command(flatten)]
    Label(LabelCmd),
    /// Delete runs: their records and run folders. Refused for a run that is running.
    Delete {
        #[arg(required = true)]
        runs: Vec<i64>,
        /// Without it, only say what would be deleted.
        #[arg(long)]
        yes: bool,
    },
    /// Show one run: its settings, losses and metrics.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum QueueCmd {
    /// Run the queued runs, next first, until the queue is empty (Ctrl-C: stop; the rest stays queued).
    Run {
        /// Runs at once (for the CPU; keep 1 on a GPU).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        #[arg(long)]
        json: bool,
    },
    /// List the queued runs in order.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Take a run out of the queue (it ends `cancelled`).
    Cancel { run: i64 },
    /// Move a queued run to place N (1: next), or one place up.
    Move {
        run: i64,
        #[arg(long, required_unless_present = "up")]
        to: Option<usize>,
        #[arg(long, conflicts_with = "to")]
        up: bool,
    },
}

/// The subcommand path as typed (`dataset import`), for logs: clap's own names, so it cannot drift from the
/// command line.
pub fn command_path(matches: &clap::ArgMatches) -> String {
    let mut path = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        path.push(name);
        m = sub;
    }
    path.join(" ")
}
