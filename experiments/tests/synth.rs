//! Tests of the generated data (`experiments::data::synth`): drawings, captions, caption-contest rows, the dataset
//! writer and the tiny tokenizer.

use std::collections::{HashMap, HashSet};

use experiments::vocab::letter;
use experiments::data::synth::{
    caption_contest, draw_scene, tiny_tokenizer_json, vocabulary, write_dataset,
    write_tiny_tokenizer, Background, Color, Layout, Position, Scene, Shape, SynthSample,
    BOS_TOKEN, CAPTION_TEMPLATES, EOS_TOKEN, IMAGES_DIR, METADATA_FILE, UNK_TOKEN,
};
use image::RgbImage;

fn scene(shape: Shape, color: Color, background: Background, layout: Layout) -> Scene {
    Scene {
        shape,
        color,
        background,
        layout,
    }
}

fn centred(shape: Shape) -> Scene {
    scene(
        shape,
        Color::Red,
        Background::Light,
        Layout::Single(Position::Center),
    )
}

/// Mask of the pixels that have the shape colour.
fn mask(img: &RgbImage, s: &Scene) -> Vec<bool> {
    img.pixels().map(|p| *p == s.color.rgb()).collect()
}

/// Number of 4-connected components of `mask` (a `size`×`size` grid).
fn components(mask: &[bool], size: usize) -> usize {
    let mut seen = vec![false; mask.len()];
    let mut n = 0;
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        n += 1;
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(i) = stack.pop() {
            let (x, y) = (i % size, i / size);
            let mut push = |j: usize| {
                if mask[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                push(i - 1);
            }
            if x + 1 < size {
                push(i + 1);
            }
            if y > 0 {
                push(i - size);
            }
            if y + 1 < size {
                push(i + size);
            }
        }
    }
    n
}

fn words_outside_vocabulary(text: &str, vocab: &HashSet<String>) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| !vocab.contains(*w))
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------------------------------------------------------ drawings

#[test]
fn images_have_two_colours_and_the_shape_is_clearly_visible() {
    for size in [32u32, 64] {
        for s in Scene::all() {
            let img = draw_scene(&s, size);
            assert_eq!(img.dimensions(), (size, size));
            let fg = mask(&img, &s).iter().filter(|&&m| m).count();
            let bg = img.pixels().filter(|p| **p == s.background.rgb()).count();
            assert_eq!(
                fg + bg,
                (size * size) as usize,
                "{s:?}: a pixel is neither shape nor background"
            );
            let frac = fg as f64 / (size * size) as f64;
            assert!(
                frac >= 0.07,
                "{s:?} at {size}: shape covers only {frac:.3} of the image"
            );
            assert!(
                frac <= 0.5,
                "{s:?} at {size}: shape covers {frac:.3} of the image"
            );
        }
    }
}

#[test]
fn centre_and_corner_pixels() {
    let s = centred(Shape::Circle);
    let img = draw_scene(&s, 64);
    assert_eq!(*img.get_pixel(32, 32), Color::Red.rgb());
    assert_eq!(*img.get_pixel(0, 0), Background::Light.rgb());
    let ring = draw_scene(
        &scene(
            Shape::Ring,
            Color::Blue,
            Background::Dark,
            Layout::Single(Position::Center),
        ),
        64,
    );
    assert_eq!(
        *ring.get_pixel(32, 32),
        Background::Dark.rgb(),
        "a ring has a hole"
    );
    assert_eq!(*ring.get_pixel(32, 12), Color::Blue.rgb());
}

#[test]
fn shapes_are_pairwise_distinct_at_32_and_64() {
    for size in [32u32, 64] {
        for layout in Layout::all() {
            let masks: Vec<(Shape, Vec<bool>)> = Shape::ALL
                .iter()
                .map(|&sh| {
                    let s = scene(sh, Color::Red, Background::Light, layout);
                    (sh, mask(&draw_scene(&s, size), &s))
                })
                .collect();
            for (i, (a, ma)) in masks.iter().enumerate() {
                for (b, mb) in &masks[i + 1..] {
                    let differ = ma.iter().zip(mb).filter(|(x, y)| x != y).count();
                    let union = ma.iter().zip(mb).filter(|(x, y)| **x || **y).count();
                    // Per shape drawn, at least 20 pixels at 32x32 (80 at 64x64) and 15% of the union tell the
                    // two apart.
                    let per_shape =
                        differ as f64 / layout.count() as f64 * (32.0 / size as f64).powi(2);
                    let frac = differ as f64 / union as f64;
                    assert!(
                        per_shape >= 20.0 && frac >= 0.15,
                        "{a:?} vs {b:?} in {layout:?} at {size}: only {differ} pixels differ ({frac:.2} of {union})"
                    );
                }
            }
        }
    }
}

#[test]
fn shape_counts_and_positions_are_drawn() {
    for size in [32u32, 64] {
        for shape in Shape::ALL {
            for layout in Layout::all() {
                let s = scene(shape, Color::Green, Background::Dark, layout);
                let m = mask(&draw_scene(&s, size), &s);
                let n = components(&m, size as usize);
                // Stripes are three bars each; every other shape is one connected blob.
                let per_shape = if shape == Shape::Stripes { 3 } else { 1 };
                assert_eq!(n, layout.count() * per_shape, "{s:?} at {size}");

                // The centroid sits where the caption says.
                let (mut sx, mut sy, mut k) = (0.0, 0.0, 0.0);
                for (i, _) in m.iter().enumerate().filter(|(_, &on)| on) {
                    sx += (i % size as usize) as f64 + 0.5;
                    sy += (i / size as usize) as f64 + 0.5;
                    k += 1.0;
                }
                let (cx, cy) = (sx / k / size as f64, sy / k / size as f64);
                let ok = match layout {
                    Layout::Single(Position::Center) | Layout::Pair | Layout::Trio => {
                        (cx - 0.5).abs() < 0.1 && (cy - 0.5).abs() < 0.12
                    }
                    Layout::Single(Position::Left) => cx < 0.35,
                    Layout::Single(Position::Right) => cx > 0.65,
                    Layout::Single(Position::Top) => cy < 0.35,
                    Layout::Single(Position::Bottom) => cy > 0.65,
                };
                assert!(ok, "{s:?} at {size}: centroid ({cx:.2}, {cy:.2})");
            }
        }
    }
}

#[test]
fn drawing_is_fast() {
    let scenes = Scene::all();
    let start = std::time::Instant::now();
    for s in &scenes {
        std::hint::black_box(draw_scene(s, 64));
    }
    let per_image = start.elapsed() / scenes.len() as u32;
    println!("{per_image:?} per 64x64 image");
    // A few ms per image is the budget; this is generous for slow shared machines and debug builds.
    assert!(
        per_image < std::time::Duration::from_millis(5),
        "{per_image:?} per 64x64 image"
    );
}

// ------------------------------------------------------------------------------------------------ captions

#[test]
fn captions_are_lower_case_vocabulary_words_and_unambiguous() {
    let vocab: HashSet<String> = vocabulary().into_iter().collect();
    let scenes = Scene::all();
    assert_eq!(scenes.len(), 7 * 6 * 2 * 7);
    for t in 0..CAPTION_TEMPLATES {
        let mut seen = HashMap::new();
        for s in &scenes {
            let c = s.describe(t);
            assert_eq!(c, c.to_lowercase());
            assert!(
                c.chars().all(|ch| ch.is_ascii_lowercase() || ch == ' '),
                "{c:?}"
            );
            assert!(words_outside_vocabulary(&c, &vocab).is_empty(), "{c:?}");
            assert!(
                c.contains(s.color.word()) && c.contains(s.background.word()),
                "{c:?}"
            );
            if let Some(other) = seen.insert(c.clone(), *s) {
                panic!("{other:?} and {s:?} share the caption {c:?}");
            }
        }
    }
    assert_eq!(scenes[0].caption(), scenes[0].describe(0));
    assert_eq!(
        scene(
            Shape::Circle,
            Color::Red,
            Background::Light,
            Layout::Single(Position::Center)
        )
        .caption(),
        "a red circle in the middle on a light background"
    );
    assert_eq!(
        scene(
            Shape::Cross,
            Color::Orange,
            Background::Dark,
            Layout::Single(Position::Left)
        )
        .describe(4),
        "a dark background with an orange cross on the left"
    );
    assert_eq!(
        scene(Shape::Ring, Color::Blue, Background::Dark, Layout::Trio).describe(2),
        "there are three blue rings here on a dark background"
    );
    // Every vocabulary word is used by some caption.
    let used: HashSet<String> = (0..CAPTION_TEMPLATES)
        .flat_map(|t| scenes.iter().map(move |s| s.describe(t)))
        .flat_map(|c| c.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(used, vocab);
}

// ------------------------------------------------------------------------------------------------ caption contest

#[test]
fn contest_rows_are_well_formed() {
    let rows = caption_contest(40, 5, 3, 32, 7);
    assert_eq!(rows.len(), 120);
    let mut by_group: HashMap<&str, Vec<&SynthSample>> = HashMap::new();
    let (mut hard, mut distractors) = (0, 0);
    for r in &rows {
        assert_eq!(r.caption_choices.len(), 5);
        assert!(r.label < 5);
        let distinct: HashSet<&String> = r.caption_choices.iter().collect();
        assert_eq!(
            distinct.len(),
            5,
            "duplicate choices in {:?}",
            r.caption_choices
        );
        assert_eq!(r.image, draw_scene(&r.scene, 32));
        assert_eq!(r.filename, format!("{}.png", r.group));

        // The right caption describes the image; no distractor does, in any template.
        let right = &r.caption_choices[r.label];
        let t = (0..CAPTION_TEMPLATES)
            .find(|&t| r.scene.describe(t) == *right)
            .expect("the labelled caption describes the scene");
        let true_captions: HashSet<String> = (0..CAPTION_TEMPLATES)
            .map(|t| r.scene.describe(t))
            .collect();
        for (i, c) in r.caption_choices.iter().enumerate() {
            if i == r.label {
                continue;
            }
            assert!(
                !true_captions.contains(c),
                "distractor {c:?} describes {:?}",
                r.scene
            );
            // Same template; it names a different shape or colour.
            let d = Scene::all()
                .into_iter()
                .find(|s| s.describe(t) == *c)
                .expect("a distractor describes some scene in the row's template");
            assert!(d.shape != r.scene.shape || d.color != r.scene.color);
            distractors += 1;
            let same_rest = d.background == r.scene.background && d.layout == r.scene.layout;
            if same_rest && ((d.shape == r.scene.shape) != (d.color == r.scene.color)) {
                hard += 1;
            }
        }
        by_group.entry(&r.group).or_default().push(r);
    }
    assert_eq!(by_group.len(), 40);
    let hard_frac = hard as f64 / distractors as f64;
    assert!(
        (0.3..0.7).contains(&hard_frac),
        "{hard_frac:.2} of distractors are hard"
    );
    for (g, rs) in &by_group {
        assert_eq!(rs.len(), 3);
        assert!(
            rs.iter()
                .all(|r| r.image == rs[0].image && r.filename == rs[0].filename),
            "{g}"
        );
        assert!(
            rs.iter()
                .any(|r| r.caption_choices != rs[0].caption_choices),
            "{g}: rows are all the same"
        );
    }
}

#[test]
fn right_answer_position_is_uniform() {
    let rows = caption_contest(500, 5, 4, 8, 123);
    let mut counts = [0usize; 5];
    for r in &rows {
        counts[r.label] += 1;
    }
    // 2000 rows, 400 expected per letter, standard deviation ~18.
    for (i, &c) in counts.iter().enumerate() {
        assert!(
            (330..=470).contains(&c),
            "label {} drawn {c} times of 2000: {counts:?}",
            letter(i)
        );
    }
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = caption_contest(12, 5, 2, 32, 42);
    let b = caption_contest(12, 5, 2, 32, 42);
    assert_eq!(a, b);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.image.as_raw(), y.image.as_raw());
    }
    let c = caption_contest(12, 5, 2, 32, 43);
    assert_ne!(a, c);
    let captions = |v: &[SynthSample]| {
        v.iter()
            .map(|s| s.caption_choices.clone())
            .collect::<Vec<_>>()
    };
    assert_ne!(captions(&a), captions(&c));
    assert!(a.iter().zip(&c).any(|(x, y)| x.image != y.image));
}

#[test]
fn odd_arguments_are_clamped_not_panicking() {
    assert!(caption_contest(0, 5, 1, 32, 0).is_empty());
    let one = caption_contest(3, 1, 0, 16, 0);
    assert_eq!(one.len(), 3);
    assert!(one
        .iter()
        .all(|r| r.caption_choices.len() == 1 && r.label == 0));
    let many = caption_contest(2, 100, 1, 16, 0);
    assert!(many.iter().all(|r| r.caption_choices.len() == 26));
    let tiny = caption_contest(2, 5, 1, 0, 0);
    assert!(tiny.iter().all(|r| r.image.dimensions() == (0, 0)));
}

// ------------------------------------------------------------------------------------------------ dataset files

#[test]
fn write_dataset_writes_pngs_and_metadata() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rows = caption_contest(6, 5, 2, 32, 5);
    let meta = write_dataset(dir.path(), &rows).expect("written");
    assert_eq!(meta, dir.path().join(METADATA_FILE));

    let text = std::fs::read_to_string(&meta).expect("metadata readable");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), rows.len());
    let mut ids = HashSet::new();
    for (line, r) in lines.iter().zip(&rows) {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        assert_eq!(v["filename"], r.filename.as_str());
        assert_eq!(v["caption_choices"], serde_json::json!(r.caption_choices));
        assert_eq!(v["label"], letter(r.label));
        assert_eq!(v["image_description"], r.scene.caption());
        let id = v["instance_id"]
            .as_str()
            .expect("instance_id is a string")
            .to_owned();
        assert!(id.starts_with(&r.group));
        assert!(ids.insert(id), "instance ids are unique");

        let png = dir.path().join(IMAGES_DIR).join(&r.filename);
        let back = image::open(&png).expect("PNG decodes").to_rgb8();
        assert_eq!(back, r.image);
    }
    let files = std::fs::read_dir(dir.path().join(IMAGES_DIR))
        .expect("images dir")
        .count();
    assert_eq!(files, 6, "one PNG per image, not per row");

    // Writing the same data again gives byte-identical files.
    let dir2 = tempfile::tempdir().expect("temp dir");
    let meta2 = write_dataset(dir2.path(), &caption_contest(6, 5, 2, 32, 5)).expect("written");
    assert_eq!(std::fs::read(&meta).ok(), std::fs::read(&meta2).ok());
    let f = format!("{}/{}", IMAGES_DIR, rows[0].filename);
    assert_eq!(
        std::fs::read(dir.path().join(&f)).ok(),
        std::fs::read(dir2.path().join(&f)).ok()
    );
}

#[test]
fn write_dataset_rejects_bad_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = caption_contest(2, 5, 1, 16, 1);

    let mut bad = good.clone();
    bad[0].filename = "../escape.png".into();
    assert!(write_dataset(dir.path(), &bad).is_err());

    let mut bad = good.clone();
    bad[0].label = 5;
    assert!(write_dataset(dir.path(), &bad).is_err());

    let mut bad = good.clone();
    bad[1].filename = bad[0].filename.clone();
    let other = scene(Shape::Cross, Color::Blue, Background::Dark, Layout::Pair);
    bad[1].image = draw_scene(&other, 16);
    if bad[0].image == bad[1].image {
        bad[1].image = draw_scene(&centred(Shape::Ring), 16);
    }
    let err = write_dataset(dir.path(), &bad).expect_err("two different images under one name");
    assert!(err.to_string().contains(&bad[0].filename), "{err}");
}

// ------------------------------------------------------------------------------------------------ tokenizer

fn load_tokenizer() -> tokenizers::Tokenizer {
    let bytes = serde_json::to_vec(&tiny_tokenizer_json()).expect("serialisable");
    tokenizers::Tokenizer::from_bytes(bytes).expect("the tokenizers crate loads it")
}

#[test]
fn tiny_tokenizer_follows_clip_conventions() {
    let tok = load_tokenizer();
    let n = vocabulary().len();
    assert_eq!(tok.get_vocab_size(true), n + 3);
    let bos = tok.token_to_id(BOS_TOKEN).expect("bos");
    let eos = tok.token_to_id(EOS_TOKEN).expect("eos");
    let unk = tok.token_to_id(UNK_TOKEN).expect("unk");
    assert_eq!(
        (unk, bos, eos),
        (0, n as u32 + 1, n as u32 + 2),
        "bos and eos are the last two ids"
    );

    for r in caption_contest(20, 5, 1, 8, 9) {
        for c in &r.caption_choices {
            let enc = tok.encode(c.as_str(), true).expect("encodes");
            let ids = enc.get_ids();
            assert_eq!(ids.len(), c.split_whitespace().count() + 2, "{c:?}");
            assert_eq!(ids.first(), Some(&bos));
            assert_eq!(ids.last(), Some(&eos));
            assert!(!ids.contains(&unk), "{c:?} has unknown words");
            assert!(ids[1..ids.len() - 1].iter().all(|&i| i != bos && i != eos));
            let words: Vec<&str> = c.split_whitespace().collect();
            assert_eq!(&enc.get_tokens()[1..ids.len() - 1], words.as_slice());
        }
    }

    // Lower-cases, splits punctuation, maps unknown words to [UNK].
    let a = tok.encode("A RED Circle", true).expect("encodes");
    let b = tok.encode("a red circle", true).expect("encodes");
    assert_eq!(a.get_ids(), b.get_ids());
    let c = tok.encode("red,circle zebra", true).expect("encodes");
    let red = tok.token_to_id("red").expect("red");
    let circle = tok.token_to_id("circle").expect("circle");
    assert_eq!(c.get_ids(), &[bos, red, unk, circle, unk, eos]);
    // Without special tokens: just the words.
    let plain = tok.encode("a red circle", false).expect("encodes");
    assert_eq!(plain.get_ids().len(), 3);
}

#[test]
fn write_tiny_tokenizer_round_trips() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokenizer.json");
    write_tiny_tokenizer(&path).expect("written");
    let tok = tokenizers::Tokenizer::from_file(&path).expect("loads from file");
    assert_eq!(tok.get_vocab_size(true), vocabulary().len() + 3);
    assert!(write_tiny_tokenizer(&dir.path().join("missing/dir/tokenizer.json")).is_err());
}
