//! What is wrong with an input: one [`Problem`] per row, file or image at fault, gathered in a
//! [`ValidationReport`]. The data layer produces them, the error type carries them (an import that is rejected),
//! the store keeps them and the faces show them; so they live at the bottom, beside [`crate::error`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One problem found in the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Problem {
    /// 1-based data row of the metadata file (None: a problem with the file or an image as a whole).
    pub row: Option<usize>,
    /// The file concerned (image or metadata), as the user would recognise it.
    pub file: Option<String>,
    /// What kind of problem (`missing_image`, `bad_value`, ...).
    pub kind: ProblemKind,
    /// Human sentence.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if self.row.is_some() {
                write!(f, ", ")?;
            } else {
                write!(f, ": ")?;
            }
        }
        if let Some(row) = self.row {
            write!(f, "row {row}: ")?;
        }
        write!(f, "{}", self.reason)
    }
}

/// The outcome of validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ValidationReport {
    pub total_rows: usize,
    pub valid_rows: usize,
    /// Every problem (rows skipped or causing rejection).
    pub problems: Vec<Problem>,
}

/// What is wrong with a row, a file or the metadata: the [`Problem::kind`]s validation reports. Written in
/// snake case (`missing_image`) in JSON, the store and messages.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, strum::Display, strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum ProblemKind {
    /// No image file with the row's file name (or the image file vanished).
    MissingImage,
    /// The image file cannot be read or decoded (corrupt, truncated, not an image).
    UnreadableImage,
    /// The file name matches several files (in different subfolders) or several different embedded images.
    AmbiguousImage,
    /// [`crate::data::verify_images`]: the file's content changed since the import.
    ChangedImage,
    /// The label is empty, out of range or names no choice.
    LabelNotInChoices,
    /// Fewer than two caption choices.
    TooFewChoices,
    /// A caption choice is empty or only whitespace.
    EmptyCaption,
    /// Same file name, choices and label as an earlier row.
    DuplicateRow,
    /// A value of the wrong type (choices not a list, file name not text, ...).
    BadValue,
    /// A required column is not in the metadata file.
    MissingColumn,
}

impl Problem {
    pub(crate) fn new(row: Option<usize>, file: Option<String>, kind: ProblemKind, reason: impl Into<String>) -> Self {
        Problem { row, file, kind, reason: reason.into() }
    }
}

impl ValidationReport {
    /// Number of problems of each kind.
    pub fn counts_by_kind(&self) -> BTreeMap<ProblemKind, usize> {
        let mut out = BTreeMap::new();
        for p in &self.problems {
            *out.entry(p.kind).or_insert(0) += 1;
        }
        out
    }

    /// Rows that have at least one problem (left out under [`crate::data::OnError::Skip`]).
    pub fn bad_rows(&self) -> usize {
        self.total_rows.saturating_sub(self.valid_rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    #[test]
    fn a_problem_kind_reads_the_same_in_json_messages_and_back() {
        for &k in ProblemKind::VARIANTS {
            let json = serde_json::to_string(&k).expect("json");
            assert_eq!(json, format!("\"{k}\""), "JSON and Display agree");
            assert_eq!(k.to_string().parse::<ProblemKind>().ok(), Some(k));
            assert!(k.to_string().chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{k}");
        }
        assert_eq!(ProblemKind::LabelNotInChoices.to_string(), "label_not_in_choices");
    }
}
