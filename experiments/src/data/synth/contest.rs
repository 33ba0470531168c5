//! Caption-contest samples (one image, several captions, one of them right) and writing them as a dataset folder
//! (PNGs plus `metadata.jsonl`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::scene::{draw_scene, Color, Scene, Shape, CAPTION_TEMPLATES};
use super::{IMAGES_DIR, METADATA_FILE};
use crate::vocab::letter;
use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------------------------
// Caption-contest samples
// ---------------------------------------------------------------------------------------------------------------

/// One multiple-choice row: an image, its caption choices and the index of the one that describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSample {
    /// The image's file name (no folder), e.g. `img00007.png`; [`write_dataset`] puts it under [`IMAGES_DIR`].
    /// Rows of the same image share it.
    pub filename: String,
    pub image: RgbImage,
    pub caption_choices: Vec<String>,
    /// Index into `caption_choices` of the caption that describes the image.
    pub label: usize,
    /// The image id (`img00007`); rows of the same image share it.
    pub group: String,
    /// What the image shows; `scene.caption()` is its canonical description.
    pub scene: Scene,
}

/// Generates `n_images` random scenes drawn at `size`×`size`, each with `rows_per_image` rows (at least 1) of
/// `choices` captions (clamped to 1..=26).
///
/// In each row one caption (at a uniformly random index, the `label`) describes the image; the others describe
/// other scenes that differ from it in shape and/or colour, so they are false. About half of the distractors are
/// hard: the same scene with only the shape or only the colour changed. All captions of a row use the same filler
/// template, so only their content tells them apart. Rows of one image get fresh distractors, template and label.
///
/// Deterministic: the same arguments give identical samples (pixels included).
pub fn caption_contest(
    n_images: usize,
    choices: usize,
    rows_per_image: usize,
    size: u32,
    seed: u64,
) -> Vec<SynthSample> {
    let choices = choices.clamp(1, 26);
    let rows_per_image = rows_per_image.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n_images.saturating_mul(rows_per_image));
    for i in 0..n_images {
        let scene = Scene::random(&mut rng);
        let image = draw_scene(&scene, size);
        let group = format!("img{i:05}");
        let filename = format!("{group}.png");
        for _ in 0..rows_per_image {
            let template = rng.random_range(0..CAPTION_TEMPLATES);
            let label = rng.random_range(0..choices);
            let mut caption_choices: Vec<String> = distractors(&scene, choices - 1, &mut rng)
                .iter()
                .map(|d| d.describe(template))
                .collect();
            caption_choices.insert(label, scene.describe(template));
            out.push(SynthSample {
                filename: filename.clone(),
                image: image.clone(),
                caption_choices,
                label,
                group: group.clone(),
                scene,
            });
        }
    }
    out
}

/// Whether `other`'s caption is false for an image of `scene` (they differ in shape or colour).
fn is_false_for(other: &Scene, scene: &Scene) -> bool {
    other.shape != scene.shape || other.color != scene.color
}

/// `n` distinct scenes, each false for `scene`: half (in expectation) differ from it in exactly one of shape and
/// colour, the others are random.
fn distractors(scene: &Scene, n: usize, rng: &mut ChaCha8Rng) -> Vec<Scene> {
    let mut chosen: Vec<Scene> = Vec::with_capacity(n);
    while chosen.len() < n {
        let mut found = None;
        for _ in 0..64 {
            let candidate = if rng.random_bool(0.5) {
                let mut c = *scene;
                if rng.random_bool(0.5) {
                    c.shape = Shape::ALL[rng.random_range(0..Shape::ALL.len())];
                } else {
                    c.color = Color::ALL[rng.random_range(0..Color::ALL.len())];
                }
                c
            } else {
                Scene::random(rng)
            };
            if is_false_for(&candidate, scene) && !chosen.contains(&candidate) {
                found = Some(candidate);
                break;
            }
        }
        // Practically never needed (there are 500+ false scenes and at most 25 distractors), but keeps this total.
        let next = found.or_else(|| {
            Scene::all()
                .into_iter()
                .find(|c| is_false_for(c, scene) && !chosen.contains(c))
        });
        match next {
            Some(c) => chosen.push(c),
            None => break,
        }
    }
    chosen
}

// ---------------------------------------------------------------------------------------------------------------
// Writing a dataset
// ---------------------------------------------------------------------------------------------------------------

/// Writes `samples` as a dataset folder: each distinct image once as `dir/images/<filename>` (PNG) and one JSON
/// object per row in `dir/metadata.jsonl`:
///
/// `{"filename": "img00007.png", "caption_choices": [...], "label": "C", "instance_id": "img00007-0",
///   "image_description": "a red circle in the middle on a light background"}`
///
/// `filename` is the bare file name, relative to `dir/images/`; `instance_id` is `<group>-<k>` for the group's
/// k-th row. Creates `dir` as needed and returns the path of `metadata.jsonl`.
pub fn write_dataset(dir: &Path, samples: &[SynthSample]) -> Result<PathBuf> {
    let images_dir = dir.join(IMAGES_DIR);
    std::fs::create_dir_all(&images_dir).map_err(|e| Error::io(&images_dir, e))?;

    let mut written: Vec<(&str, &RgbImage)> = Vec::new();
    let mut rows_per_group: HashMap<&str, usize> = HashMap::new();
    let mut lines = Vec::new();
    for (row, s) in samples.iter().enumerate() {
        check_filename(&s.filename, row)?;
        crate::vocab::check_label(s.label, s.caption_choices.len(), &format!("row {row} ({})", s.filename))?;
        if s.caption_choices.len() > 26 {
            return Err(Error::Invalid(format!(
                "row {row} ({}): {} caption choices, at most 26 (A..Z) can be labelled",
                s.filename,
                s.caption_choices.len()
            )));
        }
        match written.iter().find(|(name, _)| *name == s.filename) {
            Some((_, img)) if *img != &s.image => {
                return Err(Error::Invalid(format!(
                    "row {row}: two different images share the file name {}",
                    s.filename
                )));
            }
            Some(_) => {}
            None => {
                let path = images_dir.join(&s.filename);
                std::fs::write(&path, png_bytes(&s.image, &path)?)
                    .map_err(|e| Error::io(&path, e))?;
                written.push((&s.filename, &s.image));
            }
        }
        let k = rows_per_group.entry(s.group.as_str()).or_insert(0);
        let instance_id = format!("{}-{k}", s.group);
        *k += 1;
        let line = serde_json::json!({
            "filename": s.filename,
            "caption_choices": s.caption_choices,
            "label": letter(s.label),
            "instance_id": instance_id,
            "image_description": s.scene.caption(),
        });
        lines.push(serde_json::to_string(&line)?);
    }

    let meta = dir.join(METADATA_FILE);
    let file = std::fs::File::create(&meta).map_err(|e| Error::io(&meta, e))?;
    let mut w = std::io::BufWriter::new(file);
    for line in &lines {
        writeln!(w, "{line}").map_err(|e| Error::io(&meta, e))?;
    }
    w.flush().map_err(|e| Error::io(&meta, e))?;
    Ok(meta)
}

/// A sample's file name must be a plain `.png` file name (it becomes a path under `images/`).
fn check_filename(name: &str, row: usize) -> Result<()> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && Path::new(name).file_name().is_some_and(|f| f == name);
    let png = Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if plain && png {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "row {row}: file name {name:?} must be a plain file name ending in .png"
        )))
    }
}

/// Encodes an image as PNG in memory.
fn png_bytes(img: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("{}: cannot encode PNG: {e}", path.display())))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_checked() {
        assert!(check_filename("img00001.png", 0).is_ok());
        for bad in ["", "..", "a/b.png", "a\\b.png", "img.jpg", "/abs.png"] {
            assert!(check_filename(bad, 0).is_err(), "{bad:?}");
        }
    }
}
