//! CLIP Lab core: everything that is not GUI.
//!
//! - [`clip`]: the CLIP model in candle (config presets, trainable modules, loading and exporting Hugging Face
//!   checkpoints), with [`clip::ops`] holding the differentiable fused ops it needs.
//! - [`preprocess`]: `CLIPImageProcessor`-equal image preprocessing.
//! - [`tokenize`]: caption tokenization with the `tokenizers` crate.
//! - [`optim`]: fused in-place Adam / AdamW.
//! - [`engine`]: scoring (softmax over each image's own choices) and fine-tuning.
//! - [`synth`]: deterministic generated data and tiny models for tests and the demo.

pub mod bench;
pub mod clip;
pub mod compare;
pub mod dataset;
pub mod demo;
pub mod device;
pub mod engine;
pub mod error;
pub mod events;
pub use error::{Error, Result};
pub mod analysis;
pub mod optim;
pub mod plots;
pub mod preprocess;
pub mod runner;
pub mod spec;
pub mod store;
pub mod synth;
pub mod tokenize;
