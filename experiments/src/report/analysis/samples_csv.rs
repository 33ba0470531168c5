//! The per-sample CSV: one row per run × sample.

use std::path::Path;

use super::RunData;
use crate::vocab::{letter, Stage};
use crate::{Error, Result};

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
