//! From the store to the analysis and the charts: what `cliplab compare` / `cliplab plot` and the GUI's compare
//! view use.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::report::analysis::{self, FlipTable, RunData, SampleResult};
use crate::report::labels::{labels_by_difference, LabelInput};
use crate::report::plots;
use crate::run::store::{self, Store};
use crate::vocab::Stage;
use crate::{Error, Result};

/// A run's legend name: `run 3 · adamw lr 1e-4`.
pub fn run_label(info: &store::RunInfo) -> String {
    format!("run {} · {} lr {:e}", info.id, info.optimizer, info.lr)
}

/// Everything the analysis and the charts need about one run, read from the store. Samples come in the run's
/// order: its train samples, then its held-out samples, then any other scored sample.
pub fn load_run_data(store: &Store, run_id: i64) -> Result<RunData> {
    let detail = store.run(run_id)?;
    let samples: HashMap<i64, store::StoredSample> =
        store.dataset_samples(detail.info.dataset_id)?.into_iter().map(|s| (s.id, s)).collect();
    // Sort key (list, position): the run's train list is 0, its held-out list 1, any other sample 2.
    let position: HashMap<i64, (usize, usize)> = [&detail.train_ids, &detail.heldout_ids]
        .into_iter()
        .enumerate()
        .flat_map(|(list, ids)| ids.iter().enumerate().map(move |(i, id)| (*id, (list, i))))
        .collect();
    let mut by_sample: BTreeMap<(usize, usize, i64), SampleResult> = BTreeMap::new();
    for sc in store.run_scores(run_id)? {
        let Some(s) = samples.get(&sc.sample_id) else { continue };
        let (list, pos) = position.get(&sc.sample_id).copied().unwrap_or((2, 0));
        let entry = by_sample.entry((list, pos, sc.sample_id)).or_insert_with(|| SampleResult {
            sample_id: sc.sample_id,
            split: sc.split,
            label: s.label,
            choices: s.choices.clone(),
            filename: s.filename.clone(),
            before: None,
            after: None,
        });
        match sc.phase {
            Stage::Before => entry.before = Some(sc.probs),
            Stage::After => entry.after = Some(sc.probs),
        }
    }
    Ok(RunData {
        id: run_id,
        label: run_label(&detail.info),
        hyperparameters: run_hyperparameters(&detail)?,
        step_losses: detail.step_losses.iter().map(|s| (s.step, s.epoch, s.loss)).collect(),
        epoch_losses: detail.epoch_losses.iter().map(|e| (e.epoch, e.train_loss, e.heldout_loss)).collect(),
        samples: by_sample.into_values().collect(),
    })
}

/// A run's hyperparameters as compared between runs: its spec without the notes, plus the device it ran on.
/// `cliplab compare`, the app and `cliplab view` diff these.
pub fn run_hyperparameters(detail: &store::RunDetail) -> Result<serde_json::Value> {
    let mut hyper = serde_json::to_value(&detail.spec)?;
    if let Some(o) = hyper.as_object_mut() {
        o.remove("notes");
        o.insert("device".into(), serde_json::json!(detail.info.device));
    }
    Ok(hyper)
}

/// Loads several runs, in the order given, labelled by what differs between them and their tags
/// ([`crate::report::labels`]); a run nothing tells apart keeps [`run_label`].
pub fn load_runs(store: &Store, ids: &[i64]) -> Result<Vec<RunData>> {
    let mut runs: Vec<RunData> = ids.iter().map(|&id| load_run_data(store, id)).collect::<Result<_>>()?;
    let labels = difference_labels(store, &runs)?;
    for (r, label) in runs.iter_mut().zip(labels) {
        if let Some(l) = label {
            r.label = l;
        }
    }
    Ok(runs)
}

/// The labels of `runs` shown together, by what differs between them (see [`crate::report::labels`]), with
/// their tags from the store; `None` for a run nothing tells apart.
pub fn difference_labels(store: &Store, runs: &[RunData]) -> Result<Vec<Option<String>>> {
    let tags = store.run_labels()?;
    let none = Vec::new();
    let inputs: Vec<LabelInput<'_>> = runs
        .iter()
        .map(|r| LabelInput {
            id: r.id,
            hyperparameters: &r.hyperparameters,
            tags: tags.get(&r.id).map_or(&none, |l| &l.tags),
        })
        .collect();
    Ok(labels_by_difference(&inputs))
}

/// What `compare_runs` wrote and the text it prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareReport {
    /// Every chart file (SVG and PNG) and the CSV.
    pub files: Vec<PathBuf>,
    /// Mean label probability and accuracy, before and after, train and held-out, per run.
    pub summary: String,
    /// Hyperparameters that differ between the runs (empty for one run).
    pub hyperparameter_diff: String,
    /// Flips: before → after for one run; between the first two runs' after-scores otherwise.
    pub flips: String,
    /// Accuracy per answer letter (A–E) before/after, per run.
    pub letters: String,
    /// Each run's speed and peak memory and the machine it ran on, where it measured them.
    pub system: String,
}

/// Renders the charts (SVG + PNG) and the per-sample CSV of `ids` into `out_dir`, and the text summaries.
/// `out_dir` must be new, empty or an earlier export (replaced whole); a folder holding other files is refused.
/// One run: its own charts; several: the comparison charts (each run one colour everywhere).
pub fn compare_runs(store: &Store, ids: &[i64], out_dir: &Path) -> Result<CompareReport> {
    if ids.is_empty() {
        return Err(Error::Invalid("name at least one run".into()));
    }
    let runs = load_runs(store, ids)?;
    // Written into a fresh temporary folder, then published as `out_dir` (see `fsio::publish_export`): a folder
    // with files CLIP Lab did not write is refused, never overwritten.
    let tmp = crate::fsio::temp_dir_for(out_dir)?;
    let mut written = match runs.as_slice() {
        [one] => plots::render_run_charts(one, 0, tmp.path())?,
        _ => plots::render_comparison(&runs, tmp.path())?,
    };
    let csv = tmp.path().join("samples.csv");
    analysis::write_samples_csv(&csv, &runs)?;
    written.push(csv);
    crate::fsio::publish_export(tmp, out_dir)?;
    // Where they are now, in the order they were written (each chart's SVG then PNG, then the CSV).
    let files = written.iter().filter_map(|p| p.file_name()).map(|n| out_dir.join(n)).collect();
    let flips = match runs.as_slice() {
        [one] => flips_text(
            &format!("flips before → after ({}):", one.label),
            &analysis::flips_before_after(one, None),
            "before",
            "after",
        ),
        [a, b, ..] => flips_text(
            &format!("flips between {} and {} (after fine-tuning):", a.label, b.label),
            &analysis::flips_between_runs(a, b, None),
            &format!("run {}", a.id),
            &format!("run {}", b.id),
        ),
        [] => String::new(),
    };
    Ok(CompareReport {
        files,
        summary: plots::summary_table(&runs),
        hyperparameter_diff: if runs.len() > 1 { analysis::hyperparameter_diff_table(&runs) } else { String::new() },
        flips,
        letters: letters_text(&runs),
        system: system_text(store, &runs)?,
    })
}

/// One line per run: its training step, training and scoring speed, peak memory and machine (`-` where the run
/// did not measure it: runs from before CLIP Lab measured them, runs pulled from MLflow).
fn system_text(store: &Store, runs: &[RunData]) -> Result<String> {
    let f = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    let mut s = format!("{:<30} {:>10} {:>11} {:>11} {:>9}  machine\n", "run", "step (s)", "train img/s", "score img/s", "peak MiB");
    for r in runs {
        let name = if r.label.is_empty() { format!("run {}", r.id) } else { r.label.clone() };
        let line = match store.run_system(r.id)? {
            Some(m) => format!(
                "{:<30} {:>10} {:>11} {:>11} {:>9}  {} ({} threads), {}",
                name,
                f(m.train_step_s, 3),
                f(m.train_images_per_s, 1),
                f(m.score_images_per_s, 1),
                f(m.peak_rss_mib, 0),
                m.machine.cpu,
                m.machine.threads,
                m.machine.device
            ),
            None => format!("{name:<30} {:>10} {:>11} {:>11} {:>9}  not measured", "-", "-", "-", "-"),
        };
        s.push_str(line.trim_end());
        s.push('\n');
    }
    Ok(s)
}

/// A flip table under `title`, then the five largest gains and losses.
fn flips_text(title: &str, t: &FlipTable, a: &str, b: &str) -> String {
    let mut s = format!("{title}\n{}", t.table_text(a, b));
    for (what, list) in [("largest gains", &t.gained), ("largest losses", &t.lost)] {
        if !list.is_empty() {
            s.push_str(&format!("{what} (wrong→right / right→wrong):\n"));
            for f in list.iter().take(5) {
                s.push_str(&format!(
                    "  sample {:>6}  {:<24} p(label) {:.3} → {:.3}\n",
                    f.sample_id, f.filename, f.prob_a, f.prob_b
                ));
            }
        }
    }
    s
}

/// Accuracy per answer letter before/after, one block per run.
fn letters_text(runs: &[RunData]) -> String {
    let pct =
        |c: usize, n: usize| if n == 0 { "-".to_string() } else { format!("{:.0}%", 100.0 * c as f64 / n as f64) };
    let mut s = String::new();
    for r in runs {
        s.push_str(&format!("{}\n  letter     n   acc before  acc after\n", r.label));
        for l in analysis::letter_accuracy(r, None) {
            s.push_str(&format!(
                "  {:>6} {:>5} {:>12} {:>10}\n",
                l.letter,
                l.n,
                pct(l.correct_before, l.n_before),
                pct(l.correct_after, l.n_after)
            ));
        }
    }
    s
}
