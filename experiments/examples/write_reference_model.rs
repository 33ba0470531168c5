//! Writes the tiny random CLIP (`tests/reference/tiny_clip`) that `tests/reference/clip_reference.py` computes
//! its reference values from, and that the `engine` test `matches_pytorch_reference` loads. The model is the
//! same every time (seed 2024); rewrite it only together with `clip_reference.json`:
//!
//! ```text
//! cargo run -p experiments --example write_reference_model
//! ```

use std::path::Path;

use experiments::data::synth;
use experiments::model::clip::ClipConfig;
use experiments::model::engine::ClipBundle;
use experiments::model::preprocess::ImageProcessorConfig;

fn main() -> experiments::Result<()> {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny_clip");
    // The same tiny config as `tests/engine.rs`.
    let config = ClipConfig::tiny(synth::vocabulary().len() + 3, 32, 2, 32, 8);
    let tokenizer = serde_json::to_vec(&synth::tiny_tokenizer_json())?;
    match std::fs::remove_dir_all(&out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(experiments::Error::io(&out, e)),
    }
    ClipBundle::write_random(&out, &config, tokenizer, ImageProcessorConfig::with_size(32), 2024)?;
    println!("wrote {}", out.display());
    Ok(())
}
