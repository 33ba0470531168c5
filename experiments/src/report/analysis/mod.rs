//! Analysis of finished runs: plain data in, plain numbers out.
//!
//! Everything here works on [`RunData`] (one run: its hyperparameters, its losses, and for every sample the
//! probabilities of each caption choice before and after fine-tuning), so it does not depend on how runs are
//! stored. [`crate::report::plots`] draws these numbers. By concern:
//!
//! - `deltas`: per sample, how much the probability of the right caption moved ([`label_prob_deltas`]; the
//!   samples a slope chart draws, [`slope_subset`]), and
//!   which samples went from right to wrong and back ([`flips_before_after`] / [`flips_between_runs`]).
//! - `metrics`: accuracy per answer letter A–E, to catch a positional shortcut ([`letter_accuracy`]), beside the
//!   accuracy of guessing ([`chance_level`]); mean
//!   p(label) and accuracy, before/after × train/held-out ([`split_metrics`], [`summarize`]).
//! - `calibration`: expected calibration error and reliability bins ([`calibration`], [`run_calibration`]).
//! - `hist`: the distribution of p(right caption) in equal bins ([`histogram`], [`label_prob_hist`]).
//! - `params`: the hyperparameters that differ between runs ([`hyperparameter_diff`]).
//! - `samples_csv`: one CSV row per run × sample ([`write_samples_csv`]).

mod calibration;
mod deltas;
mod hist;
mod metrics;
mod params;
mod samples_csv;
#[cfg(test)]
mod tests;

pub use calibration::{calibration, run_calibration, Calibration, ReliabilityBin, CALIBRATION_BINS};
pub use deltas::{
    flips_before_after, flips_between_runs, label_prob_deltas, slope_subset, Flip, FlipTable, SampleDelta,
};
pub use hist::{histogram, label_prob_hist, label_probs, HistBin, Histogram, HIST_BINS};
pub use metrics::{
    chance_level, letter_accuracy, split_metrics, summarize, LetterAccuracy, RunSummary, SplitMetrics,
};
pub(crate) use params::pad;
pub use params::{flatten_json, format_value, hyperparameter_diff, hyperparameter_diff_table, json_diff, ParamDiff};
pub use samples_csv::{write_samples_csv, CSV_COLUMNS};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::vocab::{Split, Stage};

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

/// `sum / n`, or `None` when `n` is 0.
fn mean(sum: f64, n: usize) -> Option<f64> {
    (n > 0).then(|| sum / n as f64)
}
