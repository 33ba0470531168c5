//! Tests of the dataset import, continued: broken metadata files, re-verification of images, content hashes and
//! answer letters (helpers in `support/dataset.rs`, shared with `dataset.rs`).


use experiments::data::{
    import, verify_images, ColumnMap,
};
use experiments::validation::ProblemKind;
use experiments::events::{CancelToken, Event, Phase, Recorder};
use experiments::data::synth::{caption_contest, write_dataset};
use experiments::vocab::{letter, letter_to_index};
use experiments::Error;
use image::Rgb;
use serde_json::{json, Value};

#[path = "support/dataset.rs"]
mod support;
use support::*;

// ---------------------------------------------------------------------------------------------------------------
// Broken files
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn broken_parquet_files_are_errors_naming_the_file() -> TestResult {
    let s = Synth::new(2, 1);
    let good = s.path("good.parquet");
    write_synth_parquet(&good, &s.rows)?;
    let bytes = std::fs::read(&good)?;

    let truncated = s.path("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2])?;
    let random = s.path("random.parquet");
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&random, &noise)?;
    let tiny = s.path("tiny.parquet");
    std::fs::write(&tiny, b"PAR1")?;
    // Valid footer, garbage data pages.
    let scrambled = s.path("scrambled.parquet");
    let mut b = bytes.clone();
    for x in b.iter_mut().skip(4).take(bytes.len() / 3) {
        *x ^= 0x5a;
    }
    std::fs::write(&scrambled, &b)?;

    for path in [&truncated, &random, &tiny, &scrambled] {
        let err = run(&options(path, Some(&s.images()))).expect_err("broken parquet");
        eprintln!("{err}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }
    Ok(())
}

#[test]
fn malformed_text_files_are_errors_naming_file_and_line() -> TestResult {
    let s = Synth::new(1, 1);
    let csv_path = s.path("m.csv");
    std::fs::write(
        &csv_path,
        "filename,caption_choices,label\nimg00000.png,\"[\"\"a\"\",\"\"b\"\"]\",A\nimg00000.png,oops\n",
    )?;
    let msg = run(&options(&csv_path, Some(&s.images()))).expect_err("field count").to_string();
    assert!(msg.contains("m.csv") && msg.contains("row 2") && msg.contains("line 3"), "{msg}");

    let jsonl = s.path("m.jsonl");
    std::fs::write(&jsonl, format!("{}\n\n{{\"filename\": \"img00000.png\",\n", Value::Object(s.rows[0].clone())))?;
    let msg = run(&options(&jsonl, Some(&s.images()))).expect_err("bad json").to_string();
    assert!(msg.contains("m.jsonl") && msg.contains("line 3"), "{msg}");

    std::fs::write(&jsonl, "[1, 2]\n")?;
    let msg = run(&options(&jsonl, Some(&s.images()))).expect_err("not an object").to_string();
    assert!(msg.contains("line 1") && msg.contains("object"), "{msg}");

    let unknown = s.path("m.xlsx");
    std::fs::write(&unknown, "x")?;
    let msg = run(&options(&unknown, None)).expect_err("unknown format").to_string();
    assert!(msg.contains(".xlsx"), "{msg}");

    let err = run(&options(&s.path("absent.csv"), None)).expect_err("missing");
    assert!(matches!(err, Error::MissingFile { .. }), "{err}");
    Ok(())
}

#[test]
fn a_missing_column_names_the_column_and_the_file() -> TestResult {
    let s = Synth::new(1, 1);
    let rows: Vec<_> = s
        .rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.remove("label");
            r
        })
        .collect();
    write_jsonl(&s.path("m.jsonl"), &rows);
    write_csv(&s.path("m.csv"), &s.rows);
    let pq = s.path("m.parquet");
    write_parquet(
        &pq,
        &[
            Col::Str("filename", vec![Some("img00000.png".into())]),
            Col::Str("label", vec![Some("A".into())]),
        ],
    )?;
    let mut csv_opts = options(&s.path("m.csv"), Some(&s.images()));
    csv_opts.columns.label = "answer".into();
    for (o, column, file) in [
        (skip(options(&s.path("m.jsonl"), Some(&s.images()))), "`label`", "m.jsonl"),
        (csv_opts, "`answer`", "m.csv"),
        (options(&pq, Some(&s.images())), "`caption_choices`", "m.parquet"),
    ] {
        let err = run(&o).expect_err("missing column");
        let msg = err.to_string();
        assert!(msg.contains(column) && msg.contains(file) && msg.contains("columns found: `"), "{msg}");
        assert_eq!(rejected_report(&err).problems[0].kind, ProblemKind::MissingColumn);
    }
    Ok(())
}

#[test]
fn custom_column_names_are_used() -> TestResult {
    let s = Synth::new(2, 1);
    let rows: Vec<_> = s
        .rows
        .iter()
        .map(|r| json!({"img": r["filename"], "options": r["caption_choices"], "answer": r["label"]}))
        .collect();
    std::fs::write(s.path("m.jsonl"), rows.iter().map(|r| format!("{r}\n")).collect::<String>())?;
    let mut o = options(&s.path("m.jsonl"), Some(&s.images()));
    o.columns =
        ColumnMap { filename: "img".into(), choices: "options".into(), label: "answer".into(), image: "pic".into() };
    let ds = run(&o)?;
    assert_eq!(ds.rows.len(), 2);
    assert_eq!(ds.rows[1].label, s.samples[1].label);
    assert!(ds.rows[0].extra.is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Verifying, hashing, progress
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn verify_images_detects_changed_and_deleted_files() -> TestResult {
    let s = Synth::new(3, 1);
    let ds = run(&options(&s.path("metadata.jsonl"), Some(&s.images())))?;
    assert!(verify_images(&ds.images).is_empty());

    std::fs::write(&ds.images[0].path, solid_png(16, 16, [1, 2, 3]))?;
    std::fs::remove_file(&ds.images[2].path)?;
    let problems = verify_images(&ds.images);
    assert_eq!(problems.len(), 2, "{problems:?}");
    let changed = problems_of(&problems, ProblemKind::ChangedImage);
    let missing = problems_of(&problems, ProblemKind::MissingImage);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].file.as_deref(), Some("img00000.png"));
    assert!(changed[0].reason.contains("changed on disk since import"), "{}", changed[0]);
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].file.as_deref(), Some("img00002.png"));
    Ok(())
}

#[test]
fn content_hash_is_stable_and_follows_image_bytes() -> TestResult {
    let s = Synth::new(3, 2);
    let o = options(&s.path("metadata.jsonl"), Some(&s.images()));
    let a = run(&o)?;
    let b = run(&o)?;
    assert_eq!(a.content_hash, b.content_hash);
    assert_eq!(a.content_hash.len(), 64);

    // Same pixels but one changed: a different file, a different hash.
    let path = s.images().join("img00001.png");
    let mut img = image::open(&path)?.to_rgb8();
    let p = img.get_pixel(0, 0).0;
    img.put_pixel(0, 0, Rgb([p[0] ^ 1, p[1], p[2]]));
    std::fs::write(&path, png_bytes(&img))?;
    let c = run(&o)?;
    assert_ne!(c.content_hash, a.content_hash);
    assert_ne!(c.images[1].sha256, a.images[1].sha256);
    assert_eq!(c.images[0], a.images[0]);

    // Changing the metadata changes it too.
    let mut text = std::fs::read_to_string(s.path("metadata.jsonl"))?;
    text.push('\n');
    std::fs::write(s.path("metadata.jsonl"), text)?;
    assert_ne!(run(&o)?.content_hash, c.content_hash);
    Ok(())
}

#[test]
fn progress_is_reported_about_every_percent() -> TestResult {
    let dir = tempfile::tempdir()?;
    let samples = caption_contest(250, 2, 1, 8, 3);
    let meta = write_dataset(dir.path(), &samples)?;
    let mut rec = Recorder::default();
    let ds = import(&options(&meta, None), &mut rec, CancelToken::new())?;
    assert_eq!(ds.images.len(), 250);
    let progress: Vec<(usize, usize)> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { phase: Phase::Load, done, total, .. } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert!(progress.len() >= 50 && progress.len() <= 102, "{} progress events", progress.len());
    assert_eq!(progress.last(), Some(&(250, 250)));
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0));
    let infos = rec.events.iter().filter(|e| matches!(e, Event::Info { .. })).count();
    assert!(infos >= 2);
    assert!(matches!(rec.events.first(), Some(Event::Info { .. })));
    assert!(matches!(rec.events.last(), Some(Event::Info { message }) if message.contains("250 images")));
    Ok(())
}

#[test]
fn letters_and_indices() {
    assert_eq!(letter_to_index("A"), Some(0));
    assert_eq!(letter_to_index("e"), Some(4));
    assert_eq!(letter_to_index(" Z "), Some(25));
    assert_eq!(letter_to_index("AA"), Some(26));
    assert_eq!(letter_to_index("0"), Some(0));
    assert_eq!(letter_to_index("3"), Some(3));
    assert_eq!(letter_to_index("12"), Some(12));
    for bad in ["", " ", "-1", "A1", "1.5", "ABCD", "é"] {
        assert_eq!(letter_to_index(bad), None, "{bad:?}");
    }
    // letter(i) and its round trip past Z: vocab.rs's own test.
    assert_eq!(letter(4), "E");
}
