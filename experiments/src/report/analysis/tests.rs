//! Tests of the analysis on small hand-made runs.

use serde_json::json;

use super::*;
use crate::vocab::letter;

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
    assert_eq!(letter(26), "AA"); // one letter function since the move: vocab::letter (spreadsheet columns)
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
fn chance() {
    let two = sample(1, Split::Train, 0, &[0.4, 0.6], &[0.8, 0.2]);
    let four = sample(2, Split::Train, 0, &[0.4, 0.6, 0.0, 0.0], &[0.8, 0.2, 0.0, 0.0]);
    assert_eq!(chance_level([&two, &four]), Some(0.375), "the mean of 1/2 and 1/4");
    assert_eq!(chance_level([]), None);
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
    let b =
        json!({"lr": 0.0001, "epochs": 5.0, "optimizer": "adam", "freeze": {"vision": true, "text": true}, "seed": 1});
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

#[test]
fn label_prob_histogram() {
    let h = histogram(&[0.0, 0.04, 0.05, 0.5, 1.0, 1.2, -0.1], HIST_BINS);
    assert_eq!(h.n, 7);
    assert_eq!(h.bins.len(), HIST_BINS);
    let counts: Vec<usize> = h.bins.iter().map(|b| b.count).collect();
    // 0, 0.04 and the clamped -0.1 in the first bin; 1.0 and the clamped 1.2 in the last.
    assert_eq!((counts[0], counts[1], counts[10], counts[19]), (3, 1, 1, 2));
    assert_eq!(counts.iter().sum::<usize>(), 7);
    assert!((h.bins[1].lo - 0.05).abs() < 1e-12 && (h.bins[1].hi - 0.1).abs() < 1e-12);
    assert!((h.shares()[0] - 3.0 / 7.0).abs() < 1e-12);
    assert!(histogram(&[], 4).shares().iter().all(|&s| s == 0.0));
    let r = run(1, vec![
        sample(1, Split::Train, 0, &[0.9, 0.1], &[0.98, 0.02]),
        sample(2, Split::Heldout, 1, &[0.9, 0.1], &[]),
    ]);
    assert_eq!(label_prob_hist(&r, Split::Heldout, Stage::Before).bins[2].count, 1);
    assert_eq!(label_prob_hist(&r, Split::Heldout, Stage::After).n, 0);
    assert_eq!(label_prob_hist(&r, Split::Train, Stage::After).bins[19].count, 1);
}

#[test]
fn slope_subset_caps_in_proportion() {
    let samples: Vec<SampleResult> = (0..30)
        .map(|i| sample(i, if i < 20 { Split::Train } else { Split::Heldout }, 0, &[0.5, 0.5], &[0.6, 0.4]))
        .collect();
    let d = label_prob_deltas(&run(1, samples));
    assert_eq!(slope_subset(&d, 100), (0..30).collect::<Vec<_>>());
    let picked = slope_subset(&d, 9);
    assert_eq!(picked.len(), 9);
    assert_eq!(picked.iter().filter(|&&k| d[k].split == Split::Train).count(), 6, "in proportion: 20 of 30");
    assert_eq!(slope_subset(&d, 9), picked, "a fixed subset");
}
