//! The Tauri commands, generated from [`with_commands!`](cliplab_api::with_commands): each one line over [`App`].
//! They run off the main thread (`async`), so long work (validation, scoring) never freezes the window.

use std::sync::Arc;

use cliplab_api::app::App;
use cliplab_api::views::*;
use cliplab_api::{with_commands, Error, Result};
use experiments::data::ColumnMap;
use experiments::run::spec::{ExperimentSpec, FieldProblem};
use experiments::run::store::{DatasetInfo, ExperimentInfo, QueuedRun, RunInfo, SweepInfo};
use experiments::run::sweep::GridAxis;
use tauri::State;

/// The app, or why it could not start (shown in the window instead of a blank page).
pub struct Shared(pub std::result::Result<Arc<App>, String>);

impl Shared {
    fn get(&self) -> Result<Arc<App>> {
        self.0.clone().map_err(Error::Invalid)
    }
}

/// One `#[tauri::command]` per entry of the list: takes the [`Shared`] state and the declared arguments, runs the
/// declared body with `app` bound to the [`App`].
macro_rules! define_commands {
    ($( $(#[$doc:meta])* fn $name:ident($app:ident $(, $arg:ident: $ty:ty)*) -> $ret:ty $body:block )*) => {$(
        $(#[$doc])*
        #[tauri::command(async)]
        pub fn $name(state: State<'_, Shared>, $($arg: $ty),*) -> Result<$ret> {
            let $app = state.get()?;
            $body
        }
    )*};
}

with_commands!(define_commands);
