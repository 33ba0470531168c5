//! `cliplab serve`: the app's screens in a browser, served by the `cliplab-serve` binary over the same home (its own
//! crate, so that building the CLI never compiles an HTTP server).

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use super::view::{companion, exec};
use super::Ctx;

/// Runs `cliplab-serve` with `--home` and the server's flags.
pub fn run(bind: &str, allow_dirs: &[PathBuf], expose: bool, ctx: &Ctx) -> Result<()> {
    let server = companion("cliplab-serve", "experiments/serve")?;
    let mut cmd = Command::new(&server);
    cmd.arg("--home").arg(&ctx.home).arg("--bind").arg(bind);
    for dir in allow_dirs {
        cmd.arg("--allow-dir").arg(dir);
    }
    if expose {
        cmd.arg("--expose");
    }
    tracing::info!(server = %server.display(), "starting the server");
    exec(cmd)
}
