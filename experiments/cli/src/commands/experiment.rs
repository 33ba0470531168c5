//! `cliplab experiment create|list` and `cliplab run` (create from a spec, then run it).

use std::path::Path;

use anyhow::Result;
use experiments::run::{inputs, runner};
use experiments::run::spec::ExperimentSpec;

use super::Ctx;
use crate::output::print_outcome;

/// `experiment create`: records the experiment a spec describes.
pub fn create(spec: &Path, ctx: &Ctx, json: bool) -> Result<()> {
    let mut store = ctx.open()?;
    let spec = ctx.apply_device(ExperimentSpec::from_file(spec)?);
    inputs::prepare(&mut store, &ctx.home, &spec, &mut ctx.progress(json), &ctx.cancel)?;
    let id = runner::create_experiment(&mut store, &spec)?;
    tracing::info!(id, name = %spec.name, "experiment created");
    if json {
        println!("{}", serde_json::json!({ "experiment_id": id }));
    } else {
        println!("experiment {id} created: {}", spec.name);
    }
    Ok(())
}

/// `experiment list`.
pub fn list(ctx: &Ctx, json: bool) -> Result<()> {
    let exps = ctx.open()?.experiments()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&exps)?);
        return Ok(());
    }
    println!("{:>4}  {:<32} {:<20} created", "id", "name", "dataset");
    for e in exps {
        println!("{:>4}  {:<32} {:<20} {}", e.id, e.name, e.spec.dataset, e.created_at);
    }
    Ok(())
}

/// `run`: fetches what the spec names and this machine lacks (a hub model, a dataset URL), records the experiment
/// and runs it, showing progress; Ctrl-C stops it between steps.
pub fn run(spec: &Path, ctx: &Ctx, json: bool) -> Result<()> {
    let mut store = ctx.open()?;
    let spec = ctx.apply_device(ExperimentSpec::from_file(spec)?);
    inputs::prepare(&mut store, &ctx.home, &spec, &mut ctx.progress(json), &ctx.cancel)?;
    let id = runner::create_experiment(&mut store, &spec)?;
    tracing::info!(experiment = id, name = %spec.name, "running experiment");
    let out = runner::run_experiment(&mut store, &ctx.home, id, &mut ctx.progress(json), ctx.cancel.clone())?;
    print_outcome(&out, json)
}
