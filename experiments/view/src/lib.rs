//! `cliplab view`: a native, read-only egui window over a CLIP Lab home's store, for machines where the Tauri app
//! is heavy or missing (a GPU server over `ssh -X`, a desktop without WebKitGTK, a screen that watches training).
//!
//! It reads the store through the core's API like every other face and writes nothing but what opening a store
//! does (migrations, marking runs whose process died as interrupted). The store is in WAL mode, so it reads while
//! the CLI, the queue or the app trains in another process.
//!
//! - `model`: the store as last read (runs, watched runs' records and curves, per-sample results); no egui.
//! - `app`: the window's state, screens, keyboard and refresh tick ([`Monitor`]).
//! - `runs_table`, `curves`, `compare`, `run_screen`: the parts it draws.
//! - `screenshot`: the window eframe runs, and `--screenshot FILE` (a PNG of the window, then quit).

pub mod app;
mod compare;
mod curves;
pub mod model;
pub mod run_screen;
mod runs_table;
pub mod screenshot;

pub use app::{run_colour, Monitor, Options, Screen, Series};
pub use model::{Curves, StoreView};
