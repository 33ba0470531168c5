//! `cliplab view [RUN...]`: starts the native monitor, the `cliplab-view` binary, over the same home. The monitor
//! is its own crate (egui, eframe) so that building the CLI never compiles a GUI toolkit.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, Result};

use super::Ctx;

/// The monitor's executable name on this platform.
fn viewer_name() -> String {
    format!("cliplab-view{}", std::env::consts::EXE_SUFFIX)
}

/// `cliplab-view` next to this executable (how `cargo build` and the packages install them), else on PATH.
fn find_viewer() -> Result<PathBuf> {
    let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(viewer_name())));
    if let Some(path) = beside.filter(|p| p.is_file()) {
        return Ok(path);
    }
    which::which(viewer_name()).map_err(|_| {
        anyhow!(
            "`cliplab view` needs the `cliplab-view` binary, found neither next to `cliplab` nor on PATH: build it \
             with `cargo build -p cliplab-view` (or `cargo install --path experiments/view`)"
        )
    })
}

/// Runs the monitor with `--home` and the runs (on Unix it replaces this process, so the window's exit status is
/// the command's).
pub fn run(runs: &[i64], ctx: &Ctx) -> Result<()> {
    let viewer = find_viewer()?;
    let mut cmd = Command::new(&viewer);
    cmd.arg("--home").arg(&ctx.home).args(runs.iter().map(i64::to_string));
    tracing::info!(viewer = %viewer.display(), "starting the monitor");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // `exec` returns only when it failed.
        let err = cmd.exec();
        Err(anyhow!("cannot start {}: {err}", viewer.display()))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().map_err(|e| anyhow!("cannot start {}: {e}", viewer.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(anyhow!("{} ended with {status}", viewer.display()))
        }
    }
}
