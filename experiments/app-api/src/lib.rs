//! CLIP Lab's app layer: everything the desktop app and `cliplab serve` share, with no window and no HTTP. The two
//! transports (`src-tauri/`: Tauri IPC; `experiments/serve/`: JSON over HTTP and server-sent events) expand the one
//! command list and call the same [`App`](app::App) methods.
//!
//! - [`app`]: the state and the logic of each command (tested against a temporary store);
//! - [`command_list`]: every command, declared once (`with_commands!`);
//! - [`views`]: the shapes the screens get; [`bindings`]: their TypeScript twins, checked in as
//!   `ui/src/bindings.ts`;
//! - [`picker`]: how a command asks for a file or folder (native dialogs in the app, path fields in the browser).

/// The command list (`with_commands!`): first, so that every module below may expand it.
#[macro_use]
pub mod command_list;

pub mod app;
pub mod bindings;
pub mod error;
pub mod picker;
pub mod views;

pub use error::{Error, Result};
