//! CLIP Lab core: everything that is not GUI, in layers. Each layer may use the ones below it, never one above:
//!
//! ```text
//! remote   MLflow push / pull                             (top: faces only)
//!   │
//! report   analysis, charts, compare
//!   │
//! run      spec, runner, store, demo
//!   │
//! model ── data   CLIP in candle, preprocess, tokenize, optim, device, engine, hub  │  dataset import (local,
//!                 gs:// s3:// https://), synth
//!   │
//! error, events, fsio, vocab, validation                                  (bottom: every layer uses them)
//! ```
//!
//! The faces (the `cliplab` CLI, the desktop app, the tests) call these modules and nothing else.

// Bottom layer.
pub mod decode;
pub mod error;
pub mod events;
pub mod fsio;
pub mod logging;
pub mod validation;
pub mod vocab;
pub use error::{Error, Result};

// Layers, bottom to top.
pub mod data;
pub mod model;
pub mod remote;
pub mod report;
pub mod run;
