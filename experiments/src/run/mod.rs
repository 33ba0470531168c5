//! The run layer: experiments as specs, the runner that executes them, sweeps over a grid of hyperparameters,
//! the queue worker, the SQLite store that keeps every number, run checkpoints on disk (what they share, keep
//! and free), and the demo (which runs an experiment).
//!
//! Depends on [`crate::model`], [`crate::data`] and the bottom layer; never on [`crate::report`].

pub mod checkpoint;
pub mod demo;
pub mod queue;
pub mod runner;
pub mod spec;
pub mod store;
pub mod sweep;
