//! The model layer: CLIP in candle and everything that feeds it or runs it on one machine.
//!
//! - [`clip`]: config presets, trainable modules, differentiable fused ops, parameters and freezing.
//! - [`preprocess`]: `CLIPImageProcessor`-equal image preprocessing (Pillow-exact resize).
//! - [`tokenize`]: caption tokenization with the `tokenizers` crate; [`bpe`]: a CLIP `tokenizer.json` made from
//!   `vocab.json` + `merges.txt` (repositories without one).
//! - [`optim`]: fused in-place Adam / AdamW.
//! - [`device`]: the compute device choice.
//! - [`engine`]: a loaded model folder, scoring (softmax over each image's own choices), fine-tuning, export.
//! - [`bench`]: the `cliplab bench` measurements.
//! - [`hub`]: model folders from the Hugging Face hub, in its standard cache (`cliplab model pull`, hub ids
//!   wherever a model folder is accepted).
//! - [`blas`]: single-precision matrix products on the CPU (OpenBLAS loaded at run time, else `gemm`).
//!
//! Depends only on the bottom layer ([`crate::error`], [`crate::events`], [`crate::vocab`]).

pub mod bench;
pub mod blas;
pub mod bpe;
pub mod clip;
pub mod device;
pub mod engine;
pub mod hub;
pub mod optim;
pub mod preprocess;
pub mod tokenize;
