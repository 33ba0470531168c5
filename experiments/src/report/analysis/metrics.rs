//! Headline numbers: accuracy per answer letter ([`letter_accuracy`]), the accuracy of guessing
//! ([`chance_level`]) and mean p(label) and accuracy per split, before and after ([`split_metrics`],
//! [`summarize`]).

use serde::Serialize;

use super::{mean, split_matches, RunData, SampleResult};
use crate::vocab::{letter, Split, Stage};

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

/// The counters of one stage of a [`LetterAccuracy`]: scored, right, predicted.
struct StageCounts<'a> {
    n: &'a mut usize,
    correct: &'a mut usize,
    predicted: &'a mut usize,
}

impl LetterAccuracy {
    pub fn accuracy(&self, stage: Stage) -> Option<f64> {
        let (c, n) = match stage {
            Stage::Before => (self.correct_before, self.n_before),
            Stage::After => (self.correct_after, self.n_after),
        };
        (n > 0).then(|| c as f64 / n as f64)
    }

    fn at(&mut self, stage: Stage) -> StageCounts<'_> {
        match stage {
            Stage::Before => StageCounts {
                n: &mut self.n_before,
                correct: &mut self.correct_before,
                predicted: &mut self.predicted_before,
            },
            Stage::After => StageCounts {
                n: &mut self.n_after,
                correct: &mut self.correct_after,
                predicted: &mut self.predicted_after,
            },
        }
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
                let at = row.at(stage);
                *at.n += 1;
                *at.correct += usize::from(top == s.label);
            }
            if let Some(row) = out.get_mut(top) {
                *row.at(stage).predicted += 1;
            }
        }
    }
    out
}

/// The accuracy of guessing over `samples`: the mean of 1 / (number of choices) (`None`: no sample has choices).
pub fn chance_level<'a>(samples: impl IntoIterator<Item = &'a SampleResult>) -> Option<f64> {
    let (sum, n) = samples
        .into_iter()
        .filter(|s| !s.choices.is_empty())
        .fold((0.0, 0), |(sum, n), s| (sum + 1.0 / s.choices.len() as f64, n + 1));
    mean(sum, n)
}

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
