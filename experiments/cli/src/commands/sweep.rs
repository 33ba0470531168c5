//! `cliplab run --grid ... [--queue]` and `cliplab run --queue`: a sweep run in the foreground, one run after
//! another as `run` runs one, or runs put in the queue for `cliplab queue run`.

use std::path::Path;

use anyhow::{bail, Result};
use experiments::events::Observer;
use experiments::run::{inputs, runner};
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::NewRun;
use experiments::run::sweep::{self, GridAxis};
use experiments::Error;

use super::Ctx;
use crate::output::print_summary_table;

/// `run --spec S [--grid K=V,...]... [--queue]`.
pub fn run(spec: &Path, grid: &[String], enqueue: bool, ctx: &Ctx, json: bool) -> Result<()> {
    let mut store = ctx.open()?;
    let spec = ctx.apply_device(ExperimentSpec::from_file(spec)?);
    inputs::prepare(&mut store, &ctx.home, &spec, &mut ctx.progress(json), &ctx.cancel)?;
    if grid.is_empty() {
        let ds = runner::check_experiment(&store, &spec)?;
        let run = store.enqueue_new_run(&NewRun { spec, dataset_id: ds.id })?;
        let place = store.queue()?.iter().find(|q| q.run_id == run).map_or(0, |q| q.position);
        if json {
            println!("{}", serde_json::json!({ "run_id": run, "queue_position": place }));
        } else {
            println!("run {run} queued at place {place} (`cliplab queue run` runs the queue)");
        }
        return Ok(());
    }
    let grid: Vec<GridAxis> = grid.iter().map(|a| GridAxis::parse(a)).collect::<Result<_, _>>()?;
    let created = sweep::create_sweep(&mut store, &spec, &grid, enqueue)?;
    let ids = created.run_ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    tracing::info!(sweep = created.sweep_id, runs = created.run_ids.len(), enqueue, "sweep created");
    if enqueue {
        if json {
            println!("{}", serde_json::to_string_pretty(&created)?);
        } else {
            println!("sweep {}: {} runs queued ({ids}); `cliplab queue run` runs them", created.sweep_id, created.run_ids.len());
        }
        return Ok(());
    }
    if !json {
        eprintln!("sweep {}: {} runs ({ids}), one after another", created.sweep_id, created.run_ids.len());
    }
    let mut observer = |_run: i64| -> Box<dyn Observer> { Box::new(ctx.progress(json)) };
    let results = sweep::run_sweep(&mut store, &ctx.home, &created.run_ids, &mut observer, ctx.cancel.clone())?;
    report(created.sweep_id, &results, json)
}

/// Prints each run's outcome; fails when a run did not complete.
fn report(sweep_id: i64, results: &[(i64, experiments::Result<runner::RunOutcome>)], json: bool) -> Result<()> {
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if json {
        let runs: Vec<_> = results
            .iter()
            .map(|(id, r)| match r {
                Ok(o) => serde_json::json!({ "run_id": id, "status": "completed", "outcome": o }),
                Err(Error::Cancelled) => serde_json::json!({ "run_id": id, "status": "cancelled" }),
                Err(e) => serde_json::json!({ "run_id": id, "status": "failed", "error": e.to_string() }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "sweep_id": sweep_id, "runs": runs }))?);
    } else {
        for (id, r) in results {
            match r {
                Ok(o) => {
                    println!("\nrun {id} completed on {}", o.device);
                    print_summary_table(&o.metrics);
                }
                Err(Error::Cancelled) => println!("\nrun {id} cancelled"),
                Err(e) => println!("\nrun {id} failed: {e}"),
            }
        }
        println!("\nsweep {sweep_id}: `cliplab compare --sweep {sweep_id} --out DIR` charts it");
    }
    if failed > 0 {
        bail!("{failed} of the sweep's {} runs did not complete", results.len());
    }
    Ok(())
}
