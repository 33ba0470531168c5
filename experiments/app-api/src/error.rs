//! The app layer's one error type. It crosses the transport (Tauri IPC, HTTP) as its readable message (the front
//! end shows it as it is), never as a blank screen.

/// Errors of the app's command layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The core failed (bad data, missing file, store error, ...): its message names the file or row.
    #[error(transparent)]
    Core(#[from] experiments::Error),

    /// A request the front end made does not fit the app's state (an unknown import draft, a model folder the
    /// user never picked, a run that is not running).
    #[error("{0}")]
    Invalid(String),
}

impl serde::Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// `Result` with the app's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
