//! `cliplab compare` and `cliplab plot` (a comparison of one run).

use std::path::Path;

use anyhow::Result;

use super::Ctx;

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
    println!("wrote {} files to {}", r.files.len(), out.display());
    Ok(())
}
