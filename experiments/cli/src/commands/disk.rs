//! Disk use of runs: `cliplab gc` and `cliplab runs delete-checkpoint`.

use anyhow::Result;
use experiments::run::checkpoint;
use indicatif::HumanBytes;

use super::Ctx;

/// `gc`: says what it would free (checkpoints over a keep_best, unused shared files); with `--yes`, frees it.
pub fn gc(yes: bool, ctx: &Ctx, json: bool) -> Result<()> {
    let mut store = ctx.open()?;
    let before = checkpoint::disk_usage(&store, &ctx.home)?;
    let report = checkpoint::gc(&mut store, &ctx.home, yes)?;
    if json {
        let v = serde_json::json!({
            "report": report,
            "total_bytes_before": before.total_bytes,
            "blobs_bytes_before": before.blobs_bytes,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for c in &report.checkpoints {
        let (run, bytes, path) = (c.run_id, HumanBytes(c.bytes), c.path.display());
        println!("run {run}: checkpoint not among its group's keep_best ({bytes}): {path}");
    }
    for b in &report.blobs {
        println!("unused shared file ({}): {}", HumanBytes(b.bytes), b.path.display());
    }
    let (n, m) = (report.checkpoints.len(), report.blobs.len());
    let (freed, in_use) = (HumanBytes(report.bytes), HumanBytes(before.total_bytes));
    let what = format!("{freed} ({n} checkpoints, {m} shared files) of {in_use} in use");
    if report.applied {
        println!("freed {what}");
    } else if report.bytes == 0 {
        println!("nothing to free ({} in use)", HumanBytes(before.total_bytes));
    } else {
        println!("would free {what}; add --yes to free it");
    }
    Ok(())
}

/// `runs delete-checkpoint`: removes the run's checkpoint folder; its records stay.
pub fn delete_checkpoint(run: i64, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open()?;
    let freed = checkpoint::delete_checkpoint(&mut store, run)?;
    println!("run {run}: checkpoint deleted ({} freed): {}", HumanBytes(freed.bytes), freed.path.display());
    Ok(())
}
