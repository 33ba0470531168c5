//! The one error type of the `experiments` crate.
//!
//! Every variant renders as one readable line that names the file, row or tensor at fault, so the CLI and the
//! GUI can show it as it is.

use std::path::PathBuf;

/// Errors of the CLIP Lab core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A required file is not there.
    #[error("{path}: file not found{hint}")]
    MissingFile { path: PathBuf, hint: String },

    /// A JSON file (config, tokenizer, preprocessor) is not what we expect.
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },

    /// A checkpoint lacks a tensor or has one of the wrong shape.
    #[error("{path}: tensor `{name}`: {message}")]
    BadTensor {
        path: PathBuf,
        name: String,
        message: String,
    },

    /// An image could not be decoded.
    #[error("{path}: cannot decode image: {message}")]
    BadImage { path: PathBuf, message: String },

    /// The tokenizer does not fit the model or cannot encode a caption.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A user-supplied option or value is invalid.
    #[error("{0}")]
    Invalid(String),

    /// The requested compute device is not available in this build or on this machine.
    #[error("device: {0}")]
    Device(String),

    /// A tensor operation failed (shape mismatch inside the model, out of memory, ...).
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),

    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// A dataset import found problems and stored nothing; `report` lists every problem (`first` is the first,
    /// with its row).
    #[error("{}: {n} problem(s), import rejected; first: {first}", file.display())]
    Rejected {
        file: PathBuf,
        n: usize,
        first: String,
        report: Box<crate::validation::ValidationReport>,
    },

    /// The job was cancelled by the user.
    #[error("cancelled")]
    Cancelled,

    /// A dataset, experiment, run, sample or image that is not in the store. Renders as
    /// `no {what} {key}{hint}`, e.g. "no dataset named `x` (known: a, b)" or "no run with id 7".
    #[error("no {what} {key}{hint}")]
    NotFound {
        /// The kind of thing: `dataset`, `experiment`, `run`, `sample`, `image`.
        what: String,
        /// How it was asked for: "named `x`", "with id 7".
        key: String,
        /// Extra words for the reader (what is known instead, where it was looked for); may be empty.
        hint: String,
    },

    /// SQLite failed on the experiment store while doing `context`.
    #[error("store {path}: {context}: {source}")]
    Store {
        path: PathBuf,
        context: String,
        #[source]
        source: rusqlite::Error,
    },

    /// The experiment store holds something this build cannot use, though SQLite itself did not fail (a schema
    /// newer than this build, a journal mode it cannot switch to, a JSON column that does not parse).
    #[error("store {path}: {message}")]
    BadStore { path: PathBuf, message: String },

    /// A tracking server (MLflow) could not be reached or refused a request: `url` is the request's URL,
    /// `code` MLflow's error code (`RESOURCE_DOES_NOT_EXIST`, `INVALID_PARAMETER_VALUE`, ...) when it sent one.
    #[error("{url}: {message}")]
    Remote { url: String, status: Option<u16>, code: Option<String>, message: String },

    /// A downloaded file is not what its source lists (size or SHA-256): it was removed again, nothing kept.
    #[error("{url}: {message}")]
    Integrity { url: String, message: String },

    /// A Hugging Face hub repository (`repo`) that is not a CLIP model CLIP Lab can load (no CLIP `config.json`,
    /// no weights or tokenizer in a form it reads).
    #[error("{repo}: not a CLIP model CLIP Lab can load: {message}")]
    NotClip { repo: String, message: String },
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Thing `what` with id `id` is not in the store.
    pub fn not_found_id(what: &str, id: i64) -> Self {
        Error::NotFound { what: what.into(), key: format!("with id {id}"), hint: String::new() }
    }

    /// A malformed file.
    pub fn bad_file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Error::BadFile {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// The one line a binary prints for a failed command (after `error: `): the error and its causes joined by ": "
/// (a cause that the message already ends with is not repeated: our variants name their source), with control
/// characters shown escaped (`\n`), so that a line break in a user's name or in a server's reply never splits it.
/// The CLI, `cliplab-serve` and the monitor print their errors through it.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    for cause in std::iter::successors(Some(e), |e| e.source()).map(ToString::to_string) {
        if line.is_empty() {
            line = cause;
        } else if !line.ends_with(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

/// Reads a whole file, naming it in the error (and saying "file not found" plainly).
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile {
                path: path.to_path_buf(),
                hint: String::new(),
            }
        } else {
            Error::io(path, e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("pushing run 3")]
    struct Context(#[source] Error);

    #[test]
    fn an_error_line_is_one_line_with_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied\r\nby policy");
        let e = Error::io("a\nb.parquet", io);
        assert_eq!(error_line(&e), "a\\nb.parquet: denied\\r\\nby policy");
        let wrapped = Context(Error::Invalid("the server went away".into()));
        assert_eq!(error_line(&wrapped), "pushing run 3: the server went away");
    }
}
