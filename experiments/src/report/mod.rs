//! The report layer: per-sample analysis, charts, and the store → analysis/charts adapter behind `compare`.
//!
//! The top of the core: may use every other layer, and no layer uses it.

pub mod analysis;
pub mod compare;
pub mod plots;
