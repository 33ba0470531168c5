//! `cliplab-serve` (what `cliplab serve` runs): CLIP Lab's app in a browser. Prints the URL with its token; the
//! first Ctrl-C shuts down cleanly (stops the runs it started and records them cancelled), a second quits at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::Result;
use clap::Parser;
use cliplab_serve::{exposure, start, Config};
use experiments::run::store::Store;

/// Serve CLIP Lab's app (the desktop app's screens) over HTTP, for a browser.
#[derive(Parser)]
#[command(name = "cliplab-serve", version)]
struct Args {
    /// The CLIP Lab home (the store and run folders). Default: $CLIPLAB_HOME, else the platform data dir.
    #[arg(long)]
    home: Option<PathBuf>,
    /// Address and port to listen on. Anything but loopback needs --expose.
    #[arg(long, default_value = "127.0.0.1:8765")]
    bind: SocketAddr,
    /// A folder the page may pick files and folders in (datasets, models, export destinations); repeat for
    /// more. The home is always allowed.
    #[arg(long = "allow-dir", value_name = "DIR")]
    allow_dirs: Vec<PathBuf>,
    /// Listen on a non-loopback address: anyone who reaches it with the token can use the app, over plain HTTP.
    #[arg(long)]
    expose: bool,
}

fn main() -> ExitCode {
    // Before any thread starts (it sets environment variables the compute libraries read).
    experiments::model::device::set_cpu_thread_defaults();
    let args = Args::parse();
    if let Err(e) = experiments::logging::init_stderr(tracing::Level::INFO) {
        eprintln!("warning: no logs: {e}");
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line, the last on stderr, as the CLI writes its errors.
            eprintln!("error: {}", experiments::error::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn serve(args: Args) -> Result<()> {
    // Ctrl-C is caught before the URL is printed, so that whoever reads the URL may stop the server cleanly.
    let (tx, rx) = mpsc::channel();
    let mut pressed = false;
    ctrlc::set_handler(move || {
        if pressed {
            std::process::exit(130);
        }
        pressed = true;
        // The main thread may be gone already (shutting down): nothing to tell.
        let _ = tx.send(());
    })?;
    let home = args.home.unwrap_or_else(Store::default_home);
    let running = start(Config { home, bind: args.bind, allow_dirs: args.allow_dirs, expose: args.expose })?;
    println!("CLIP Lab is served at\n\n    {}\n", running.url());
    println!("{}", exposure(running.addr, running.allowed_dirs()));
    println!("Ctrl-C stops the server (and the runs it started; runs of other processes go on).");
    // Waits for Ctrl-C (an error: the handler is gone, so stop too).
    let _ = rx.recv();
    eprintln!("\nshutting down (Ctrl-C again to quit at once)...");
    running.shutdown();
    Ok(())
}
