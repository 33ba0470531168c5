//! Small helpers the import steps share: the errors they build and how they name files and values in messages.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::Error;
use crate::validation::ValidationReport;

/// An I/O error on `path`, saying "file not found" plainly when it is that.
pub(super) fn io_or_missing(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::MissingFile { path: path.to_path_buf(), hint: String::new() }
    } else {
        Error::io(path, e)
    }
}

/// The import was rejected: `report` lists why (its first problem is shown in the message).
pub(super) fn rejected(metadata: &Path, report: ValidationReport) -> Error {
    let first = report.problems.first().map_or_else(|| "no valid row".to_string(), |p| p.to_string());
    Error::Rejected { file: metadata.to_path_buf(), n: report.problems.len(), first, report: Box::new(report) }
}

/// `path` made absolute (without resolving links), naming it in the error.
pub(super) fn absolute(path: &Path) -> crate::Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io(path, e))
}

/// The file name of `path`, or the whole path when it has none.
pub(super) fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// What kind of JSON value `v` is, for messages ("a number", "text", ...).
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value shortened for messages.
pub(super) fn short(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}
