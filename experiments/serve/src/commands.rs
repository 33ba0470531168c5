//! Every command of [`with_commands!`] as `POST /api/<name>`: the body is a JSON object of the command's named
//! arguments, camelCase as the page's `api` passes them (the same keys Tauri's IPC takes); the reply is the
//! command's result as JSON, or its error message as a JSON string. Generated from the one list, as the Tauri
//! commands are.

use std::sync::Arc;

use cliplab_api::app::App;
use cliplab_api::views::*;
use cliplab_api::with_commands;
use experiments::data::ColumnMap;
use experiments::run::spec::{ExperimentSpec, FieldProblem};
use experiments::run::store::{DatasetInfo, ExperimentInfo, QueuedRun, RunInfo, SweepInfo};
use experiments::run::sweep::GridAxis;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The body does not hold the command's arguments.
    #[error("{command}: bad arguments: {source}")]
    Args {
        command: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The command failed: its own message.
    #[error(transparent)]
    App(#[from] cliplab_api::Error),
    /// The result cannot be written as JSON.
    #[error("{command}: cannot write the result: {source}")]
    Reply {
        command: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// One function per command (same name) and [`call`], which finds it by name.
macro_rules! http_commands {
    ($( $(#[$doc:meta])* fn $name:ident($app:ident $(, $arg:ident: $ty:ty)*) -> $ret:ty $body:block )*) => {
        /// Every command's name, in the list's order.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];

        /// Runs command `name` with its arguments (a JSON object; `null` for none); `None`: no such command.
        pub fn call(app: &Arc<App>, name: &str, args: serde_json::Value) -> Option<Result<serde_json::Value, CallError>> {
            let args = if args.is_null() { serde_json::Value::Object(Default::default()) } else { args };
            match name {
                $(stringify!($name) => Some(by_name::$name(app, args)),)*
                _ => None,
            }
        }

        mod by_name {
            use super::*;
            $(
                $(#[$doc])*
                pub fn $name(app: &Arc<App>, args: serde_json::Value) -> Result<serde_json::Value, CallError> {
                    #[derive(serde::Deserialize)]
                    #[serde(rename_all = "camelCase", deny_unknown_fields)]
                    struct Args { $($arg: $ty),* }
                    let command = stringify!($name);
                    let Args { $($arg),* } =
                        serde_json::from_value(args).map_err(|source| CallError::Args { command, source })?;
                    let $app = Arc::clone(app);
                    let out: cliplab_api::Result<$ret> = $body;
                    serde_json::to_value(out?).map_err(|source| CallError::Reply { command, source })
                }
            )*
        }
    };
}

with_commands!(http_commands);
