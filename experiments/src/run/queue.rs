//! The queue worker: takes queued runs from the store one at a time and runs them, until the queue is empty or
//! it is cancelled. What `cliplab queue run` and the app's worker use.
//!
//! Several workers (threads here, or other processes) may work on one queue: each claims its next run in one
//! store transaction ([`Store::claim_next_queued`]), so no run is taken twice. A cancel stops the running runs
//! between steps (they end `cancelled`) and leaves the rest queued.
//!
//! The app's worker takes its concurrency on the CPU from the home's settings ([`cpu_concurrency`]).

use std::path::Path;

use crate::events::{CancelToken, Observer};
use crate::model::device::DeviceChoice;
use crate::run::runner::{self, RunOutcome};
use crate::run::store::Store;
use crate::{Error, Result};

/// The home setting with the app worker's runs at once on the CPU.
pub const SETTING_CPU_CONCURRENCY: &str = "queue.cpu_concurrency";

/// Most runs at once a worker takes (each holds a model and its optimizer state in memory).
pub const MAX_CONCURRENCY: usize = 64;

/// `n` when it is a concurrency a worker can run with (1 to [`MAX_CONCURRENCY`]), else why not.
pub fn check_concurrency(n: usize) -> Result<usize> {
    if n == 0 {
        return Err(Error::Invalid("the queue needs a concurrency of at least 1".into()));
    }
    if n > MAX_CONCURRENCY {
        return Err(Error::Invalid(format!("a queue concurrency of {n} is more than {MAX_CONCURRENCY} runs at once")));
    }
    Ok(n)
}

/// The app worker's runs at once on the CPU, as the home's settings hold it (1 when never set).
pub fn cpu_concurrency(store: &Store) -> Result<usize> {
    let Some(v) = store.setting(SETTING_CPU_CONCURRENCY)? else { return Ok(1) };
    let n = v.trim().parse::<usize>().map_err(|_| {
        Error::Invalid(format!("setting `{SETTING_CPU_CONCURRENCY}` is `{v}`, not a number of runs"))
    })?;
    check_concurrency(n)
}

/// Stores the app worker's runs at once on the CPU, after checking it ([`check_concurrency`]).
pub fn set_cpu_concurrency(store: &mut Store, n: usize) -> Result<()> {
    check_concurrency(n)?;
    store.set_setting(SETTING_CPU_CONCURRENCY, &n.to_string())
}

/// How a worker runs the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Runs at once (threads, each with its own store connection); 1 on a GPU. At least 1.
    pub concurrency: usize,
    /// The device every run uses (`None`: each run's spec decides).
    pub device: Option<DeviceChoice>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self { concurrency: 1, device: None }
    }
}

/// One run the worker finished (completed, failed or cancelled).
#[derive(Debug)]
pub struct Worked {
    pub run_id: i64,
    pub result: Result<RunOutcome>,
}

/// Runs queued runs of the store in `home` until the queue is empty or `cancel` is set. `observer(run id)` makes
/// the observer of each run (called on the worker thread that runs it); `done` hears each finished run. Returns
/// the finished runs in the order they ended.
pub fn work_queue(
    home: &Path,
    options: WorkerOptions,
    observer: &(dyn Fn(i64) -> Box<dyn Observer> + Sync),
    done: &(dyn Fn(&Worked) + Sync),
    cancel: CancelToken,
) -> Result<Vec<Worked>> {
    if options.concurrency == 0 {
        return Err(Error::Invalid("the queue needs a concurrency of at least 1".into()));
    }
    if let Some(d) = options.device {
        crate::model::device::check_supported(d)?;
    }
    let finished = std::sync::Mutex::new(Vec::new());
    let worker = || -> Result<()> {
        let mut store = Store::open(home)?;
        while !cancel.is_cancelled() {
            let Some(run) = store.claim_next_queued()? else { break };
            let mut obs = observer(run);
            let result = runner::execute_run_on(&mut store, home, run, options.device, &mut *obs, cancel.clone());
            let w = Worked { run_id: run, result };
            done(&w);
            // A poisoned lock only means another worker panicked: its list is still whole.
            finished.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(w);
        }
        Ok(())
    };
    let outcomes: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..options.concurrency).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::Invalid("a queue worker thread panicked".into()))))
            .collect()
    });
    outcomes.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(finished.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
}
