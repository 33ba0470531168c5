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

/// Compiles the element-wise loop functions it wraps for AVX-512 and AVX2 beside the baseline x86-64 target, the
/// best one picked per CPU at run time (the `multiversion` crate): the binary still runs on any x86-64, and a
/// loop over `exp` runs 16 lanes wide instead of 4 where the CPU has AVX-512. Results do not depend on the
/// target: Rust never contracts `a * b + c` into an FMA on its own, and the reductions fix their lane order in
/// code ([`sum`], [`dot`]), so every version computes the same bits.
macro_rules! wide {
    ($(#[$m:meta])* $v:vis fn $($rest:tt)*) => {
        $(#[$m])*
        #[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx512bw+avx512dq", "x86_64+avx2+fma"))]
        $v fn $($rest)*
    };
}
// Defined before the modules below, so every one of them has `wide!` in scope without an import.

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
