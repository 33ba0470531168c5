//! `cliplab-view [--home DIR] [RUN...]`: opens the monitor window over a CLIP Lab home's store. `cliplab view`
//! starts this binary with the same arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Parser;
use cliplab_view::screenshot::{Screenshot, Window};
use cliplab_view::{Monitor, Options};
use eframe::egui;
use experiments::run::store::Store;

/// A read-only window over a CLIP Lab store: runs, live loss curves, comparisons, per-sample scores.
#[derive(Debug, Parser)]
#[command(name = "cliplab view", version)]
struct Args {
    /// The CLIP Lab home folder (default: $CLIPLAB_HOME, else the per-user data folder).
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Save a PNG of the window to FILE after it has drawn for a few seconds, then quit.
    #[arg(long, value_name = "FILE")]
    screenshot: Option<PathBuf>,
    /// Runs to show: one is opened, several are compared.
    #[arg(value_name = "RUN")]
    runs: Vec<i64>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line, as the CLI prints: the chain of causes.
            eprintln!("error: {}", experiments::error::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let home = args.home.unwrap_or_else(Store::default_home);
    let opts = Options { runs: args.runs, ..Options::default() };
    let monitor =
        Monitor::open(&home, opts).with_context(|| format!("opening the store in {}", home.display()))?;
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(format!("CLIP Lab · {}", home.display()))
            .with_app_id("cliplab-view")
            .with_inner_size([1280.0, 820.0]),
        ..Default::default()
    };
    let screenshot = args.screenshot.clone().map(|p| Screenshot::new(p, 3.0));
    let outcome = screenshot.as_ref().map(Screenshot::outcome);
    eframe::run_native("cliplab-view", native, Box::new(move |_cc| Ok(Box::new(Window { monitor, screenshot }))))
        .map_err(|e| anyhow!("cannot open the window: {e} (is there an X display? `ssh -X`, or DISPLAY)"))?;
    if let (Some(path), Some(outcome)) = (args.screenshot, outcome) {
        match outcome.lock().ok().and_then(|o| o.clone()) {
            Some(Ok(())) => eprintln!("saved {}", path.display()),
            Some(Err(e)) => return Err(anyhow!("cannot save the screenshot: {e}")),
            None => return Err(anyhow!("the window closed before the screenshot was taken")),
        }
    }
    Ok(())
}
