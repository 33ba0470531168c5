//! `cliplab view [RUN...]`: starts the native monitor, the `cliplab-view` binary, over the same home. The monitor
//! is its own crate (egui, eframe) so that building the CLI never compiles a GUI toolkit. [`companion`] and
//! [`exec`] start such a binary (`cliplab serve` starts `cliplab-serve` the same way).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, Result};

use super::Ctx;

/// The binary `name` (e.g. `cliplab-view`) next to this executable (how `cargo build` and the packages install
/// them), else on PATH; `folder` is its crate's folder, for the message when neither has it.
pub fn companion(name: &str, folder: &str) -> Result<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(&file)));
    if let Some(path) = beside.filter(|p| p.is_file()) {
        return Ok(path);
    }
    which::which(&file).map_err(|_| {
        anyhow!(
            "`cliplab {}` needs the `{name}` binary, found neither next to `cliplab` nor on PATH: build it with \
             `cargo build -p {name}` (or `cargo install --path {folder}`)",
            name.trim_start_matches("cliplab-")
        )
    })
}

/// Runs `cmd` (on Unix it replaces this process, so the companion's exit status is the command's).
pub fn exec(mut cmd: Command) -> Result<()> {
    let program = PathBuf::from(cmd.get_program());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // `exec` returns only when it failed.
        let err = cmd.exec();
        Err(anyhow!("cannot start {}: {err}", program.display()))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().map_err(|e| anyhow!("cannot start {}: {e}", program.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(anyhow!("{} ended with {status}", program.display()))
        }
    }
}

/// Runs the monitor with `--home` and the runs.
pub fn run(runs: &[i64], ctx: &Ctx) -> Result<()> {
    let viewer = companion("cliplab-view", "experiments/view")?;
    let mut cmd = Command::new(&viewer);
    cmd.arg("--home").arg(&ctx.home).args(runs.iter().map(i64::to_string));
    tracing::info!(viewer = %viewer.display(), "starting the monitor");
    exec(cmd)
}
