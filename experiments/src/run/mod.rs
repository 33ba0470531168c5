//! The run layer: experiments as specs, the runner that executes them, sweeps over a grid of hyperparameters,
//! the queue worker, the SQLite store that keeps every number, run checkpoints on disk (what they share, keep
//! and free), the demo (which runs an experiment), and the inputs a spec names that must be fetched first (a hub
//! model, a dataset URL).
//!
//! Depends on [`crate::model`], [`crate::data`] and the bottom layer; never on [`crate::report`].

pub mod checkpoint;
pub mod demo;
pub mod inputs;
pub mod queue;
pub mod runner;
pub mod spec;
pub mod store;
pub mod sweep;
