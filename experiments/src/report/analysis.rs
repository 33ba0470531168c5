//! Analysis of finished runs: plain data in, plain numbers out.
//!
//! Everything here works on [`RunData`] (one run: its hyperparameters, its losses, and for every sample the
//! probabilities of each caption choice before and after fine-tuning), so it does not depend on how runs are
//! stored. [`crate::report::plots`] draws these numbers.
//!
//! - [`label_prob_deltas`]: per sample, how much the probability of the right caption moved.
//! - [`flips_before_after`] / [`flips_between_runs`]: which samples went from right to wrong and back.
//! - [`letter_accuracy`]: accuracy per answer letter A–E, to catch a positional shortcut.
//! - [`summarize`]: mean p(label) and accuracy, before/after × train/held-out.
//! - [`calibration`]: expected calibration error and reliability bins.
//! - [`hyperparameter_diff`]: the hyperparameters that differ between runs.
//! - [`write_samples_csv`]: one CSV row per run × sample.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vocab::{letter, Split, Stage};
use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------------------------

/// One run, everything the charts and the analysis need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunData {
    pub id: i64,
    /// Legend name, e.g. "run 3 · adamw lr 1e-4".
    pub label: String,
    /// Flat-ish JSON object of the run's spec (lr, epochs, batch_size, optimizer, ...), for [`hyperparameter_diff`].
    pub hyperparameters: Value,
    /// `(step, epoch, loss)` of every optimizer step.
    pub step_losses: Vec<(usize, usize, f64)>,
    /// `(epoch, train loss, held-out loss)` at the end of every epoch.
    pub epoch_losses: Vec<(usize, f64, Option<f64>)>,
    /// Every scored sample.
    pub samples: Vec<SampleResult>,
}

/// One sample of one run: its choices and the probabilities the model gave them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SampleResult {
    pub sample_id: i64,
    pub split: Split,
    /// Index of the right choice (0 = A).
    pub label: usize,
    pub choices: Vec<String>,
    pub filename: String,
    /// Probabilities of each choice before fine-tuning (softmax over this image's choices).
    pub before: Option<Vec<f32>>,
    /// ... and after.
    pub after: Option<Vec<f32>>,
}

impl SampleResult {
    /// The probabilities at `stage`.
    pub fn probs(&self, stage: Stage) -> Option<&[f32]> {
        match stage {
            Stage::Before => self.before.as_deref(),
            Stage::After => self.after.as_deref(),
        }
    }

    /// Probability of the right choice at `stage`.
    pub fn label_prob(&self, stage: Stage) -> Option<f64> {
        label_prob(self.probs(stage)?, self.label)
    }

    /// The choice with the highest probability at `stage`.
    pub fn top_choice(&self, stage: Stage) -> Option<usize> {
        top_choice(self.probs(stage)?)
    }

    /// Whether the top choice is the right one at `stage`.
    pub fn correct(&self, stage: Stage) -> Option<bool> {
        self.top_choice(stage).map(|c| c == self.label)
    }

    /// p(label) after − before.
    pub fn delta(&self) -> Option<f64> {
        Some(self.label_prob(Stage::After)? - self.label_prob(Stage::Before)?)
    }
}

/// Probability of choice `label`, if it exists and is a finite number.
pub fn label_prob(probs: &[f32], label: usize) -> Option<f64> {
    probs.get(label).map(|&p| f64::from(p)).filter(|p| p.is_finite())
}

/// Index of the largest probability (the first on ties; NaNs are ignored). `None` when empty or all NaN.
pub fn top_choice(probs: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &p) in probs.iter().enumerate() {
        if p.is_nan() {
            continue;
        }
        match best {
            Some((_, b)) if p <= b => {}
            _ => best = Some((i, p)),
        }
    }
    best.map(|(i, _)| i)
}

fn split_matches(split: Option<Split>, s: Split) -> bool {
    split.is_none_or(|x| x == s)
}

// ---------------------------------------------------------------------------------------------------------------
// Per-sample deltas
// ---------------------------------------------------------------------------------------------------------------

/// How one sample's probability of the right caption moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleDelta {
    pub sample_id: i64,
    pub split: Split,
    pub label: usize,
    pub filename: String,
    pub before: f64,
    pub after: f64,
    /// `after - before`.
    pub delta: f64,
}

/// p(label) after − before for every sample of `run` that has both, in the run's sample order.
pub fn label_prob_deltas(run: &RunData) -> Vec<SampleDelta> {
    run.samples
        .iter()
        .filter_map(|s| {
            let before = s.label_prob(Stage::Before)?;
            let after = s.label_prob(Stage::After)?;
            Some(SampleDelta {
                sample_id: s.sample_id,
                split: s.split,
                label: s.label,
                filename: s.filename.clone(),
                before,
                after,
                delta: after - before,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Flips
// ---------------------------------------------------------------------------------------------------------------

/// One sample that changed from right to wrong or back, between side A and side B.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Flip {
    pub sample_id: i64,
    pub split: Split,
    pub filename: String,
    pub label: usize,
    /// p(label) on side A / side B.
    pub prob_a: f64,
    pub prob_b: f64,
    /// `prob_b - prob_a`.
    pub delta: f64,
    /// Top choice on side A / side B.
    pub choice_a: usize,
    pub choice_b: usize,
}

/// Right/wrong on side A against right/wrong on side B (A = before and B = after of one run, or A = run A's
/// after and B = run B's after).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FlipTable {
    pub right_right: usize,
    pub right_wrong: usize,
    pub wrong_right: usize,
    pub wrong_wrong: usize,
    /// Wrong → right samples, largest gain of p(label) first.
    pub gained: Vec<Flip>,
    /// Right → wrong samples, largest loss of p(label) first.
    pub lost: Vec<Flip>,
    /// Samples left out because a side lacked probabilities (or, between runs, the label differed).
    pub skipped: usize,
}

impl FlipTable {
    /// Samples counted in the 2x2 table.
    pub fn total(&self) -> usize {
        self.right_right + self.right_wrong + self.wrong_right + self.wrong_wrong
    }

    /// Wrong→right minus right→wrong.
    pub fn net(&self) -> i64 {
        self.wrong_right as i64 - self.right_wrong as i64
    }

    /// The 2x2 table as fixed-width text, with `a` and `b` naming the sides.
    pub fn table_text(&self, a: &str, b: &str) -> String {
        let mut s = String::new();
        let w = a.chars().count().max(12);
        let _ = writeln!(s, "{:<w$}  {:>12}  {:>12}", format!("{a} \\ {b}"), "right", "wrong");
        let _ = writeln!(s, "{:<w$}  {:>12}  {:>12}", "right", self.right_right, self.right_wrong);
        let _ = writeln!(s, "{:<w$}  {:>12}  {:>12}", "wrong", self.wrong_right, self.wrong_wrong);
        s
    }

    fn add(&mut self, s: &SampleResult, a: &[f32], b: &[f32]) {
        let (Some(ca), Some(cb), Some(pa), Some(pb)) =
            (top_choice(a), top_choice(b), label_prob(a, s.label), label_prob(b, s.label))
        else {
            self.skipped += 1;
            return;
        };
        let (ra, rb) = (ca == s.label, cb == s.label);
        let flip = || Flip {
            sample_id: s.sample_id,
            split: s.split,
            filename: s.filename.clone(),
            label: s.label,
            prob_a: pa,
            prob_b: pb,
            delta: pb - pa,
            choice_a: ca,
            choice_b: cb,
        };
        match (ra, rb) {
            (true, true) => self.right_right += 1,
            (false, false) => self.wrong_wrong += 1,
            (true, false) => {
                self.right_wrong += 1;
                self.lost.push(flip());
            }
            (false, true) => {
                self.wrong_right += 1;
                self.gained.push(flip());
            }
        }
    }

    fn sort(&mut self) {
        self.gained.sort_by(|x, y| y.delta.total_cmp(&x.delta).then(x.sample_id.cmp(&y.sample_id)));
        self.lost.sort_by(|x, y| x.delta.total_cmp(&y.delta).then(x.sample_id.cmp(&y.sample_id)));
    }
}

/// Flips between before and after fine-tuning of one run (all samples when `split` is `None`).
pub fn flips_before_after(run: &RunData, split: Option<Split>) -> FlipTable {
    let mut t = FlipTable::default();
    for s in run.samples.iter().filter(|s| split_matches(split, s.split)) {
        match (s.before.as_deref(), s.after.as_deref()) {
            (Some(a), Some(b)) => t.add(s, a, b),
            _ => t.skipped += 1,
        }
    }
    t.sort();
    t
}

/// Flips between run `a`'s after and run `b`'s after on the samples both have (matched by `sample_id`; the
/// split filter and the reported split are run `a`'s). Samples whose label differs between the runs are skipped.
pub fn flips_between_runs(a: &RunData, b: &RunData, split: Option<Split>) -> FlipTable {
    let in_b: HashMap<i64, &SampleResult> = b.samples.iter().map(|s| (s.sample_id, s)).collect();
    let mut t = FlipTable::default();
    for sa in a.samples.iter().filter(|s| split_matches(split, s.split)) {
        let Some(sb) = in_b.get(&sa.sample_id) else { continue };
        match (sa.after.as_deref(), sb.after.as_deref()) {
            (Some(pa), Some(pb)) if sa.label == sb.label => t.add(sa, pa, pb),
            _ => t.skipped += 1,
        }
    }
    t.sort();
    t
}

// ---------------------------------------------------------------------------------------------------------------
// Per-letter accuracy
// ---------------------------------------------------------------------------------------------------------------

/// Accuracy of the samples whose right answer is one letter, and how often the model picked that letter.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LetterAccuracy {
    /// Choice index (0 = A).
    pub index: usize,
    pub letter: String,
    /// Samples whose right answer is this letter.
    pub n: usize,
    /// ... of which scored before / after.
    pub n_before: usize,
    pub n_after: usize,
    /// ... of which right before / after.
    pub correct_before: usize,
    pub correct_after: usize,
    /// Samples (any label) whose top choice was this letter, before / after. A model that learnt "always B"
    /// shows up here.
    pub predicted_before: usize,
    pub predicted_after: usize,
}

impl LetterAccuracy {
    pub fn accuracy(&self, stage: Stage) -> Option<f64> {
        let (c, n) = match stage {
            Stage::Before => (self.correct_before, self.n_before),
            Stage::After => (self.correct_after, self.n_after),
        };
        (n > 0).then(|| c as f64 / n as f64)
    }
}

/// Accuracy per answer letter (at least A–E; more when some sample has more choices), for one split or all.
pub fn letter_accuracy(run: &RunData, split: Option<Split>) -> Vec<LetterAccuracy> {
    let samples: Vec<&SampleResult> = run.samples.iter().filter(|s| split_matches(split, s.split)).collect();
    let n_letters = samples.iter().map(|s| s.choices.len().max(s.label + 1)).max().unwrap_or(0).max(5);
    let mut out: Vec<LetterAccuracy> =
        (0..n_letters).map(|i| LetterAccuracy { index: i, letter: letter(i), ..Default::default() }).collect();
    for s in samples {
        if let Some(row) = out.get_mut(s.label) {
            row.n += 1;
        }
        for stage in Stage::ALL {
            let Some(top) = s.top_choice(stage) else { continue };
            if let Some(row) = out.get_mut(s.label) {
                match stage {
                    Stage::Before => {
                        row.n_before += 1;
                        row.correct_before += usize::from(top == s.label);
                    }
                    Stage::After => {
                        row.n_after += 1;
                        row.correct_after += usize::from(top == s.label);
                    }
                }
            }
            if let Some(row) = out.get_mut(top) {
                match stage {
                    Stage::Before => row.predicted_before += 1,
                    Stage::After => row.predicted_after += 1,
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Summary metrics
// ---------------------------------------------------------------------------------------------------------------

/// Mean p(label) and accuracy of one split, before and after.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SplitMetrics {
    /// Samples in the split.
    pub n: usize,
    pub mean_label_prob_before: Option<f64>,
    pub mean_label_prob_after: Option<f64>,
    pub accuracy_before: Option<f64>,
    pub accuracy_after: Option<f64>,
}

impl SplitMetrics {
    pub fn mean_label_prob(&self, stage: Stage) -> Option<f64> {
        match stage {
            Stage::Before => self.mean_label_prob_before,
            Stage::After => self.mean_label_prob_after,
        }
    }

    pub fn accuracy(&self, stage: Stage) -> Option<f64> {
        match stage {
            Stage::Before => self.accuracy_before,
            Stage::After => self.accuracy_after,
        }
    }
}

/// The headline numbers of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RunSummary {
    pub id: i64,
    pub label: String,
    pub train: SplitMetrics,
    pub heldout: SplitMetrics,
    /// Loss of the last epoch.
    pub final_train_loss: Option<f64>,
    pub final_heldout_loss: Option<f64>,
}

impl RunSummary {
    pub fn split(&self, split: Split) -> &SplitMetrics {
        match split {
            Split::Train => &self.train,
            Split::Heldout => &self.heldout,
        }
    }
}

fn mean(sum: f64, n: usize) -> Option<f64> {
    (n > 0).then(|| sum / n as f64)
}

/// Mean p(label) and accuracy of one split (or all samples) of a run.
pub fn split_metrics(run: &RunData, split: Option<Split>) -> SplitMetrics {
    let mut m = SplitMetrics::default();
    // (sum p, n p, correct, n scored) per stage
    let mut acc = [(0.0f64, 0usize, 0usize, 0usize); 2];
    for s in run.samples.iter().filter(|s| split_matches(split, s.split)) {
        m.n += 1;
        for (k, stage) in Stage::ALL.into_iter().enumerate() {
            if let Some(p) = s.label_prob(stage) {
                acc[k].0 += p;
                acc[k].1 += 1;
            }
            if let Some(c) = s.correct(stage) {
                acc[k].2 += usize::from(c);
                acc[k].3 += 1;
            }
        }
    }
    m.mean_label_prob_before = mean(acc[0].0, acc[0].1);
    m.mean_label_prob_after = mean(acc[1].0, acc[1].1);
    m.accuracy_before = mean(acc[0].2 as f64, acc[0].3);
    m.accuracy_after = mean(acc[1].2 as f64, acc[1].3);
    m
}

/// The headline numbers of a run.
pub fn summarize(run: &RunData) -> RunSummary {
    let last = run.epoch_losses.iter().max_by_key(|e| e.0);
    RunSummary {
        id: run.id,
        label: run.label.clone(),
        train: split_metrics(run, Some(Split::Train)),
        heldout: split_metrics(run, Some(Split::Heldout)),
        final_train_loss: last.map(|e| e.1),
        final_heldout_loss: last.and_then(|e| e.2),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Calibration
// ---------------------------------------------------------------------------------------------------------------

/// One bin of top-choice confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ReliabilityBin {
    /// Confidence range `[lo, hi)` (the last bin includes 1).
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    /// Mean top-choice probability of the samples in the bin.
    pub mean_confidence: Option<f64>,
    /// Fraction of them whose top choice is right.
    pub accuracy: Option<f64>,
}

/// Reliability bins and expected calibration error.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Calibration {
    pub bins: Vec<ReliabilityBin>,
    /// Σ (count / n) · |accuracy − mean confidence| over the bins; `None` without samples.
    pub ece: Option<f64>,
    /// Samples counted.
    pub n: usize,
}

/// Number of bins of [`run_calibration`].
pub const CALIBRATION_BINS: usize = 10;

/// Reliability bins (`n_bins` equal bins of top-choice confidence on [0, 1]) and ECE of `(probs, label)` pairs.
pub fn calibration<'a>(items: impl IntoIterator<Item = (&'a [f32], usize)>, n_bins: usize) -> Calibration {
    let n_bins = n_bins.max(1);
    // (sum confidence, correct, count)
    let mut acc = vec![(0.0f64, 0usize, 0usize); n_bins];
    let mut n = 0usize;
    for (probs, label) in items {
        let Some(top) = top_choice(probs) else { continue };
        let Some(conf) = label_prob(probs, top) else { continue };
        let conf = conf.clamp(0.0, 1.0);
        // conf in [0, 1], so the cast is in range; 1.0 goes to the last bin. The nudge keeps an f32 0.7 (=
        // 0.699999988) in the 0.7 bin.
        let b = ((conf * n_bins as f64 + 1e-6) as usize).min(n_bins - 1);
        if let Some(bin) = acc.get_mut(b) {
            bin.0 += conf;
            bin.1 += usize::from(top == label);
            bin.2 += 1;
            n += 1;
        }
    }
    let bins: Vec<ReliabilityBin> = acc
        .iter()
        .enumerate()
        .map(|(i, &(sum, correct, count))| ReliabilityBin {
            lo: i as f64 / n_bins as f64,
            hi: (i + 1) as f64 / n_bins as f64,
            count,
            mean_confidence: mean(sum, count),
            accuracy: mean(correct as f64, count),
        })
        .collect();
    let ece = (n > 0).then(|| {
        bins.iter().filter_map(|b| Some(b.count as f64 / n as f64 * (b.accuracy? - b.mean_confidence?).abs())).sum()
    });
    Calibration { bins, ece, n }
}

/// [`calibration`] of a run's samples at `stage`, one split or all, with [`CALIBRATION_BINS`] bins.
pub fn run_calibration(run: &RunData, stage: Stage, split: Option<Split>) -> Calibration {
    calibration(
        run.samples.iter().filter(|s| split_matches(split, s.split)).filter_map(|s| Some((s.probs(stage)?, s.label))),
        CALIBRATION_BINS,
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Hyperparameter diff
// ---------------------------------------------------------------------------------------------------------------

/// Flattens nested JSON objects into dotted keys (`{"train": {"lr": 1}}` → `train.lr`). Arrays and scalars are
/// leaves; a non-object at the top level is the single key `""`.
pub fn flatten_json(v: &Value) -> BTreeMap<String, Value> {
    fn go(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
                for (k, x) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    go(&key, x, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    go("", v, &mut out);
    out
}

/// Equal as hyperparameters: numbers compare by value (`1` equals `1.0`, `1e-4` equals `0.0001`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// One hyperparameter whose value differs between runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ParamDiff {
    /// Dotted key.
    pub key: String,
    /// Its value in each run, in order; `None` where the run lacks the key.
    pub values: Vec<Option<Value>>,
}

/// The keys (flattened, dotted) whose values are not the same in all of `specs`, sorted by key. A key missing
/// from some runs differs.
pub fn json_diff(specs: &[&Value]) -> Vec<ParamDiff> {
    let flat: Vec<BTreeMap<String, Value>> = specs.iter().map(|v| flatten_json(v)).collect();
    let mut keys: Vec<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let values: Vec<Option<Value>> = flat.iter().map(|m| m.get(key).cloned()).collect();
            let first = values.first()?;
            let all_same = values.iter().all(|v| match (first, v) {
                (Some(a), Some(b)) => same_value(a, b),
                (None, None) => true,
                _ => false,
            });
            (!all_same).then(|| ParamDiff { key: key.clone(), values })
        })
        .collect()
}

/// [`json_diff`] of the runs' hyperparameters.
pub fn hyperparameter_diff(runs: &[RunData]) -> Vec<ParamDiff> {
    json_diff(&runs.iter().map(|r| &r.hyperparameters).collect::<Vec<_>>())
}

/// A JSON value as a short cell: strings without quotes, `—` for a missing key.
pub fn format_value(v: Option<&Value>) -> String {
    match v {
        None => "—".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) => "null".to_string(),
        Some(other) => other.to_string(),
    }
}

/// The differing hyperparameters as a fixed-width text table: one row per key, one column per run.
pub fn hyperparameter_diff_table(runs: &[RunData]) -> String {
    let diff = hyperparameter_diff(runs);
    if runs.len() < 2 {
        return "(need two or more runs to compare)\n".to_string();
    }
    if diff.is_empty() {
        return "(all hyperparameters are the same)\n".to_string();
    }
    let mut cols: Vec<Vec<String>> = Vec::with_capacity(runs.len() + 1);
    let mut key_col = vec!["key".to_string()];
    key_col.extend(diff.iter().map(|d| d.key.clone()));
    cols.push(key_col);
    for (i, r) in runs.iter().enumerate() {
        let mut col = vec![format!("run {}", r.id)];
        col.extend(diff.iter().map(|d| format_value(d.values.get(i).and_then(|v| v.as_ref()))));
        cols.push(col);
    }
    let widths: Vec<usize> =
        cols.iter().map(|c| c.iter().map(|s| s.chars().count()).max().unwrap_or(0).min(40)).collect();
    let mut out = String::new();
    for row in 0..=diff.len() {
        let line: Vec<String> =
            cols.iter().zip(&widths).map(|(c, &w)| pad(c.get(row).map_or("", |s| s.as_str()), w)).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// `s` cut to `width` characters (ending in `…` when cut) and padded with spaces to `width`.
pub(crate) fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n > width {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------------------------------

/// The fixed columns of [`write_samples_csv`]; then `p_before_A`, `p_before_B`, ... and `p_after_A`, ...
pub const CSV_COLUMNS: [&str; 14] = [
    "run",
    "run_label",
    "sample_id",
    "split",
    "filename",
    "label",
    "p_label_before",
    "p_label_after",
    "delta",
    "top_before",
    "top_after",
    "correct_before",
    "correct_after",
    "n_choices",
];

fn csv_err(path: &Path, e: csv::Error) -> Error {
    if e.is_io_error() {
        if let csv::ErrorKind::Io(io) = e.into_kind() {
            return Error::io(path, io);
        }
        return Error::Invalid(format!("{}: cannot write CSV", path.display()));
    }
    Error::Invalid(format!("{}: cannot write CSV: {e}", path.display()))
}

fn num(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| format!("{x:.6}"))
}

/// Writes one row per run × sample: the run, the sample, its label letter, p(label) before/after and the delta,
/// the top choice (letter) and whether it is right before/after, then the probability of every choice before and
/// after (as many columns as the sample with the most choices needs; empty where a sample has fewer or was not
/// scored). Header: [`CSV_COLUMNS`] then `p_before_A..`, `p_after_A..`.
pub fn write_samples_csv(path: &Path, runs: &[RunData]) -> Result<()> {
    let max_choices = runs
        .iter()
        .flat_map(|r| &r.samples)
        .map(|s| s.choices.len().max(s.before.as_ref().map_or(0, Vec::len)).max(s.after.as_ref().map_or(0, Vec::len)))
        .max()
        .unwrap_or(0);
    let mut w = csv::Writer::from_path(path).map_err(|e| csv_err(path, e))?;
    let mut header: Vec<String> = CSV_COLUMNS.iter().map(|s| s.to_string()).collect();
    for stage in Stage::ALL {
        header.extend((0..max_choices).map(|i| format!("p_{}_{}", stage.as_str(), letter(i))));
    }
    w.write_record(&header).map_err(|e| csv_err(path, e))?;
    let yes_no = |b: Option<bool>| b.map_or(String::new(), |b| u8::from(b).to_string());
    for r in runs {
        for s in &r.samples {
            let mut row: Vec<String> = vec![
                r.id.to_string(),
                r.label.clone(),
                s.sample_id.to_string(),
                s.split.as_str().to_string(),
                s.filename.clone(),
                letter(s.label),
                num(s.label_prob(Stage::Before)),
                num(s.label_prob(Stage::After)),
                num(s.delta()),
                s.top_choice(Stage::Before).map(letter).unwrap_or_default(),
                s.top_choice(Stage::After).map(letter).unwrap_or_default(),
                yes_no(s.correct(Stage::Before)),
                yes_no(s.correct(Stage::After)),
                s.choices.len().to_string(),
            ];
            for stage in Stage::ALL {
                let probs = s.probs(stage).unwrap_or(&[]);
                row.extend((0..max_choices).map(|i| num(probs.get(i).map(|&p| f64::from(p)))));
            }
            w.write_record(&row).map_err(|e| csv_err(path, e))?;
        }
    }
    w.flush().map_err(|e| Error::io(path, e))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(id: i64, split: Split, label: usize, before: &[f32], after: &[f32]) -> SampleResult {
        SampleResult {
            sample_id: id,
            split,
            label,
            choices: (0..before.len().max(after.len())).map(|i| format!("caption {i}")).collect(),
            filename: format!("img{id}.jpg"),
            before: (!before.is_empty()).then(|| before.to_vec()),
            after: (!after.is_empty()).then(|| after.to_vec()),
        }
    }

    fn run(id: i64, samples: Vec<SampleResult>) -> RunData {
        RunData { id, label: format!("run {id}"), samples, ..Default::default() }
    }

    #[test]
    fn top_choice_and_label_prob() {
        assert_eq!(top_choice(&[0.1, 0.5, 0.4]), Some(1));
        assert_eq!(top_choice(&[0.5, 0.5]), Some(0));
        assert_eq!(top_choice(&[f32::NAN, 0.2]), Some(1));
        assert_eq!(top_choice(&[]), None);
        assert_eq!(label_prob(&[0.25, 0.75], 1), Some(0.75));
        assert_eq!(label_prob(&[0.25], 3), None);
        assert_eq!(letter(0), "A");
        assert_eq!(letter(4), "E");
        assert_eq!(letter(26), "#27");
    }

    #[test]
    fn split_parse_and_serde() {
        assert_eq!(Split::parse("Held-Out"), Some(Split::Heldout));
        assert_eq!(Split::parse("train"), Some(Split::Train));
        assert_eq!(Split::parse("x"), None);
        let s: Split = serde_json::from_str("\"held-out\"").expect("alias");
        assert_eq!(s, Split::Heldout);
        assert_eq!(serde_json::to_string(&Split::Heldout).expect("ser"), "\"heldout\"");
    }

    #[test]
    fn deltas() {
        let r = run(
            1,
            vec![sample(1, Split::Train, 0, &[0.2, 0.8], &[0.7, 0.3]), sample(2, Split::Train, 1, &[0.2, 0.8], &[])],
        );
        let d = label_prob_deltas(&r);
        assert_eq!(d.len(), 1);
        assert!((d[0].delta - 0.5).abs() < 1e-6);
    }

    #[test]
    fn flips_two_by_two() {
        // label 0 everywhere; "R" = top is 0.
        let r = [0.9f32, 0.1];
        let w = [0.1f32, 0.9];
        let run_a = run(
            1,
            vec![
                sample(1, Split::Train, 0, &r, &r),            // right→right
                sample(2, Split::Train, 0, &r, &w),            // right→wrong
                sample(3, Split::Train, 0, &w, &[0.6, 0.4]),   // wrong→right, gain 0.5
                sample(4, Split::Train, 0, &w, &[0.95, 0.05]), // wrong→right, gain 0.85
                sample(5, Split::Heldout, 0, &w, &w),          // wrong→wrong
                sample(6, Split::Heldout, 0, &r, &[]),         // skipped
            ],
        );
        let t = flips_before_after(&run_a, None);
        assert_eq!((t.right_right, t.right_wrong, t.wrong_right, t.wrong_wrong), (1, 1, 2, 1));
        assert_eq!(t.skipped, 1);
        assert_eq!(t.gained.iter().map(|f| f.sample_id).collect::<Vec<_>>(), vec![4, 3]);
        assert_eq!(t.lost.len(), 1);
        assert_eq!(t.net(), 1);
        let tt = flips_before_after(&run_a, Some(Split::Train));
        assert_eq!(tt.total(), 4);

        let run_b = run(
            2,
            vec![
                sample(1, Split::Train, 0, &r, &w),  // A after right → B after wrong
                sample(3, Split::Train, 0, &w, &w),  // right → wrong
                sample(5, Split::Train, 0, &w, &r),  // wrong → right
                sample(99, Split::Train, 0, &w, &r), // not in A
            ],
        );
        let t = flips_between_runs(&run_a, &run_b, None);
        assert_eq!((t.right_right, t.right_wrong, t.wrong_right, t.wrong_wrong), (0, 2, 1, 0));
        // Largest loss first: sample 1 lost 0.8, sample 3 lost 0.5.
        assert_eq!(t.lost.iter().map(|f| f.sample_id).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn letters() {
        let r = run(
            1,
            vec![
                sample(1, Split::Train, 0, &[0.9, 0.1, 0.0], &[0.1, 0.9, 0.0]),
                sample(2, Split::Train, 1, &[0.9, 0.1, 0.0], &[0.1, 0.9, 0.0]),
                sample(3, Split::Heldout, 1, &[0.1, 0.9, 0.0], &[0.1, 0.9, 0.0]),
            ],
        );
        let l = letter_accuracy(&r, Some(Split::Train));
        assert_eq!(l.len(), 5);
        assert_eq!(l[0].accuracy(Stage::Before), Some(1.0));
        assert_eq!(l[0].accuracy(Stage::After), Some(0.0));
        assert_eq!(l[1].accuracy(Stage::Before), Some(0.0));
        assert_eq!(l[1].accuracy(Stage::After), Some(1.0));
        assert_eq!(l[1].predicted_after, 2);
        assert_eq!(l[2].accuracy(Stage::After), None);
        let all = letter_accuracy(&r, None);
        assert_eq!(all[1].n, 2);
    }

    #[test]
    fn summary() {
        let r = run(
            1,
            vec![
                sample(1, Split::Train, 0, &[0.4, 0.6], &[0.8, 0.2]),
                sample(2, Split::Train, 0, &[0.6, 0.4], &[0.6, 0.4]),
                sample(3, Split::Heldout, 1, &[0.5, 0.5], &[0.3, 0.7]),
            ],
        );
        let s = summarize(&r);
        assert_eq!(s.train.n, 2);
        assert!((s.train.mean_label_prob_before.unwrap_or(0.0) - 0.5).abs() < 1e-6);
        assert!((s.train.mean_label_prob_after.unwrap_or(0.0) - 0.7).abs() < 1e-6);
        assert_eq!(s.train.accuracy_before, Some(0.5));
        assert_eq!(s.train.accuracy_after, Some(1.0));
        assert_eq!(s.heldout.accuracy_before, Some(0.0)); // tie → first choice (A), label is B
        assert_eq!(s.heldout.accuracy_after, Some(1.0));
    }

    #[test]
    fn ece() {
        // Perfectly calibrated: in the 0.8 bin, 8 of 10 right; in the 0.6 bin, 3 of 5 right.
        let mut items: Vec<(Vec<f32>, usize)> = Vec::new();
        for i in 0..10 {
            items.push((vec![0.8, 0.2], usize::from(i >= 8)));
        }
        for i in 0..5 {
            items.push((vec![0.6, 0.4], usize::from(i >= 3)));
        }
        let c = calibration(items.iter().map(|(p, l)| (p.as_slice(), *l)), 10);
        assert_eq!(c.n, 15);
        assert!(c.ece.unwrap_or(1.0) < 1e-6, "{:?}", c.ece);
        assert_eq!(c.bins[8].count, 10);
        assert_eq!(c.bins[6].count, 5);
        // Always right at confidence 0.6 → ECE 0.4.
        let c = calibration(std::iter::repeat_n((&[0.6f32, 0.4][..], 0usize), 4), 10);
        assert!((c.ece.unwrap_or(0.0) - 0.4).abs() < 1e-6);
        // Confidence 1.0 goes to the last bin.
        let c = calibration([(&[1.0f32, 0.0][..], 0usize)], 10);
        assert_eq!(c.bins[9].count, 1);
        assert_eq!(calibration(std::iter::empty(), 10).ece, None);
    }

    #[test]
    fn diff() {
        let a = json!({"lr": 1e-4, "epochs": 5, "optimizer": "adamw", "freeze": {"vision": true, "text": false}});
        let b = json!({"lr": 0.0001, "epochs": 5.0, "optimizer": "adam", "freeze": {"vision": true, "text": true}, "seed": 1});
        let d = json_diff(&[&a, &b]);
        let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, vec!["freeze.text", "optimizer", "seed"]);
        assert_eq!(d[2].values, vec![None, Some(json!(1))]);
        assert!(json_diff(&[&a]).is_empty());
        let flat = flatten_json(&a);
        assert!(flat.contains_key("freeze.vision"));
    }

    #[test]
    fn pad_cuts() {
        assert_eq!(pad("abc", 5), "abc  ");
        assert_eq!(pad("abcdef", 4), "abc…");
    }
}
