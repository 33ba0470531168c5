//! `cliplab runs list|show` and `cliplab export`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Result;
use experiments::model::engine::Summary;
use experiments::run::checkpoint::{self, CheckpointState, RunDisk};
use experiments::run::runner;
use experiments::run::store::{RunInfo, RunLabels};
use indicatif::HumanBytes;

use super::Ctx;
use crate::output::{print_run, truncate};

/// `runs list`: one line per run with its before -> after accuracy, its place in the queue, its disk use, its
/// checkpoint (kept, deleted by `keep_best` or by hand, none), its tags and whether it was pulled; with `tag`, only the runs tagged so (or whose experiment is); archived runs
/// only with `all`. The last line: the disk use of all runs (shared files counted once).
pub fn list(ctx: &Ctx, tag: Option<&str>, all: bool, json: bool) -> Result<()> {
    let store = ctx.open()?;
    let mut runs = store.runs()?;
    if let Some(tag) = tag {
        let tagged: HashSet<i64> = store.runs_tagged(tag)?.into_iter().collect();
        runs.retain(|r| tagged.contains(&r.id));
    }
    let labels = store.run_labels()?;
    let shown = runs.len();
    if !all {
        runs.retain(|r| !labels.get(&r.id).is_some_and(|l| l.archived));
    }
    let hidden = shown - runs.len();
    let usage = checkpoint::disk_usage(&store, &ctx.home)?;
    let disk: HashMap<i64, &RunDisk> = usage.runs.iter().map(|d| (d.run_id, d)).collect();
    if json {
        return print_json(&runs, &labels, &disk);
    }
    println!(
        "{:>4}  {:<11} {:<24} {:<16} {:>8} {:>6} {:>5}  {:>15}  {:>15} {:>10}  {:<10}",
        "run", "status", "experiment", "dataset", "lr", "epochs", "batch", "held-out acc", "train acc", "disk", "checkpoint"
    );
    let no_labels = RunLabels::default();
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
        let mut marks: Vec<&str> = Vec::new();
        marks.extend(l.pulled.then_some("pulled"));
        marks.extend(l.archived.then_some("archived"));
        let marks = if marks.is_empty() { String::new() } else { format!("  ({})", marks.join(", ")) };
        let tags = if l.tags.is_empty() { String::new() } else { format!("  [{}]", l.tags.join(", ")) };
        let bytes = disk.get(&r.id).filter(|d| d.bytes + d.shared_bytes > 0).map(|d| HumanBytes(d.bytes).to_string());
        let kept = disk.get(&r.id).map_or(CheckpointState::None, |d| d.checkpoint);
        println!(
            "{:>4}  {:<11} {:<24} {:<16} {:>8.1e} {:>6} {:>5}  {:>15}  {:>15} {:>10}  {:<10}{marks}{tags}",
            r.id,
            status,
            truncate(&r.experiment_name, 24),
            truncate(&r.dataset_name, 16),
            r.lr,
            r.epochs,
            r.batch_size,
            acc(r.metrics.heldout_before, r.metrics.heldout_after),
            acc(r.metrics.train_before, r.metrics.train_after),
            bytes.as_deref().unwrap_or("-"),
            kept.to_string(),
        );
    }
    let hidden = if hidden > 0 { format!("; {hidden} archived not shown (--all)") } else { String::new() };
    println!(
        "disk: {} (runs' own files {} + shared files {}){hidden}",
        HumanBytes(usage.total_bytes),
        HumanBytes(usage.total_bytes - usage.blobs_bytes),
        HumanBytes(usage.blobs_bytes)
    );
    Ok(())
}

/// `runs list --json`: each run's record with its sweep, queue place, tags, note, archived and pulled marks and
/// disk use (`disk_bytes`: its own files; `shared_bytes`: files shared with other runs; `checkpoint`: kept,
/// deleted or none) beside it.
fn print_json(runs: &[RunInfo], labels: &BTreeMap<i64, RunLabels>, disk: &HashMap<i64, &RunDisk>) -> Result<()> {
    let mut out = Vec::with_capacity(runs.len());
    for r in runs {
        let mut v = serde_json::to_value(r)?;
        if let (Some(o), Some(l)) = (v.as_object_mut(), labels.get(&r.id)) {
            o.insert("sweep_id".into(), serde_json::json!(l.sweep_id));
            o.insert("queue_position".into(), serde_json::json!(l.queue_position));
            o.insert("tags".into(), serde_json::json!(l.tags));
            o.insert("note".into(), serde_json::json!(l.note));
            o.insert("archived".into(), serde_json::json!(l.archived));
            o.insert("pulled".into(), serde_json::json!(l.pulled));
        }
        if let (Some(o), Some(d)) = (v.as_object_mut(), disk.get(&r.id)) {
            o.insert("disk_bytes".into(), serde_json::json!(d.bytes));
            o.insert("shared_bytes".into(), serde_json::json!(d.shared_bytes));
            o.insert("has_checkpoint".into(), serde_json::json!(d.has_checkpoint));
            o.insert("checkpoint".into(), serde_json::json!(d.checkpoint));
        }
        out.push(v);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
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

/// `export`: writes the run's checkpoint to `out` as a whole Hugging Face folder.
pub fn export(run: i64, out: &Path, ctx: &Ctx) -> Result<()> {
    let store = ctx.open()?;
    runner::export_checkpoint(&store, run, out)?;
    println!("exported run {run} to {}", out.display());
    Ok(())
}
