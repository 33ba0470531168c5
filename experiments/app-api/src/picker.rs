//! File access goes only through pickers the user answers, called on the Rust side: the page never names a file a
//! command then reads or writes (a spec's model folder must be one a picker gave or the app knows). The desktop
//! app's picker opens native dialogs (`src-tauri/src/picker.rs`); `cliplab serve`'s asks the page for a path and
//! accepts only one inside the folders it was allowed.
//!
//! End-to-end tests cannot click native dialogs, so `CLIPLAB_E2E_PICKS` (an OS path list) replaces them with
//! answers given in order; once used up, a pick is "cancelled". Whoever can set the app's environment can
//! already read the user's files, so this opens nothing new.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

/// A filter of a file dialog: a name and extensions without dots.
pub type Filter<'a> = (&'a str, &'a [&'a str]);

/// Asks the user for a file or folder; `None`: cancelled.
pub trait Picker: Send + Sync {
    fn pick_file(&self, title: &str, filters: &[Filter<'_>]) -> Option<PathBuf>;
    fn pick_folder(&self, title: &str) -> Option<PathBuf>;
}

/// Answers from a list (tests, and `CLIPLAB_E2E_PICKS`).
#[derive(Debug, Default)]
pub struct ScriptedPicker {
    answers: Mutex<VecDeque<PathBuf>>,
}

impl ScriptedPicker {
    pub fn new(answers: impl IntoIterator<Item = PathBuf>) -> Self {
        Self { answers: Mutex::new(answers.into_iter().collect()) }
    }

    /// The picker `CLIPLAB_E2E_PICKS` asks for, if it is set.
    pub fn from_env() -> Option<Self> {
        let v = std::env::var_os("CLIPLAB_E2E_PICKS")?;
        Some(Self::new(std::env::split_paths(&v)))
    }

    /// Queues more answers.
    pub fn push(&self, path: PathBuf) {
        crate::app::lock(&self.answers).push_back(path);
    }

    fn next(&self) -> Option<PathBuf> {
        crate::app::lock(&self.answers).pop_front()
    }
}

impl Picker for ScriptedPicker {
    fn pick_file(&self, _title: &str, _filters: &[Filter<'_>]) -> Option<PathBuf> {
        self.next()
    }
    fn pick_folder(&self, _title: &str) -> Option<PathBuf> {
        self.next()
    }
}

impl<P: Picker + ?Sized> Picker for std::sync::Arc<P> {
    fn pick_file(&self, title: &str, filters: &[Filter<'_>]) -> Option<PathBuf> {
        (**self).pick_file(title, filters)
    }
    fn pick_folder(&self, title: &str) -> Option<PathBuf> {
        (**self).pick_folder(title)
    }
}
