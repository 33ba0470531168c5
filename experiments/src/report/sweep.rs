//! A sweep's results from the store: the held-out metric of each run against each swept hyperparameter (the
//! sweep chart), beside the runs' overlaid loss curves. What `cliplab compare --sweep` writes.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::report::compare::load_runs;
use crate::report::plots::{self, Chart, SweepData, SweepRunPoint};
use crate::run::store::Store;
use crate::run::sweep::GridAxis;
use crate::Result;

/// What [`compare_sweep`] wrote, and the sweep's runs ranked.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub sweep_id: i64,
    /// Every file written (the sweep chart, then the loss charts, each SVG then PNG).
    pub files: Vec<PathBuf>,
    pub data: SweepData,
    /// The run with the best metric, if any has one.
    pub best_run: Option<i64>,
}

/// The run with the highest finite metric (the first of equals); `None` when no run has one yet.
pub fn best_run(data: &SweepData) -> Option<i64> {
    data.runs
        .iter()
        .filter_map(|r| r.metric.filter(|m| m.is_finite()).map(|m| (r.run_id, m)))
        .fold(None, |b: Option<(i64, f64)>, (id, m)| if b.is_none_or(|(_, bm)| m > bm) { Some((id, m)) } else { b })
        .map(|b| b.0)
}

/// Sweep `id` as the sweep chart shows it: each run's swept values (as typed) and its held-out accuracy after
/// fine-tuning (the train accuracy when the sweep has no held-out split).
pub fn load_sweep_data(store: &Store, id: i64) -> Result<SweepData> {
    let sweep = store.sweep(id)?;
    let grid: Vec<GridAxis> = serde_json::from_value(sweep.grid.clone())?;
    let infos = store.runs()?;
    let points = crate::run::sweep::expand_values(&grid);
    let mut runs = Vec::with_capacity(sweep.run_ids.len());
    let mut any_heldout = false;
    for (k, &run_id) in sweep.run_ids.iter().enumerate() {
        let info = infos.iter().find(|r| r.id == run_id);
        any_heldout |= info.is_some_and(|i| i.metrics.heldout_after.is_some());
        runs.push((run_id, points.get(k).cloned().unwrap_or_default(), info));
    }
    let metric = |i: &crate::run::store::RunInfo| {
        if any_heldout {
            i.metrics.heldout_after.map(|s| s.accuracy)
        } else {
            i.metrics.train_after.map(|s| s.accuracy)
        }
    };
    Ok(SweepData {
        name: sweep.name,
        axes: grid.iter().map(|a| a.key.clone()).collect(),
        metric_name: if any_heldout { "held-out accuracy after" } else { "train accuracy after" }.to_string(),
        runs: runs
            .into_iter()
            .map(|(run_id, values, info)| SweepRunPoint { run_id, values, metric: info.and_then(metric) })
            .collect(),
    })
}

/// Writes the sweep chart of sweep `id` and the loss charts of its runs that recorded losses into `out_dir`
/// (new, empty or an earlier export, replaced whole: see `fsio::publish_export`).
pub fn compare_sweep(store: &Store, id: i64, out_dir: &Path) -> Result<SweepReport> {
    let data = load_sweep_data(store, id)?;
    let ids: Vec<i64> = data.runs.iter().map(|r| r.run_id).collect();
    let runs = load_runs(store, &ids)?;
    // Each run keeps its colour of the sweep chart: its index in the sweep.
    let with_losses: Vec<(usize, &crate::report::analysis::RunData)> =
        runs.iter().enumerate().filter(|(_, r)| !r.step_losses.is_empty()).collect();
    let tmp = crate::fsio::temp_dir_for(out_dir)?;
    let mut written = plots::render_sweep_chart(&data, tmp.path())?;
    if !with_losses.is_empty() {
        written.extend(plots::render_charts(&[Chart::LossSteps, Chart::LossEpochs], &with_losses, tmp.path())?);
    }
    crate::fsio::publish_export(tmp, out_dir)?;
    let files = written.iter().filter_map(|p| p.file_name()).map(|n| out_dir.join(n)).collect();
    let best_run = best_run(&data);
    Ok(SweepReport { sweep_id: id, files, data, best_run })
}
