//! `cliplab queue run|list|cancel|move`: the run queue kept in the store.

use anyhow::{bail, Result};
use experiments::events::{Observer, ProgressRenderer};
use experiments::run::queue::{work_queue, WorkerOptions, Worked};
use experiments::Error;

use super::Ctx;
use crate::args::QueueCmd;
use crate::output::truncate;

/// Runs a `queue` subcommand.
pub fn run(cmd: QueueCmd, ctx: &Ctx) -> Result<()> {
    match cmd {
        QueueCmd::Run { concurrency, json } => work(ctx, concurrency, json),
        QueueCmd::List { json } => list(ctx, json),
        QueueCmd::Cancel { run } => {
            ctx.open()?.cancel_queued(run)?;
            println!("run {run} taken out of the queue (cancelled)");
            Ok(())
        }
        QueueCmd::Move { run, to, up } => {
            let mut store = ctx.open()?;
            let place = match to {
                Some(n) => n,
                None => {
                    let q = store.queue()?;
                    let Some(now) = q.iter().find(|r| r.run_id == run) else {
                        bail!("run {run} is not in the queue (see `cliplab queue list`)");
                    };
                    debug_assert!(up, "clap requires --to or --up");
                    now.position.saturating_sub(1).max(1)
                }
            };
            store.move_queued(run, place)?;
            let now = store.queue()?.iter().find(|r| r.run_id == run).map_or(0, |r| r.position);
            println!("run {run} is now at place {now} of the queue");
            Ok(())
        }
    }
}

/// `queue list`.
fn list(ctx: &Ctx, json: bool) -> Result<()> {
    let q = ctx.open()?.queue()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&q)?);
        return Ok(());
    }
    if q.is_empty() {
        println!("the queue is empty");
        return Ok(());
    }
    println!("{:>5}  {:>4}  {:>5}  {:<40} queued at", "place", "run", "sweep", "experiment");
    for r in q {
        let sweep = r.sweep_id.map_or("-".to_string(), |s| s.to_string());
        println!("{:>5}  {:>4}  {:>5}  {:<40} {}", r.position, r.run_id, sweep, truncate(&r.experiment_name, 40), r.created_at);
    }
    Ok(())
}

/// `queue run`: works the queue until it is empty; Ctrl-C stops the running runs between steps and leaves the
/// rest queued.
fn work(ctx: &Ctx, concurrency: usize, json: bool) -> Result<()> {
    let waiting = ctx.open()?.queue_len()?;
    if waiting == 0 {
        if json {
            println!("[]");
        } else {
            println!("the queue is empty");
        }
        return Ok(());
    }
    if !json {
        eprintln!("{waiting} run(s) queued; running {concurrency} at a time");
    }
    // Progress bars of runs side by side would overwrite each other: with several at once, only each run's end.
    let observer = |run: i64| -> Box<dyn Observer> {
        if !json {
            eprintln!("run {run} started");
        }
        Box::new(ProgressRenderer::stderr(json || concurrency > 1))
    };
    let done = |w: &Worked| {
        if !json {
            match &w.result {
                Ok(o) => eprintln!("run {} completed on {}", w.run_id, o.device),
                Err(Error::Cancelled) => eprintln!("run {} cancelled", w.run_id),
                Err(e) => eprintln!("run {} failed: {e}", w.run_id),
            }
        }
    };
    let options = WorkerOptions { concurrency, device: ctx.device };
    let worked = work_queue(&ctx.home, options, &observer, &done, ctx.cancel.clone())?;
    let failed = worked.iter().filter(|w| w.result.is_err()).count();
    if json {
        let runs: Vec<_> = worked
            .iter()
            .map(|w| match &w.result {
                Ok(o) => serde_json::json!({ "run_id": w.run_id, "status": "completed", "outcome": o }),
                Err(Error::Cancelled) => serde_json::json!({ "run_id": w.run_id, "status": "cancelled" }),
                Err(e) => serde_json::json!({ "run_id": w.run_id, "status": "failed", "error": e.to_string() }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        println!("{} run(s) ran, {failed} did not complete", worked.len());
    }
    if failed > 0 {
        bail!("{failed} of {} run(s) did not complete", worked.len());
    }
    Ok(())
}
