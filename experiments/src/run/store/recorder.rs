//! A run's events on their way into a store that another process may be holding.
//!
//! SQLite lets one writer at a time into the store. Other writers are short (a run's batch of steps, the app's
//! edits), except a dataset import, which inserts all its rows in one transaction. A run must not fail, nor lose
//! a step, because of them: a [`RunRecorder`] queues the run's events in memory and writes them in one
//! transaction whenever the store is free, without waiting for the lock in the middle of training. When the
//! store is busy it tries again after 50 ms, then twice as long each time up to 5 s, and training goes on.
//!
//! It gives up after [`STORE_PATIENCE`] (10 minutes) of a busy store: no CLIP Lab writer holds the lock that
//! long (an import of 400k rows takes well under a minute), so a store locked for 10 minutes is held by a stuck
//! process (a `sqlite3` shell left in a transaction, a hung network file system), and a run that trained on for
//! hours with nothing recorded would be worse than a clear error now. The queue stays small meanwhile (a step is
//! a few dozen bytes); past [`MAX_PENDING`] events a write waits for the lock instead of queueing more.

use std::time::{Duration, Instant};

use super::{is_busy_error, Store};
use crate::events::Event;
use crate::{Error, Result};

/// How long a run waits out a store that another process keeps locked before it fails (see the module docs).
pub const STORE_PATIENCE: Duration = Duration::from_secs(600);

/// First wait before writing again to a busy store; it doubles up to [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Events queued before a write waits for the lock instead of queueing more (a few MB at most).
pub const MAX_PENDING: usize = 100_000;

/// Records one run's events through a busy store without losing any (see the module docs).
#[derive(Debug)]
pub struct RunRecorder {
    run: i64,
    pending: Vec<Event>,
    /// When the store was first found busy, if it still is.
    busy_since: Option<Instant>,
    /// When to try again after a busy store.
    retry_at: Option<Instant>,
    backoff: Duration,
    patience: Duration,
}

impl RunRecorder {
    /// A recorder for run `run` that waits out a busy store for [`STORE_PATIENCE`].
    pub fn new(run: i64) -> RunRecorder {
        RunRecorder::with_patience(run, STORE_PATIENCE)
    }

    /// A recorder that gives up after `patience` of a busy store.
    pub fn with_patience(run: i64, patience: Duration) -> RunRecorder {
        RunRecorder { run, pending: Vec::new(), busy_since: None, retry_at: None, backoff: FIRST_RETRY, patience }
    }

    /// Events not written yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Queues `event` and writes the queue unless the store was busy a moment ago. Fails on a store error other
    /// than a busy store, or when the store has been busy for longer than the patience.
    pub fn record(&mut self, store: &mut Store, event: &Event) -> Result<()> {
        self.pending.push(event.clone());
        if self.pending.len() >= MAX_PENDING {
            return self.flush(store);
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(());
        }
        self.try_write(store)
    }

    /// Writes every queued event, waiting out a busy store (up to the patience, counted from when it was first
    /// found busy). Call it before recording the run's end.
    pub fn flush(&mut self, store: &mut Store) -> Result<()> {
        while !self.pending.is_empty() {
            if let Some(at) = self.retry_at {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
            }
            self.try_write(store)?;
        }
        Ok(())
    }

    fn try_write(&mut self, store: &mut Store) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match store.record_events_now(self.run, &self.pending) {
            Ok(()) => {
                self.pending.clear();
                self.busy_since = None;
                self.retry_at = None;
                self.backoff = FIRST_RETRY;
                Ok(())
            }
            Err(e) if is_busy_error(&e) => {
                let now = Instant::now();
                let since = *self.busy_since.get_or_insert(now);
                if now.duration_since(since) >= self.patience {
                    return Err(Error::BadStore {
                        path: store.path().to_path_buf(),
                        message: format!(
                            "another process kept the store locked for {:.0} s; run {} stopped with {} event(s) not \
                             recorded (close the other program, then run it again)",
                            now.duration_since(since).as_secs_f64(),
                            self.run,
                            self.pending.len()
                        ),
                    });
                }
                self.retry_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(LAST_RETRY);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
