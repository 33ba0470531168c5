//! The report layer: per-sample analysis, charts, and the store → analysis/charts adapters behind `compare`
//! (runs) and `compare --sweep` (a sweep).
//!
//! The top of the core: may use every other layer, and no layer uses it.

pub mod analysis;
pub mod compare;
pub mod labels;
pub mod plots;
pub mod sweep;
