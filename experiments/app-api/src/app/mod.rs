//! The app's state and the logic behind each command: small calls into `experiments` (store, runner, dataset,
//! compare, plots). Nothing here needs a window, so the command layer is tested against a temporary store
//! (`tests/commands.rs`) with a scripted picker and a recording event sink.
//!
//! By concern: [`datasets`] (listing, import drafts, thumbnails), [`experiments`] (models, the form's checks),
//! [`runs`] (worker threads, the run-detail screen), [`compare`] (runs side by side, exports), [`manage`] (the
//! runs table, tags, notes, archiving, deleting), [`queue`] (the queue's background worker, sweeps, the loss
//! series of the interactive charts), [`remote`] (MLflow push and
//! pull, model downloads, imports from URLs).

mod compare;
mod datasets;
mod experiments;
mod manage;
mod queue;
mod remote;
mod runs;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use ::experiments::events::CancelToken;
use ::experiments::model::device::{self, DeviceChoice};
use ::experiments::report::analysis::RunData;
use ::experiments::run::demo::DemoOptions;
use ::experiments::run::store::{Store, StoredSample};

use self::datasets::Draft;
pub use self::datasets::THUMBNAIL_WORKERS;
use crate::picker::Picker;
use crate::views::*;
use crate::Result;

/// Locks a mutex, recovering the data if a thread panicked while holding it (the data are caches and queues
/// that stay consistent between statements).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where events for the page go (the Tauri window in the app, every open tab in `cliplab serve`, a list in tests).
pub trait EventSink: Send + Sync {
    fn emit(&self, event: AppEvent);
}

/// Keeps every event (tests).
#[derive(Default)]
pub struct RecordingSink {
    pub events: Mutex<Vec<AppEvent>>,
}

impl EventSink for RecordingSink {
    fn emit(&self, event: AppEvent) {
        lock(&self.events).push(event);
    }
}

/// The app's state, shared by every command (of either transport).
pub struct App {
    home: PathBuf,
    store: Mutex<Store>,
    picker: Box<dyn Picker>,
    sink: Arc<dyn EventSink>,
    /// Cancel flags of the runs this process is running.
    active: Mutex<HashMap<i64, CancelToken>>,
    drafts: Mutex<HashMap<u64, Draft>>,
    /// Cancel flags of the jobs (pushes, pulls, downloads) in flight, by the page's job number.
    jobs: Mutex<HashMap<u64, CancelToken>>,
    next_token: AtomicU64,
    /// Model folders the user picked in a dialog or path field (or the app knows from experiments and the demo):
    /// the only ones an experiment may name.
    models: Mutex<BTreeSet<ModelChoice>>,
    samples: Mutex<HashMap<i64, Arc<Vec<StoredSample>>>>,
    finished_runs: Mutex<HashMap<i64, Arc<RunData>>>,
    recovered: Vec<i64>,
    /// Whether the queue's background worker is running.
    worker: Mutex<bool>,
    /// The last disk measurement and when it was taken.
    disk: Mutex<Option<(std::time::Instant, ::experiments::run::checkpoint::DiskUsage)>>,
    /// Demo size used by the "demo data" button (overridable for tests).
    pub demo: DemoOptions,
}

/// Page size cap: a page is what a screen shows at once.
const MAX_PAGE: usize = 500;

impl App {
    /// Opens the store in `home` (creating it), marking runs whose process died as interrupted.
    pub fn open(home: &Path, picker: Box<dyn Picker>, sink: Arc<dyn EventSink>) -> Result<Arc<App>> {
        let store = Store::open(home)?;
        // The runs that opening found dead (their process gone): the window shows them in a banner.
        let recovered = store.recovered_runs().to_vec();
        let app = App {
            home: home.to_path_buf(),
            store: Mutex::new(store),
            picker,
            sink,
            active: Mutex::default(),
            drafts: Mutex::default(),
            jobs: Mutex::default(),
            next_token: AtomicU64::new(1),
            models: Mutex::default(),
            samples: Mutex::default(),
            finished_runs: Mutex::default(),
            recovered,
            worker: Mutex::new(false),
            disk: Mutex::default(),
            demo: DemoOptions::default(),
        };
        app.refresh_models()?;
        let queued = app.store().queue_len()?;
        let app = Arc::new(app);
        // Runs left in the queue when the app last closed go on now.
        if queued > 0 {
            app.kick_queue();
        }
        Ok(app)
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn info(&self) -> AppInfo {
        let mut devices = Vec::new();
        if device::select(DeviceChoice::Cuda).is_ok() {
            devices.push("cuda".to_string());
        }
        if device::select(DeviceChoice::Metal).is_ok() {
            devices.push("metal".to_string());
        }
        devices.push("cpu".to_string());
        AppInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            home: self.home.clone(),
            store: self.store().path().to_path_buf(),
            devices,
            recovered: self.recovered.clone(),
        }
    }
}
