//! `cliplab runs list|show` and `cliplab export`.

use std::path::Path;

use anyhow::Result;
use experiments::model::engine::Summary;
use experiments::run::runner;

use super::Ctx;
use crate::output::{print_run, truncate};

/// `runs list`: one line per run with its before -> after accuracy, its place in the queue and its tags; with
/// `tag`, only the runs tagged so (or whose experiment is).
pub fn list(ctx: &Ctx, tag: Option<&str>, json: bool) -> Result<()> {
    let store = ctx.open()?;
    let mut runs = store.runs()?;
    if let Some(tag) = tag {
        let tagged: std::collections::HashSet<i64> = store.runs_tagged(tag)?.into_iter().collect();
        runs.retain(|r| tagged.contains(&r.id));
    }
    let labels = store.run_labels()?;
    if json {
        // Each run's record with its sweep, queue place, tags and note beside it.
        let mut out = Vec::with_capacity(runs.len());
        for r in &runs {
            let mut v = serde_json::to_value(r)?;
            if let (Some(o), Some(l)) = (v.as_object_mut(), labels.get(&r.id)) {
                o.insert("sweep_id".into(), serde_json::json!(l.sweep_id));
                o.insert("queue_position".into(), serde_json::json!(l.queue_position));
                o.insert("tags".into(), serde_json::json!(l.tags));
                o.insert("note".into(), serde_json::json!(l.note));
            }
            out.push(v);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "{:>4}  {:<11} {:<24} {:<16} {:>8} {:>6} {:>5}  {:>15}  {:>15}",
        "run", "status", "experiment", "dataset", "lr", "epochs", "batch", "held-out acc", "train acc"
    );
    let no_labels = experiments::run::store::RunLabels::default();
    let acc = |b: Option<Summary>, a: Option<Summary>| match (b, a) {
        (Some(b), Some(a)) => format!("{:.0}% -> {:.0}%", b.accuracy * 100.0, a.accuracy * 100.0),
        (Some(b), None) => format!("{:.0}% -> ?", b.accuracy * 100.0),
        _ => "-".into(),
    };
    for r in runs {
        let l = labels.get(&r.id).unwrap_or(&no_labels);
        let status = match l.queue_position {
            Some(p) => format!("queued #{p}"),
            None => r.status.to_string(),
        };
        let tags = if l.tags.is_empty() { String::new() } else { format!("  [{}]", l.tags.join(", ")) };
        println!(
            "{:>4}  {:<11} {:<24} {:<16} {:>8.1e} {:>6} {:>5}  {:>15}  {:>15}{tags}",
            r.id,
            status,
            truncate(&r.experiment_name, 24),
            truncate(&r.dataset_name, 16),
            r.lr,
            r.epochs,
            r.batch_size,
            acc(r.metrics.heldout_before, r.metrics.heldout_after),
            acc(r.metrics.train_before, r.metrics.train_after),
        );
    }
    Ok(())
}

/// `runs show`: the run's details; with `--json`, its per-sample scores too.
pub fn show(id: i64, ctx: &Ctx, json: bool) -> Result<()> {
    let store = ctx.open()?;
    let detail = store.run(id)?;
    if !json {
        print_run(&detail);
        return Ok(());
    }
    let scores = store.run_scores(id)?;
    let mut v = serde_json::to_value(&detail)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("scores".into(), serde_json::to_value(&scores)?);
    }
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `export`: copies the run's checkpoint folder to `out`.
pub fn export(run: i64, out: &Path, ctx: &Ctx) -> Result<()> {
    let store = ctx.open()?;
    runner::export_checkpoint(&store, run, out)?;
    println!("exported run {run} to {}", out.display());
    Ok(())
}
