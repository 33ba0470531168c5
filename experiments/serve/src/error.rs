//! The server's one error type: starting it (bind, store, allowed folders) and refusing what a request asks.

use std::path::PathBuf;

/// Errors of `cliplab serve`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The app layer failed (the store cannot be opened, ...).
    #[error(transparent)]
    App(#[from] cliplab_api::Error),

    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// A non-loopback address without `--expose`.
    #[error(
        "{0} is not a loopback address: anyone who can reach it and has the token could use the app; pass --expose to \
         serve there anyway (or keep 127.0.0.1 and use an SSH tunnel: ssh -L PORT:127.0.0.1:PORT host)"
    )]
    NotLoopback(std::net::SocketAddr),

    /// An `--allow-dir` folder that is not there.
    #[error("--allow-dir {path}: {source}")]
    AllowDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The home folder cannot be created.
    #[error("cannot create the CLIP Lab home {path}: {source}")]
    Home {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The runtime's threads could not start.
    #[error("cannot start the server's threads: {0}")]
    Runtime(#[source] std::io::Error),

    /// A path the page sent is outside the folders this server may read, or not what was asked for.
    #[error("{path}: {reason}")]
    Refused { path: PathBuf, reason: String },

    /// An answer to a file prompt that is not pending (answered already, timed out, or never asked).
    #[error("no pending file prompt {0} (answered already or timed out)")]
    NoSuchPrompt(u64),
}

/// `Result` with the server's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
