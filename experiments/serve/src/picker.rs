//! The browser's stand-in for native dialogs. A command that asks for a file or folder (import, model, export)
//! runs on a blocking thread; [`RequestPicker`] sends the asking tab a `pick` event (title, file or folder, the
//! allowed folders) and waits. The page shows a path field and answers with `POST /api/pick/<id>`; the path is
//! made canonical (symbolic links and `..` resolved) and refused unless it lies in the home or a folder given with
//! `--allow-dir`. So a request can only reach files the user could have picked there, never the rest of the disk.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cliplab_api::app::lock;
use cliplab_api::picker::{Filter, Picker};
use serde::Serialize;

use crate::events::{Events, Outgoing, PICK_EVENT};
use crate::{Error, Result};

/// How long a prompt waits for the page before it counts as cancelled.
pub const PATIENCE: Duration = Duration::from_secs(15 * 60);

/// A file or a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PickKind {
    File,
    Folder,
}

/// A file type a prompt suggests.
#[derive(Debug, Clone, Serialize)]
pub struct PromptFilter {
    pub name: String,
    pub extensions: Vec<String>,
}

/// What the page is asked (the `pick` event's data).
#[derive(Debug, Clone, Serialize)]
pub struct Prompt {
    pub id: u64,
    pub kind: PickKind,
    pub title: String,
    pub filters: Vec<PromptFilter>,
    /// The folders a path may lie in.
    pub roots: Vec<PathBuf>,
}

struct Pending {
    kind: PickKind,
    answer: SyncSender<Option<PathBuf>>,
}

thread_local! {
    /// The tab whose request this thread is serving (set around each command).
    static TAB: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The allowed folders and the prompts waiting for an answer.
pub struct Prompts {
    roots: Vec<PathBuf>,
    pending: Mutex<HashMap<u64, Pending>>,
    next: AtomicU64,
    events: Events,
    patience: Duration,
}

impl Prompts {
    /// `roots` must exist: they are made canonical here.
    pub fn new(roots: &[PathBuf], events: Events) -> Result<Self> {
        let mut canonical = Vec::new();
        for root in roots {
            let c = std::fs::canonicalize(root).map_err(|source| Error::AllowDir { path: root.clone(), source })?;
            if !canonical.contains(&c) {
                canonical.push(c);
            }
        }
        Ok(Self { roots: canonical, pending: Mutex::default(), next: AtomicU64::new(1), events, patience: PATIENCE })
    }

    /// The folders a path may lie in (canonical).
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Runs `f` (a command) with prompts going to `tab`.
    pub fn for_tab<T>(&self, tab: Option<String>, f: impl FnOnce() -> T) -> T {
        TAB.with(|t| *t.borrow_mut() = tab);
        let out = f();
        TAB.with(|t| *t.borrow_mut() = None);
        out
    }

    /// `path` if it is absolute, exists as a `kind`, and lies (once canonical) in an allowed folder.
    pub fn check(&self, path: &Path, kind: PickKind) -> Result<PathBuf> {
        let refused = |reason: String| Error::Refused { path: path.to_path_buf(), reason };
        if !path.is_absolute() {
            return Err(refused("give an absolute path".into()));
        }
        let canonical = std::fs::canonicalize(path).map_err(|e| refused(e.to_string()))?;
        if !self.roots.iter().any(|root| canonical.starts_with(root)) {
            let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
            return Err(refused(format!(
                "outside the folders this server may read ({}); start `cliplab serve` with --allow-dir for another",
                roots.join(", ")
            )));
        }
        match kind {
            PickKind::File if !canonical.is_file() => Err(refused("not a file".into())),
            PickKind::Folder if !canonical.is_dir() => Err(refused("not a folder".into())),
            _ => Ok(canonical),
        }
    }

    /// The page's answer to prompt `id`: a path (checked with [`Self::check`]) or `None` (cancelled). A refused
    /// path leaves the prompt waiting, so the user can correct it.
    pub fn answer(&self, id: u64, path: Option<&Path>) -> Result<Option<PathBuf>> {
        let pending = lock(&self.pending);
        let p = pending.get(&id).ok_or(Error::NoSuchPrompt(id))?;
        let path = path.map(|path| self.check(path, p.kind)).transpose()?;
        p.answer.try_send(path.clone()).map_err(|_| Error::NoSuchPrompt(id))?;
        Ok(path)
    }

    /// Cancels every waiting prompt (shutting down).
    pub fn cancel_all(&self) {
        // Dropping the senders wakes the waiting commands with "cancelled".
        lock(&self.pending).clear();
    }

    fn ask(&self, kind: PickKind, title: &str, filters: &[Filter<'_>]) -> Option<PathBuf> {
        // No tab (a script calling the API): nobody to ask, so the pick is cancelled.
        let tab = TAB.with(|t| t.borrow().clone())?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel(1);
        lock(&self.pending).insert(id, Pending { kind, answer: tx });
        let prompt = Prompt {
            id,
            kind,
            title: title.to_string(),
            filters: filters
                .iter()
                .map(|(name, exts)| PromptFilter { name: name.to_string(), extensions: exts.iter().map(|e| e.to_string()).collect() })
                .collect(),
            roots: self.roots.clone(),
        };
        let answer = match serde_json::to_string(&prompt) {
            Ok(data) => {
                // No receiver (the tab closed): the wait below times out as a cancelled dialog would.
                let _ = self.events.send(Arc::new(Outgoing { event: PICK_EVENT, data, tab: Some(tab) }));
                rx.recv_timeout(self.patience).ok().flatten()
            }
            Err(e) => {
                tracing::error!("a file prompt cannot be written as JSON: {e}");
                None
            }
        };
        lock(&self.pending).remove(&id);
        answer
    }
}

/// The app's [`Picker`] in `cliplab serve`: asks the requesting tab (see the module docs).
pub struct RequestPicker(pub Arc<Prompts>);

impl Picker for RequestPicker {
    fn pick_file(&self, title: &str, filters: &[Filter<'_>]) -> Option<PathBuf> {
        self.0.ask(PickKind::File, title, filters)
    }

    fn pick_folder(&self, title: &str) -> Option<PathBuf> {
        self.0.ask(PickKind::Folder, title, &[])
    }
}
