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
    /// Short machine-friendly kind: `missing_image`, `unreadable_image`, `ambiguous_image`, `changed_image`,
    /// `label_not_in_choices`, `too_few_choices`, `empty_caption`, `duplicate_row`, `bad_value`, `missing_column`
    /// (the constants in [`kind`]).
    pub kind: String,
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

/// The [`Problem::kind`]s this module reports.
pub mod kind {
    /// No image file with the row's file name (or the image file vanished).
    pub const MISSING_IMAGE: &str = "missing_image";
    /// The image file cannot be read or decoded (corrupt, truncated, not an image).
    pub const UNREADABLE_IMAGE: &str = "unreadable_image";
    /// The file name matches several files (in different subfolders) or several different embedded images.
    pub const AMBIGUOUS_IMAGE: &str = "ambiguous_image";
    /// [`crate::data::verify_images`]: the file's content changed since the import.
    pub const CHANGED_IMAGE: &str = "changed_image";
    /// The label is empty, out of range or names no choice.
    pub const LABEL_NOT_IN_CHOICES: &str = "label_not_in_choices";
    /// Fewer than two caption choices.
    pub const TOO_FEW_CHOICES: &str = "too_few_choices";
    /// A caption choice is empty or only whitespace.
    pub const EMPTY_CAPTION: &str = "empty_caption";
    /// Same file name, choices and label as an earlier row.
    pub const DUPLICATE_ROW: &str = "duplicate_row";
    /// A value of the wrong type (choices not a list, file name not text, ...).
    pub const BAD_VALUE: &str = "bad_value";
    /// A required column is not in the metadata file.
    pub const MISSING_COLUMN: &str = "missing_column";
}

impl Problem {
    pub(crate) fn new(row: Option<usize>, file: Option<String>, kind: &str, reason: impl Into<String>) -> Self {
        Problem { row, file, kind: kind.to_string(), reason: reason.into() }
    }
}

impl ValidationReport {
    /// Number of problems of each kind.
    pub fn counts_by_kind(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for p in &self.problems {
            *out.entry(p.kind.clone()).or_insert(0) += 1;
        }
        out
    }

    /// Rows that have at least one problem (left out under [`crate::data::OnError::Skip`]).
    pub fn bad_rows(&self) -> usize {
        self.total_rows.saturating_sub(self.valid_rows)
    }
}
