//! Where the `tracing` logs of CLIP Lab go: stderr for the CLI (`-v`), a file in a folder for the desktop app
//! (`<home>/logs/`). Our own crates log at the level asked for; dependencies only their warnings and errors.

use std::path::Path;

use tracing::Level;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use crate::{Error, Result};

/// The crates whose logs follow the chosen level (the core and its two faces).
const OUR_CRATES: [&str; 3] = ["experiments", "cliplab", "cliplab_app"];

/// How many daily log files [`init_file`] keeps.
pub const KEEP_FILES: usize = 14;

/// Our crates at `level`, everything else at warnings and errors.
fn filter(level: Level) -> Targets {
    OUR_CRATES.iter().fold(Targets::new().with_default(Level::WARN), |t, c| t.with_target(*c, level))
}

/// Sends logs at `level` (and above) to stderr, with colours only on a terminal. Call once, at start.
pub fn init_stderr(level: Level) -> Result<()> {
    use std::io::IsTerminal;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter(level));
    install(tracing_subscriber::registry().with(layer))
}

/// Keeps the log file writer alive: logs are written on a background thread, and dropping the guard flushes them.
/// Hold it for the life of the program.
#[must_use = "dropping the guard stops writing the log file"]
pub struct LogGuard {
    _flush_on_drop: WorkerGuard,
}

/// A subscriber writing logs at `level` to `<dir>/<prefix>.<date>.log` (a new file each day, the last
/// [`KEEP_FILES`] kept), creating `dir`; without installing it.
pub fn file_subscriber(
    dir: &Path,
    prefix: &str,
    level: Level,
) -> Result<(impl tracing::Subscriber + Send + Sync, LogGuard)> {
    let io = |e: std::io::Error| Error::Io { path: dir.to_path_buf(), source: e };
    std::fs::create_dir_all(dir).map_err(io)?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(prefix)
        .filename_suffix("log")
        .max_log_files(KEEP_FILES)
        .build(dir)
        .map_err(|e| io(std::io::Error::other(e)))?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false).with_filter(filter(level));
    Ok((tracing_subscriber::registry().with(layer), LogGuard { _flush_on_drop: guard }))
}

/// Sends logs at info level and above to daily files `<dir>/<prefix>.<date>.log` (see [`file_subscriber`]) for
/// the rest of the program. Call once, at start, and keep the guard.
pub fn init_file(dir: &Path, prefix: &str) -> Result<LogGuard> {
    let (subscriber, guard) = file_subscriber(dir, prefix, Level::INFO)?;
    install(subscriber)?;
    Ok(guard)
}

fn install(subscriber: impl tracing::Subscriber + Send + Sync + 'static) -> Result<()> {
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|e| Error::Invalid(format!("cannot install the log subscriber: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_subscriber_writes_our_logs_at_the_level_to_a_file_in_the_folder() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::Io { path: "tempdir".into(), source: e })?;
        let dir = tmp.path().join("logs");
        let (subscriber, guard) = file_subscriber(&dir, "cliplab-test", Level::INFO)?;
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(run = 7, "run started");
            tracing::debug!("too detailed for info");
            tracing::info!(target: "some_dependency", "a dependency's chatter");
            tracing::warn!(target: "some_dependency", "a dependency's warning");
        });
        drop(guard); // flushes
        let files: Vec<_> = std::fs::read_dir(&dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?.flatten().collect();
        assert_eq!(files.len(), 1, "one log file");
        let name = files[0].file_name().to_string_lossy().into_owned();
        assert!(name.starts_with("cliplab-test.") && name.ends_with(".log"), "{name}");
        let text = std::fs::read_to_string(files[0].path()).map_err(|e| Error::Io { path: files[0].path(), source: e })?;
        assert!(text.contains("run started") && text.contains("run=7"), "{text}");
        assert!(!text.contains("too detailed"), "debug is below info: {text}");
        assert!(!text.contains("chatter") && text.contains("a dependency's warning"), "dependencies warn only: {text}");
        assert!(!text.contains('\u{1b}'), "no colour codes in a file: {text:?}");
        Ok(())
    }
}
