//! What an import is asked to do and what it gives back: the column map, the options, and the validated rows and
//! images (the store keeps these as they are).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::validation::ValidationReport;

/// Which metadata columns hold what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct ColumnMap {
    /// Image file name, matched against the file names in the image folder.
    pub filename: String,
    /// The caption choices: a list of strings (parquet list, JSON array; in CSV a JSON-encoded list).
    pub choices: String,
    /// The right choice: a letter A–E (or A–Z), or a 0-based index.
    pub label: String,
    /// Hugging Face layout: a struct column with `bytes` and/or `path` holding the image itself.
    pub image: String,
}

impl Default for ColumnMap {
    fn default() -> Self {
        Self { filename: "filename".into(), choices: "caption_choices".into(), label: "label".into(), image: "image".into() }
    }
}

/// What to do with rows that fail validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Any bad row rejects the whole import (nothing is stored).
    #[default]
    Reject,
    /// Bad rows are left out, counted and reported.
    Skip,
}

/// What to import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportOptions {
    /// Name of the dataset in the store (unique).
    pub name: String,
    /// The metadata file; its extension picks the format (`.parquet`, `.csv`, `.jsonl` / `.ndjson`).
    pub metadata: PathBuf,
    /// The image folder (searched recursively by file name). `None`: images are embedded in the metadata
    /// (Hugging Face layout) or next to the metadata file.
    pub images_dir: Option<PathBuf>,
    pub columns: ColumnMap,
    pub on_error: OnError,
    /// Where embedded images (Hugging Face parquet with image bytes) are written as files, one per image, named
    /// by content hash. Required only when the data has embedded images.
    pub extract_dir: Option<PathBuf>,
}

/// One valid sample (metadata row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRow {
    /// 1-based row number in the metadata file.
    pub row: usize,
    /// The image's file name (the join key); rows with the same image form a group.
    pub filename: String,
    pub choices: Vec<String>,
    /// 0-based index of the right choice.
    pub label: usize,
    /// Every other column, kept as JSON (`contest_number`, `image_description`, `instance_id`, ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One image the rows refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The join key (file name).
    pub filename: String,
    /// Absolute path of the file (for embedded images: the extracted file).
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// A validated dataset, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedDataset {
    pub name: String,
    pub metadata_path: PathBuf,
    pub images_dir: Option<PathBuf>,
    pub columns: ColumnMap,
    pub rows: Vec<DatasetRow>,
    pub images: Vec<ImageRecord>,
    pub report: ValidationReport,
    /// SHA-256 over the metadata file's bytes and every image's hash (in file-name order), hex.
    pub content_hash: String,
    /// The files (and a folder) this import created under [`ImportOptions::extract_dir`]; a caller that does not
    /// store the dataset removes them with [`ImportedDataset::discard_extracted`]. Not serialised.
    #[serde(skip)]
    pub extracted: Vec<PathBuf>,
}

impl ImportedDataset {
    /// Removes what this import extracted (see [`Self::extracted`]): for a dataset that will not be stored (its
    /// insert failed, the user dropped it). Best effort: what cannot be removed is logged.
    pub fn discard_extracted(&mut self) {
        remove_created(std::mem::take(&mut self.extracted));
    }
}

/// Removes files and (empty) folders, the later ones first (files before the folder they were made in).
pub(crate) fn remove_created(paths: Vec<PathBuf>) {
    for path in paths.into_iter().rev() {
        let removed = if path.is_dir() { std::fs::remove_dir(&path) } else { std::fs::remove_file(&path) };
        if let Err(e) = removed {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), "leaving an extracted file of an import that was not stored: {e}");
            }
        }
    }
}
