//! Runs beyond this machine: the top layer, on top of `run` (the store) and `report` (charts and the per-sample
//! CSV it uploads). Nothing in the core imports it; the faces call it.
//!
//! - `mlflow`: push runs to an MLflow tracking server and pull a team's runs back, over MLflow's REST API.

pub mod mlflow;
