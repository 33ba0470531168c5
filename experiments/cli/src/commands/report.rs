//! `cliplab compare` (runs, or `--sweep`) and `cliplab plot` (a comparison of one run).

use std::path::Path;

use anyhow::Result;

use super::Ctx;

/// `compare --sweep`: writes the sweep chart and its runs' loss curves to `out` and prints each run's metric.
pub fn compare_sweep(sweep: i64, out: &Path, ctx: &Ctx, json: bool) -> Result<()> {
    let store = ctx.open()?;
    let r = experiments::report::sweep::compare_sweep(&store, sweep, out)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("sweep {} `{}`: {}", sweep, r.data.name, r.data.metric_name);
    println!("{:>4}  {:<40} {:>8}", "run", r.data.axes.join(" "), "metric");
    for p in &r.data.runs {
        let m = p.metric.map_or("-".to_string(), |m| format!("{:.1}%", 100.0 * m));
        let best = if r.best_run == Some(p.run_id) { "  best" } else { "" };
        println!("{:>4}  {:<40} {:>8}{best}", p.run_id, p.values.join(" "), m);
    }
    println!("wrote {} files to {}", r.files.len(), out.display());
    Ok(())
}

/// Writes the charts, CSV and summary of `runs` to `out` and prints the summary (or all of it as JSON).
pub fn compare(runs: &[i64], out: &Path, ctx: &Ctx, json: bool) -> Result<()> {
    let store = ctx.open()?;
    let r = experiments::report::compare::compare_runs(&store, runs, out)?;
    tracing::info!(?runs, files = r.files.len(), out = %out.display(), "comparison written");
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("{}", r.summary);
    if !r.hyperparameter_diff.is_empty() {
        println!("hyperparameters that differ:\n{}", r.hyperparameter_diff);
    }
    println!("{}", r.flips);
    println!("accuracy per answer letter:\n{}", r.letters);
    println!("speed and memory:\n{}", r.system);
    println!("wrote {} files to {}", r.files.len(), out.display());
    Ok(())
}
