//! `cliplab`: the command-line face of CLIP Lab. Every command is a thin layer over the `experiments` crate:
//! [`args`] is the command line, [`commands`] one function per command, [`output`] the shared printing; progress
//! shows through the core's [`ProgressRenderer`](experiments::events::ProgressRenderer) and logs through `tracing`.

mod args;
mod commands;
mod output;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches};
use experiments::events::CancelToken;
use experiments::run::store::Store;
use tracing::Level;

use args::{Cli, Command, ExperimentCmd, ModelCmd, RunsCmd};
use commands::{dataset, demo, disk, experiment, hub, manage, mlflow, model, queue, report, runs, serve, sweep, view, Ctx};

fn main() -> ExitCode {
    // Before any thread starts (it sets environment variables the compute libraries read).
    experiments::model::device::set_cpu_thread_defaults();
    restore_sigpipe();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let level = match cli.verbose {
        0 => Level::WARN,
        1 => Level::INFO,
        _ => Level::DEBUG,
    };
    if let Err(e) = experiments::logging::init_stderr(level) {
        eprintln!("warning: no logs: {e}");
    }
    let name = args::command_path(&matches);
    tracing::info!(command = %name, "command started");
    let start = Instant::now();
    let result = run(cli);
    tracing::info!(command = %name, ok = result.is_ok(), elapsed_s = start.elapsed().as_secs_f64(), "command ended");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line, the last on stderr: the chain of causes.
            eprintln!("error: {}", experiments::error::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Builds the context from the global flags, then hands the command to its function.
fn run(cli: Cli) -> Result<()> {
    let device = cli.device.as_deref().map(str::parse).transpose()?;
    let home = cli.home.clone().unwrap_or_else(Store::default_home);
    tracing::debug!(home = %home.display(), ?device, "context");
    let ctx = Ctx { home, device, cancel: CancelToken::new() };
    cancel_on_ctrl_c(ctx.cancel.clone());
    match cli.command {
        Command::Model(ModelCmd::Pull { repo_id, revision, json }) => hub::pull(&repo_id, &revision, &ctx, json),
        Command::Model(ModelCmd::List { json }) => hub::list(json),
        Command::Dataset(cmd) => dataset::run(cmd, &ctx),
        Command::Experiment(ExperimentCmd::Create { spec, json }) => experiment::create(&spec, &ctx, json),
        Command::Experiment(ExperimentCmd::List { json }) => experiment::list(&ctx, json),
        Command::Experiment(cmd) => manage::experiment(cmd, &ctx),
        Command::Run { spec, grid, queue: false, json } if grid.is_empty() => experiment::run(&spec, &ctx, json),
        Command::Run { spec, grid, queue, json } => sweep::run(&spec, &grid, queue, &ctx, json),
        Command::Queue(cmd) => queue::run(cmd, &ctx),
        Command::Runs(RunsCmd::List { tag, all, json }) => runs::list(&ctx, tag.as_deref(), all, json),
        Command::Runs(RunsCmd::DeleteCheckpoint { run }) => disk::delete_checkpoint(run, &ctx),
        Command::Gc { yes, json } => disk::gc(yes, &ctx, json),
        Command::Runs(RunsCmd::Show { id, json }) => runs::show(id, &ctx, json),
        Command::Runs(cmd) => manage::runs(cmd, &ctx),
        Command::Export { run, out } => runs::export(run, &out, &ctx),
        Command::Compare { sweep: Some(id), out, json, .. } => report::compare_sweep(id, &out, &ctx, json),
        Command::Compare { runs, out, json, .. } => report::compare(&runs, &out, &ctx, json),
        Command::Plot { run, out, json } => report::compare(&[run], &out, &ctx, json),
        Command::Score { model, image, captions, json } => model::score(&model, &image, &captions, &ctx, json),
        Command::Bench { model, preset, iters, batch, tokens, json } => {
            model::bench(model::BenchArgs { model, preset, iters, batch, tokens }, &ctx, json)
        }
        Command::Demo { json, epochs, images, seed } => demo::run(&demo::options(epochs, images, seed), &ctx, json),
        Command::Mlflow(cmd) => mlflow::run(cmd, &ctx),
        Command::View { runs } => view::run(&runs, &ctx),
        Command::Serve { bind, allow_dirs, expose } => serve::run(&bind, &allow_dirs, expose, &ctx),
    }
}

/// First Ctrl-C: cancel `token` (long jobs stop between steps and keep what they recorded); a second one exits at
/// once. If the handler cannot be installed, Ctrl-C keeps its default (the process dies at once): warn and go on.
fn cancel_on_ctrl_c(token: CancelToken) {
    let installed = ctrlc::set_handler(move || {
        if token.cancel() {
            std::process::exit(130);
        }
        eprintln!("\ncancelling after the current step (Ctrl-C again to quit now)...");
    });
    if let Err(e) = installed {
        tracing::warn!("Ctrl-C will stop at once, not between steps: cannot install its handler: {e}");
    }
}

/// Rust starts programs with SIGPIPE ignored, so writing to a closed pipe (`cliplab runs show 2 | head`) is an
/// error, and `println!` panics on it. A command-line tool should end quietly there, as Unix tools do: restore
/// the default action, so the process ends at the write (what std's unstable `-Zon-broken-pipe=kill` does).
/// Runs write their records before they print, so nothing recorded is lost.
#[cfg(unix)]
#[allow(unsafe_code)]
fn restore_sigpipe() {
    // SAFETY: called first thing in `main`, before any thread is started; `signal` with `SIG_DFL` only resets the
    // disposition of SIGPIPE and touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_sigpipe() {}
