//! Calibration: reliability bins of top-choice confidence and the expected calibration error.

use serde::Serialize;

use super::{label_prob, mean, split_matches, top_choice, RunData};
use crate::vocab::{Split, Stage};

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
