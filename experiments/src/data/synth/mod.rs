//! Deterministic generated data for tests and the `cliplab demo`: nothing is downloaded, everything is drawn here.
//!
//! - [`draw_scene`] rasterises a [`Scene`] (one, two or three flat-coloured shapes on a plain background, no
//!   anti-aliasing, so every pixel is either the background or the shape colour).
//! - [`Scene::caption`] / [`Scene::describe`] say in lower-case words what is drawn, with a few filler templates.
//! - [`caption_contest`] builds multiple-choice rows like the New Yorker caption contest: one image, `choices`
//!   captions of which exactly one describes it; [`write_dataset`] writes them as PNGs plus `metadata.jsonl`.
//! - [`tiny_tokenizer_json`] is a word-level Hugging Face `tokenizer.json` over [`vocabulary`] that follows CLIP's
//!   conventions (`<|startoftext|>` and `<|endoftext|>` are the last two ids and wrap every sequence).
//!
//! All randomness comes from a `ChaCha8Rng` seeded by the caller, so the same seed gives byte-identical output.
//!
//! Split by concern: `scene` (what a scene is, its captions, drawing it), `contest` (the multiple-choice rows and
//! writing them as a dataset folder) and `tokenizer` (the tiny word-level tokenizer); everything is re-exported here.

mod contest;
mod scene;
mod tokenizer;

pub use contest::{caption_contest, write_dataset, SynthSample};
pub use scene::{draw_scene, Background, Color, Layout, Position, Scene, Shape, CAPTION_TEMPLATES};
pub use tokenizer::{tiny_tokenizer_json, vocabulary, write_tiny_tokenizer};

/// The folder, under the dataset folder, that [`write_dataset`] writes the images into.
pub const IMAGES_DIR: &str = "images";
/// The metadata file that [`write_dataset`] writes beside [`IMAGES_DIR`].
pub const METADATA_FILE: &str = "metadata.jsonl";

/// Unknown-word token of [`tiny_tokenizer_json`] (id 0).
pub const UNK_TOKEN: &str = "[UNK]";
/// Start-of-text token (CLIP's name); second-to-last id.
pub const BOS_TOKEN: &str = "<|startoftext|>";
/// End-of-text token (CLIP's name); the largest id.
pub const EOS_TOKEN: &str = "<|endoftext|>";
