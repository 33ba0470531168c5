//! The data layer: importing image + caption-choice datasets and generating synthetic ones.
//!
//! The import, by concern (callers use the re-exports below: `data::import`, `data::ImportOptions`, ...):
//! - [`types`]: what an import is asked to do ([`ImportOptions`], [`ColumnMap`], [`OnError`]) and what it gives
//!   back ([`ImportedDataset`], [`DatasetRow`], [`ImageRecord`]).
//! - `read`: reading a metadata file (parquet, CSV / TSV, JSON lines, JSON) into a raw table.
//! - `parse`: checking each row's file name, caption choices and label.
//! - `images`: indexing the image folder, hashing and decoding images, [`verify_images`], [`sha256_file`].
//! - `import`: the [`import`] pipeline itself, step by step.
//! - [`remote`]: the same import from `gs://`, `s3://` and `https://` URLs (fetched into a cache in the home
//!   first); [`remote::import_any`] takes local paths and URLs alike.
//!
//! And [`synth`]: deterministic generated data and tiny models for tests and the demo.
//!
//! Depends only on the bottom layer ([`crate::error`], [`crate::events`], [`crate::validation`], [`crate::vocab`]).

mod common;
mod images;
mod import;
mod parse;
mod read;
pub mod remote;
pub mod synth;
pub mod types;

pub use images::{sha256_file, verify_images};
pub use import::import;
pub use types::{ColumnMap, DatasetRow, ImageRecord, ImportOptions, ImportedDataset, OnError};
