//! `cliplab mlflow push|pull`: runs to and from an MLflow tracking server.

use anyhow::Result;
use experiments::remote::mlflow::{self as core, Auth, Client, PullOptions, PushOptions};

use super::Ctx;
use crate::args::MlflowCmd;

/// Runs one `mlflow` subcommand.
pub fn run(cmd: MlflowCmd, ctx: &Ctx) -> Result<()> {
    match cmd {
        MlflowCmd::Push { runs, tracking_uri, experiment, with_checkpoint, json } => {
            let mut store = ctx.open()?;
            let client = Client::new(&core::resolve_tracking_uri(&store, tracking_uri.as_deref())?, Auth::from_env())?;
            let mut progress = ctx.progress(json);
            let opts = PushOptions { experiment, with_checkpoint };
            let out = core::push_runs(&mut store, &client, &runs, &opts, &mut progress)?;
            drop(progress);
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            for o in out {
                let what = if o.created { "created" } else { "updated" };
                println!(
                    "run {} -> MLflow run {} ({what}: {} params, {} metric points, {} artifacts)\n  {}",
                    o.run, o.remote_run_id, o.params_logged, o.metrics_logged, o.artifacts, o.url
                );
            }
        }
        MlflowCmd::Pull { tracking_uri, experiment, runs, json } => {
            let mut store = ctx.open()?;
            let client = Client::new(&core::resolve_tracking_uri(&store, tracking_uri.as_deref())?, Auth::from_env())?;
            let mut progress = ctx.progress(json);
            let out = core::pull_runs(&mut store, &client, &PullOptions { experiment, runs }, &mut progress)?;
            drop(progress);
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            for p in &out.pulled {
                let what = if p.replaced { "updated" } else { "new" };
                println!("MLflow run {} -> run {} ({what}, read-only; from {})", p.remote_run_id, p.run, p.origin);
            }
            for (id, why) in &out.skipped {
                println!("MLflow run {id}: skipped ({why})");
            }
            if out.pulled.is_empty() && out.skipped.is_empty() {
                println!("no runs in that experiment");
            }
        }
    }
    Ok(())
}
