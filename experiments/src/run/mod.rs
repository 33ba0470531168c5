//! The run layer: experiments as specs, the runner that executes them, the SQLite store that keeps every number,
//! and the demo (which runs an experiment).
//!
//! Depends on [`crate::model`], [`crate::data`] and the bottom layer; never on [`crate::report`].

pub mod demo;
pub mod runner;
pub mod spec;
pub mod store;
