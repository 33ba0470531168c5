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

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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

// ---------------------------------------------------------------------------------------------------------------
// Scenes
// ---------------------------------------------------------------------------------------------------------------

/// The shape drawn in a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Cross,
    Ring,
    Stripes,
    Diamond,
}

impl Shape {
    /// Every shape, in a fixed order.
    pub const ALL: [Shape; 7] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Cross,
        Shape::Ring,
        Shape::Stripes,
        Shape::Diamond,
    ];

    /// The noun phrase for one of them ("circle", "striped tile").
    pub fn noun(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
            Shape::Stripes => "striped tile",
            Shape::Diamond => "diamond",
        }
    }

    /// The noun phrase for several of them ("circles", "striped tiles").
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Cross => "crosses",
            Shape::Ring => "rings",
            Shape::Stripes => "striped tiles",
            Shape::Diamond => "diamonds",
        }
    }

    /// Whether the point `(u, v)`, in the shape's unit box (`[-1, 1]²`, `v` pointing down), is inside it.
    fn contains(self, u: f32, v: f32) -> bool {
        match self {
            Shape::Circle => u * u + v * v <= 1.0,
            Shape::Square => u.abs() <= 0.9 && v.abs() <= 0.9,
            // Apex at the top, base at v = 0.95 as wide as the box.
            Shape::Triangle => (-1.0..=0.95).contains(&v) && u.abs() <= (v + 1.0) / 1.95,
            Shape::Cross => {
                (u.abs() <= 0.3 && v.abs() <= 1.0) || (v.abs() <= 0.3 && u.abs() <= 1.0)
            }
            Shape::Ring => {
                let r2 = u * u + v * v;
                (0.55 * 0.55..=1.0).contains(&r2)
            }
            // Three horizontal bars with two gaps, 1.6 wide and 1.8 high.
            Shape::Stripes => {
                u.abs() <= 0.8 && v.abs() <= 0.9 && ((v + 0.9) / 0.36).floor() as i32 % 2 == 0
            }
            Shape::Diamond => u.abs() + v.abs() <= 1.0,
        }
    }
}

/// The colour of the shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
}

impl Color {
    /// Every colour, in a fixed order.
    pub const ALL: [Color; 6] = [
        Color::Red,
        Color::Green,
        Color::Blue,
        Color::Yellow,
        Color::Purple,
        Color::Orange,
    ];

    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Yellow => "yellow",
            Color::Purple => "purple",
            Color::Orange => "orange",
        }
    }

    /// The pixel value. Saturated and far apart from each other and from both backgrounds.
    pub fn rgb(self) -> Rgb<u8> {
        Rgb(match self {
            Color::Red => [220, 30, 30],
            Color::Green => [30, 170, 50],
            Color::Blue => [30, 80, 230],
            Color::Yellow => [245, 215, 20],
            Color::Purple => [150, 50, 190],
            Color::Orange => [250, 130, 10],
        })
    }
}

/// The plain background of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    Light,
    Dark,
}

impl Background {
    /// Both backgrounds.
    pub const ALL: [Background; 2] = [Background::Light, Background::Dark];

    /// The caption word ("light", "dark").
    pub fn word(self) -> &'static str {
        match self {
            Background::Light => "light",
            Background::Dark => "dark",
        }
    }

    /// The pixel value (neutral grey, so that no shape colour is confused with it).
    pub fn rgb(self) -> Rgb<u8> {
        Rgb(match self {
            Background::Light => [225, 225, 225],
            Background::Dark => [35, 35, 35],
        })
    }
}

/// Where a single shape sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    Center,
    Left,
    Right,
    Top,
    Bottom,
}

impl Position {
    /// Every position, in a fixed order.
    pub const ALL: [Position; 5] = [
        Position::Center,
        Position::Left,
        Position::Right,
        Position::Top,
        Position::Bottom,
    ];

    /// The caption phrase ("in the middle", "on the left", ...).
    pub fn phrase(self) -> &'static str {
        match self {
            Position::Center => "in the middle",
            Position::Left => "on the left",
            Position::Right => "on the right",
            Position::Top => "at the top",
            Position::Bottom => "at the bottom",
        }
    }
}

/// How many shapes a scene has and where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One shape at a position.
    Single(Position),
    /// Two shapes side by side.
    Pair,
    /// Three shapes: two above, one below.
    Trio,
}

impl Layout {
    /// Every layout, in a fixed order.
    pub fn all() -> Vec<Layout> {
        Position::ALL
            .iter()
            .map(|&p| Layout::Single(p))
            .chain([Layout::Pair, Layout::Trio])
            .collect()
    }

    /// The number of shapes drawn.
    pub fn count(self) -> usize {
        match self {
            Layout::Single(_) => 1,
            Layout::Pair => 2,
            Layout::Trio => 3,
        }
    }

    /// Centres and radius of the shapes, as fractions of the image side.
    fn placements(self) -> (&'static [(f32, f32)], f32) {
        match self {
            Layout::Single(Position::Center) => (&[(0.5, 0.5)], 0.34),
            Layout::Single(Position::Left) => (&[(0.27, 0.5)], 0.24),
            Layout::Single(Position::Right) => (&[(0.73, 0.5)], 0.24),
            Layout::Single(Position::Top) => (&[(0.5, 0.27)], 0.24),
            Layout::Single(Position::Bottom) => (&[(0.5, 0.73)], 0.24),
            Layout::Pair => (&[(0.26, 0.5), (0.74, 0.5)], 0.22),
            Layout::Trio => (&[(0.27, 0.29), (0.73, 0.29), (0.5, 0.73)], 0.2),
        }
    }
}

/// What one generated image shows: `layout.count()` equal shapes of one colour on a plain background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scene {
    pub shape: Shape,
    pub color: Color,
    pub background: Background,
    pub layout: Layout,
}

/// Number of caption templates [`Scene::describe`] knows (template 0 is [`Scene::caption`]).
pub const CAPTION_TEMPLATES: usize = 8;

impl Scene {
    /// A uniformly random shape and colour and background; single shapes are more common than two or three.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Scene {
        let shape = Shape::ALL[rng.random_range(0..Shape::ALL.len())];
        let color = Color::ALL[rng.random_range(0..Color::ALL.len())];
        let background = Background::ALL[rng.random_range(0..Background::ALL.len())];
        let layout = match rng.random_range(0..10u32) {
            0..=5 => Layout::Single(Position::ALL[rng.random_range(0..Position::ALL.len())]),
            6 | 7 => Layout::Pair,
            _ => Layout::Trio,
        };
        Scene {
            shape,
            color,
            background,
            layout,
        }
    }

    /// Every possible scene, in a fixed order.
    pub fn all() -> Vec<Scene> {
        let layouts = Layout::all();
        let mut out = Vec::new();
        for &shape in &Shape::ALL {
            for &color in &Color::ALL {
                for &background in &Background::ALL {
                    for &layout in &layouts {
                        out.push(Scene {
                            shape,
                            color,
                            background,
                            layout,
                        });
                    }
                }
            }
        }
        out
    }

    /// The canonical caption, e.g. "a red circle in the middle on a light background".
    pub fn caption(&self) -> String {
        self.describe(0)
    }

    /// The caption in template `template` (taken modulo [`CAPTION_TEMPLATES`]), e.g.
    /// "there are three blue rings here on a dark background". Different scenes always get different captions
    /// from the same template.
    pub fn describe(&self, template: usize) -> String {
        let color = self.color.word();
        let (things, be) = match self.layout {
            Layout::Single(pos) => {
                let noun = self.shape.noun();
                let article = if color.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                (format!("{article} {color} {noun} {}", pos.phrase()), "is")
            }
            Layout::Pair => (format!("two {color} {}", self.shape.plural()), "are"),
            Layout::Trio => (format!("three {color} {}", self.shape.plural()), "are"),
        };
        let bg = self.background.word();
        match template % CAPTION_TEMPLATES {
            0 => format!("{things} on a {bg} background"),
            1 => format!("a drawing of {things} on a {bg} background"),
            2 => format!("there {be} {things} here on a {bg} background"),
            3 => format!("a picture of {things} against a {bg} background"),
            4 => format!("a {bg} background with {things}"),
            5 => format!("a simple {bg} image showing {things}"),
            6 => format!("an image of {things} on a {bg} background"),
            _ => format!("{things} drawn on a {bg} background"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------------------------------------------

/// Draws `scene` as a `size`×`size` image: flat colours, no anti-aliasing (a pixel is inside a shape when its
/// centre is). Takes well under a millisecond at 64×64.
pub fn draw_scene(scene: &Scene, size: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(size, size, scene.background.rgb());
    let fill = scene.color.rgb();
    let side = size as f32;
    let (centres, radius) = scene.layout.placements();
    let r = radius * side;
    if r <= 0.0 {
        return img;
    }
    for &(fx, fy) in centres {
        let (cx, cy) = (fx * side, fy * side);
        // Pixels whose centre can fall inside the unit box around (cx, cy).
        let x0 = (cx - r - 0.5).floor().max(0.0) as u32;
        let y0 = (cy - r - 0.5).floor().max(0.0) as u32;
        let x1 = ((cx + r + 0.5).ceil() as u32).min(size);
        let y1 = ((cy + r + 0.5).ceil() as u32).min(size);
        for y in y0..y1 {
            let v = (y as f32 + 0.5 - cy) / r;
            for x in x0..x1 {
                let u = (x as f32 + 0.5 - cx) / r;
                if scene.shape.contains(u, v) {
                    img.put_pixel(x, y, fill);
                }
            }
        }
    }
    img
}

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
        if s.label >= s.caption_choices.len() {
            return Err(Error::Invalid(format!(
                "row {row} ({}): label {} but only {} caption choices",
                s.filename,
                s.label,
                s.caption_choices.len()
            )));
        }
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
            "label": crate::vocab::letter(s.label),
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

// ---------------------------------------------------------------------------------------------------------------
// Tiny tokenizer
// ---------------------------------------------------------------------------------------------------------------

/// Every word a generated caption can use, sorted and without duplicates.
pub fn vocabulary() -> Vec<String> {
    let mut words: BTreeSet<&'static str> = BTreeSet::new();
    let fixed = [
        // counts and articles
        "a",
        "an",
        "two",
        "three",
        "is",
        "are", // templates
        "on",
        "background",
        "drawing",
        "of",
        "there",
        "here",
        "picture",
        "against",
        "with",
        "simple",
        "image",
        "showing",
        "drawn", // positions
        "in",
        "the",
        "middle",
        "left",
        "right",
        "at",
        "top",
        "bottom",
    ];
    words.extend(fixed);
    for s in Shape::ALL {
        words.extend(s.noun().split_whitespace());
        words.extend(s.plural().split_whitespace());
    }
    words.extend(Color::ALL.iter().map(|c| c.word()));
    words.extend(Background::ALL.iter().map(|b| b.word()));
    words.into_iter().map(str::to_owned).collect()
}

/// A Hugging Face `tokenizer.json` for the generated captions, loadable with `tokenizers::Tokenizer::from_bytes`.
///
/// Lower-cases, splits on whitespace and punctuation, and maps each word through a word-level vocabulary:
/// `[UNK]` = 0, the words of [`vocabulary`] = 1..=n, then [`BOS_TOKEN`] = n+1 and [`EOS_TOKEN`] = n+2 (the largest
/// id, as in CLIP). Its post-processor wraps every sequence as `<|startoftext|> … <|endoftext|>`. The vocabulary
/// size is `vocabulary().len() + 3`.
pub fn tiny_tokenizer_json() -> serde_json::Value {
    use serde_json::{json, Map, Value};

    let words = vocabulary();
    let bos_id = words.len() + 1;
    let eos_id = words.len() + 2;
    let mut vocab = Map::new();
    vocab.insert(UNK_TOKEN.to_owned(), json!(0));
    for (i, w) in words.iter().enumerate() {
        vocab.insert(w.clone(), json!(i + 1));
    }
    vocab.insert(BOS_TOKEN.to_owned(), json!(bos_id));
    vocab.insert(EOS_TOKEN.to_owned(), json!(eos_id));

    let added = |id: usize, content: &str| {
        json!({
            "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true
        })
    };
    let special = |name: &str| json!({ "SpecialToken": { "id": name, "type_id": 0 } });
    let seq = |id: &str| json!({ "Sequence": { "id": id, "type_id": 0 } });
    let special_entry =
        |name: &str, id: usize| json!({ "id": name, "ids": [id], "tokens": [name] });

    json!({
        "version": "1.0",
        "truncation": Value::Null,
        "padding": Value::Null,
        "added_tokens": [added(0, UNK_TOKEN), added(bos_id, BOS_TOKEN), added(eos_id, EOS_TOKEN)],
        "normalizer": { "type": "Lowercase" },
        "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special(BOS_TOKEN), seq("A"), special(EOS_TOKEN)],
            "pair": [special(BOS_TOKEN), seq("A"), special(EOS_TOKEN), seq("B"), special(EOS_TOKEN)],
            "special_tokens": {
                BOS_TOKEN: special_entry(BOS_TOKEN, bos_id),
                EOS_TOKEN: special_entry(EOS_TOKEN, eos_id),
            }
        },
        "decoder": Value::Null,
        "model": { "type": "WordLevel", "vocab": Value::Object(vocab), "unk_token": UNK_TOKEN }
    })
}

/// Writes [`tiny_tokenizer_json`] to `path` (pretty-printed).
pub fn write_tiny_tokenizer(path: &Path) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(&tiny_tokenizer_json())?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_fit_their_unit_box() {
        // Nothing is drawn outside [-1, 1]², which draw_scene's bounding box relies on.
        for shape in Shape::ALL {
            for i in 0..=100 {
                let t = -1.5 + 3.0 * i as f32 / 100.0;
                for edge in [-1.01f32, 1.01] {
                    assert!(!shape.contains(edge, t), "{shape:?} at ({edge}, {t})");
                    assert!(!shape.contains(t, edge), "{shape:?} at ({t}, {edge})");
                }
            }
        }
    }

    #[test]
    fn filenames_are_checked() {
        assert!(check_filename("img00001.png", 0).is_ok());
        for bad in ["", "..", "a/b.png", "a\\b.png", "img.jpg", "/abs.png"] {
            assert!(check_filename(bad, 0).is_err(), "{bad:?}");
        }
    }
}
