//! Comparing runs side by side, and exporting checkpoints and reports into a folder the user picks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use experiments::report::analysis::{self, FlipTable, RunData};
use experiments::report::plots::{self, Chart};
use experiments::run::runner;

use super::App;
use crate::views::*;
use crate::{Error, Result};

impl App {
    /// Two or more runs side by side (each run one colour everywhere, in the order given). Works on the cached
    /// runs in place: nothing is copied out of the cache.
    pub fn compare(&self, run_ids: &[i64]) -> Result<CompareView> {
        if run_ids.len() < 2 {
            return Err(Error::Invalid("pick at least two runs to compare".into()));
        }
        let data: Vec<Arc<RunData>> = run_ids.iter().map(|&id| self.run_data(id)).collect::<Result<_>>()?;
        let indexed: Vec<(usize, &RunData)> = data.iter().map(Arc::as_ref).enumerate().collect();
        let mut charts = Vec::new();
        for c in [
            Chart::LossSteps,
            Chart::LossEpochs,
            Chart::Metrics,
            Chart::LabelProbSlope,
            Chart::LabelProbHist,
            Chart::Calibration,
            Chart::Letters,
        ] {
            charts.push(ChartSvg { name: c.name().into(), title: c.title().into(), svg: plots::chart_svg(c, &indexed)? });
        }
        let mut runs = Vec::new();
        {
            let store = self.store();
            for &(i, d) in &indexed {
                let detail = store.run(d.id)?;
                runs.push(CompareRun {
                    info: detail.info,
                    summary: analysis::summarize(d),
                    system: detail.system,
                    colour: plots::palette_hex(i),
                });
            }
        }
        let (a, b) = (indexed[0].1, indexed[1].1);
        let flips = analysis::flips_between_runs(a, b, None);
        let images = self.image_ids(runs[0].info.dataset_id)?;
        let flip_cards = flip_cards(a, b, &flips, &images);
        let diff = analysis::json_diff(&data.iter().map(|d| &d.hyperparameters).collect::<Vec<_>>());
        let series = self.series(run_ids)?;
        let score_charts = indexed.iter().map(|&(_, d)| RunScoreCharts::of(d)).collect();
        Ok(CompareView { runs, charts, diff, flips, flip_cards, series, score_charts })
    }

    /// Asks for a folder and copies the run's checkpoint into `<folder>/cliplab-run-<id>`.
    pub fn export_checkpoint(&self, run_id: i64) -> Result<Option<Exported>> {
        let Some(dir) = self.picker.pick_folder(&format!("Export run {run_id}'s fine-tuned checkpoint into…")) else {
            return Ok(None);
        };
        let out = dir.join(format!("cliplab-run-{run_id}"));
        runner::export_checkpoint(&self.store(), run_id, &out)?;
        Ok(Some(Exported { files: list_files(&out), dir: out }))
    }

    /// Asks for a folder and writes the runs' charts (SVG + PNG) and per-sample CSV into
    /// `<folder>/cliplab-runs-<ids>`.
    pub fn export_report(&self, run_ids: &[i64]) -> Result<Option<Exported>> {
        if run_ids.is_empty() {
            return Err(Error::Invalid("no run to export".into()));
        }
        let Some(dir) = self.picker.pick_folder("Export charts and CSV into…") else {
            return Ok(None);
        };
        let ids: Vec<String> = run_ids.iter().map(i64::to_string).collect();
        let out = dir.join(format!("cliplab-runs-{}", ids.join("-")));
        let report = experiments::report::compare::compare_runs(&self.store(), run_ids, &out)?;
        Ok(Some(Exported { dir: out, files: report.files }))
    }
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// Cards of the first 24 samples gained and the first 24 lost between runs `a` and `b`.
fn flip_cards(a: &RunData, b: &RunData, flips: &FlipTable, images: &HashMap<i64, i64>) -> Vec<FlipCard> {
    let find = |r: &RunData, id: i64| r.samples.iter().find(|s| s.sample_id == id).and_then(|s| s.after.clone());
    let mut cards = Vec::new();
    for (gained, list) in [(true, &flips.gained), (false, &flips.lost)] {
        for f in list.iter().take(24) {
            let Some(s) = a.samples.iter().find(|s| s.sample_id == f.sample_id) else { continue };
            let (Some(pa), Some(pb)) = (find(a, f.sample_id), find(b, f.sample_id)) else { continue };
            cards.push(FlipCard {
                head: SampleHead::of(s, images),
                probs_a: pa,
                probs_b: pb,
                gained,
            });
        }
    }
    cards
}
