//! The distribution of p(right caption): counts in equal bins on [0, 1], one definition for the exported
//! histogram chart and the app's interactive one.

use serde::Serialize;

use super::RunData;
use crate::vocab::{Split, Stage};

/// Number of bins of [`label_prob_hist`].
pub const HIST_BINS: usize = 20;

/// One bin of a [`Histogram`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct HistBin {
    /// Range `[lo, hi)` (the last bin includes 1).
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
}

/// Counts of values in equal bins on [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Histogram {
    pub bins: Vec<HistBin>,
    /// Values counted.
    pub n: usize,
}

impl Histogram {
    /// Each bin's share of the values (0 everywhere without values).
    pub fn shares(&self) -> Vec<f64> {
        let n = self.n.max(1) as f64;
        self.bins.iter().map(|b| b.count as f64 / n).collect()
    }
}

/// `n_bins` equal bins on [0, 1] of `values` (clamped into [0, 1]; 1 goes to the last bin).
pub fn histogram(values: &[f64], n_bins: usize) -> Histogram {
    let n_bins = n_bins.max(1);
    let mut counts = vec![0usize; n_bins];
    for &v in values {
        // v in [0, 1] after the clamp, so the cast is in range.
        let b = ((v.clamp(0.0, 1.0) * n_bins as f64) as usize).min(n_bins - 1);
        if let Some(c) = counts.get_mut(b) {
            *c += 1;
        }
    }
    let bins = counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| HistBin { lo: i as f64 / n_bins as f64, hi: (i + 1) as f64 / n_bins as f64, count })
        .collect();
    Histogram { bins, n: values.len() }
}

/// p(right caption) of a run's samples of `split` at `stage` (those scored at that stage).
pub fn label_probs(run: &RunData, split: Split, stage: Stage) -> Vec<f64> {
    run.samples.iter().filter(|s| s.split == split).filter_map(|s| s.label_prob(stage)).collect()
}

/// [`histogram`] of [`label_probs`] with [`HIST_BINS`] bins.
pub fn label_prob_hist(run: &RunData, split: Split, stage: Stage) -> Histogram {
    histogram(&label_probs(run, split, stage), HIST_BINS)
}
