//! JPEG decoding against Pillow's (libjpeg-turbo with its defaults: ISLOW IDCT, fancy upsampling), and truncated
//! JPEGs refused as Pillow refuses them ("image file is truncated").
//!
//! The reference files in `tests/reference/jpeg/` and `tests/reference/jpeg_ref.json` come from
//! `experiments/tests/reference/jpeg_ref.py`: each `<case>.jpg` was written by Pillow, each `<case>.png` is
//! Pillow's `Image.open(<case>.jpg).convert("RGB")`, stored losslessly (the versions are recorded in the JSON).

#[path = "support/dataset.rs"]
mod support;

use std::path::{Path, PathBuf};

use experiments::model::preprocess::{decode_image, DecodeLimits};
use image::DynamicImage;
use serde_json::Value;
use support::{options, rejected_report, run, write_jsonl, Synth, TestResult};

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(reference_dir().join("jpeg_ref.json")).expect("read jpeg_ref.json");
    serde_json::from_str(&text).expect("jpeg_ref.json is valid JSON")
}

fn cases() -> Vec<Value> {
    reference()["cases"].as_array().expect("cases").clone()
}

fn case_bytes(name: &str, ext: &str) -> Vec<u8> {
    std::fs::read(reference_dir().join("jpeg").join(format!("{name}.{ext}"))).expect("read reference file")
}

fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Offset just after the first SOS segment, where the entropy-coded scan data begins.
fn scan_start(jpeg: &[u8]) -> usize {
    let sos = jpeg.windows(2).position(|w| w == [0xff, 0xda]).expect("an SOS marker");
    sos + 2 + usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]))
}

/// The JPEG cut at half of its scan data.
fn cut_in_scan(jpeg: &[u8]) -> Vec<u8> {
    let start = scan_start(jpeg);
    jpeg[..start + (jpeg.len() - start) / 2].to_vec()
}

#[test]
fn jpeg_pixels_equal_pillows() {
    let reference = reference();
    eprintln!("reference made with {}", reference["versions"]);
    let mut wrong = Vec::new();
    for case in cases() {
        let name = case["name"].as_str().expect("name");
        let file = format!("{name}.jpg");
        let img = decode_image(&case_bytes(name, "jpg"), Path::new(&file), &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Pillow opens grayscale JPEGs as L, the others as RGB (CMYK ones are converted to RGB by the decoder).
        let want_gray = case["mode"] == "L";
        assert_eq!(matches!(img, DynamicImage::ImageLuma8(_)), want_gray, "{name}: decoded as {:?}", img.color());
        assert!(matches!(img, DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_)), "{name}: {:?}", img.color());
        let ours = img.to_rgb8();
        let pillow = image::load_from_memory(&case_bytes(name, "png")).expect("reference png").to_rgb8();
        assert_eq!(fnv1a(pillow.as_raw()), case["rgb_fnv1a"].as_str().expect("hash"), "{name}: reference png");
        assert_eq!(ours.dimensions(), pillow.dimensions(), "{name}");
        let diffs: Vec<u8> = ours.as_raw().iter().zip(pillow.as_raw()).map(|(a, b)| a.abs_diff(*b)).collect();
        let max = diffs.iter().copied().max().unwrap_or(0);
        let count = diffs.iter().filter(|&&d| d > 0).count();
        eprintln!("{name}: max difference {max} levels, {count} of {} values differ", diffs.len());
        if max > 0 {
            wrong.push(format!("{name} (max {max} levels, {count} values)"));
        }
    }
    assert!(wrong.is_empty(), "decoded pixels differ from Pillow's: {}", wrong.join(", "));
}

#[test]
fn jpeg_cut_in_its_scan_data_is_refused() {
    let reference = reference();
    for case in cases() {
        let name = case["name"].as_str().expect("name");
        // Pillow refused the same cut file (the script checks it).
        assert!(case["truncated_error"].as_str().is_some_and(|e| e.contains("truncated")), "{name}");
        let cut = cut_in_scan(&case_bytes(name, "jpg"));
        let file = format!("cut_{name}.jpg");
        let err = decode_image(&cut, Path::new(&file), &DecodeLimits::default())
            .expect_err(&format!("{name} cut in its scan data must not decode"));
        let msg = err.to_string();
        assert!(msg.contains(&file) && msg.contains("truncated"), "{name}: {msg}");
    }
    assert_eq!(reference["load_truncated_images"], false);
}

/// Pillow refuses a JPEG without its end-of-image marker, and accepts junk after it and stray bytes before it
/// (libjpeg warns about those and decodes the image; `jpeg_ref.py` records what Pillow did with each).
#[test]
fn jpeg_end_of_data_like_pillow() {
    let reference = reference();
    let variants = &reference["end_variants"];
    let name = variants["case"].as_str().expect("case");
    let jpeg = case_bytes(name, "jpg");
    assert!(jpeg.ends_with(&[0xff, 0xd9]));
    let body = &jpeg[..jpeg.len() - 2];
    let limits = DecodeLimits::default();
    let whole = decode_image(&jpeg, Path::new("whole.jpg"), &limits).expect("whole file");

    assert!(variants["no_eoi"].as_str().is_some_and(|e| e.contains("truncated")), "{variants}");
    let err = decode_image(body, Path::new("no_eoi.jpg"), &limits).expect_err("no EOI marker");
    assert!(err.to_string().contains("no_eoi.jpg") && err.to_string().contains("truncated"), "{err}");

    let junk_after: Vec<u8> = [&jpeg[..], b"junkjunkjunk"].concat();
    let stray_before: Vec<u8> = [body, &[0x00, 0x01, 0x02], &[0xff, 0xd9]].concat();
    for (label, bytes) in [("junk_after_eoi", junk_after), ("bytes_before_eoi", stray_before)] {
        assert_eq!(variants[label], "ok", "{label}: {variants}");
        let img = decode_image(&bytes, Path::new("x.jpg"), &limits).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(img, whole, "{label}");
    }
}

#[test]
fn a_truncated_jpeg_is_refused_at_import_naming_the_file() -> TestResult {
    let s = Synth::new(2, 1);
    let jpeg = case_bytes("noisy_420_baseline", "jpg");
    std::fs::write(s.images().join("cut.jpg"), cut_in_scan(&jpeg))?;
    let mut rows = s.rows.clone();
    rows[0].insert("filename".into(), "cut.jpg".into());
    let meta = s.path("with_cut.jsonl");
    write_jsonl(&meta, &rows);
    let err = run(&options(&meta, Some(&s.images()))).expect_err("a truncated JPEG must be refused");
    let msg = err.to_string();
    assert!(msg.contains("cut.jpg") && msg.contains("truncated"), "{msg}");
    let problems = &rejected_report(&err).problems;
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!((problems[0].row, problems[0].kind), (Some(1), experiments::validation::ProblemKind::UnreadableImage));

    // The whole file imports.
    std::fs::write(s.images().join("cut.jpg"), &jpeg)?;
    run(&options(&meta, Some(&s.images())))?;
    Ok(())
}
