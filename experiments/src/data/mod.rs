//! The data layer: importing image + caption-choice datasets and generating synthetic ones.
//!
//! - [`dataset`]: reading a metadata file (parquet, CSV, JSONL), parsing rows, checking images, the import steps
//!   and their validation report.
//! - [`synth`]: deterministic generated data and tiny models for tests and the demo.
//!
//! Depends only on the bottom layer ([`crate::error`], [`crate::events`], [`crate::vocab`]).

pub mod dataset;
pub mod synth;

pub use dataset::*;
