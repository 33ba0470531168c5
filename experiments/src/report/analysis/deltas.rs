//! How each sample moved between two sides: the change of p(right caption) ([`label_prob_deltas`]), and which
//! samples went from right to wrong and back ([`flips_before_after`], [`flips_between_runs`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::{label_prob, split_matches, top_choice, RunData, SampleResult};
use crate::vocab::{Split, Stage};

/// How one sample's probability of the right caption moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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

/// The indices into `deltas` that a slope chart of at most `cap` lines draws: all of them up to `cap`; past it,
/// a fixed pseudo-random subset of each split in proportion to its size (evenly spaced picks could alias with a
/// periodic order of the samples).
pub fn slope_subset(deltas: &[SampleDelta], cap: usize) -> Vec<usize> {
    let total = deltas.len();
    if total <= cap {
        return (0..total).collect();
    }
    let mut shown = Vec::new();
    for split in Split::ALL {
        let mut idx: Vec<usize> = (0..total).filter(|&k| deltas[k].split == split).collect();
        let keep = (idx.len() * cap).div_ceil(total).min(idx.len());
        idx.sort_by_key(|&k| (mix64(deltas[k].sample_id as u64), k));
        shown.extend(idx.into_iter().take(keep));
    }
    shown.truncate(cap);
    shown
}

/// A 64-bit mixer (splitmix64's finaliser): a fixed, well spread order of ids.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

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
        // Writing to a String cannot fail.
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
