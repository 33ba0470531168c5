//! Dataset import under faults: cancellation through the [`CancelToken`], names refused before anything is read,
//! and no extracted file left behind when an import fails or is not stored.

use std::path::Path;

use experiments::data::{import, ImportOptions};
use experiments::events::{CancelToken, Event, NullObserver, Observer, Phase};
use experiments::Error;

#[path = "support/dataset.rs"]
mod support;
use support::*;

/// Cancels `token` at the first progress of the image step (some images done, the others not).
struct CancelAtFirstImage {
    token: CancelToken,
    seen: usize,
}

impl Observer for CancelAtFirstImage {
    fn on_event(&mut self, event: &Event) {
        if let Event::Progress { phase: Phase::Load, .. } = event {
            self.seen += 1;
            self.token.cancel();
        }
    }
}

/// A parquet file with `n` distinct embedded images (`img<i>.png`), two caption choices each.
fn embedded(path: &Path, n: usize) -> TestResult {
    let images = (0..n)
        .map(|i| {
            let v = u8::try_from(i % 256).unwrap_or(0);
            Some((Some(solid_png(4 + (i / 256) as u32, 4, [v, 255 - v, 7])), Some(format!("img{i:03}.png"))))
        })
        .collect();
    let choices = (0..n).map(|i| Some(vec![Some(format!("box {i}")), Some("no box".to_string())])).collect();
    write_parquet(
        path,
        &[Col::Image("image", images), Col::StrList("caption_choices", choices), Col::I64("label", vec![Some(0); n])],
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn extracting(pq: &Path, out: &Path) -> ImportOptions {
    let mut o = options(pq, None);
    o.extract_dir = Some(out.to_path_buf());
    o
}

#[test]
fn cancelling_during_the_images_stops_the_import_and_extracts_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let pq = dir.path().join("hf.parquet");
    embedded(&pq, 300)?;
    let out = dir.path().join("extracted");
    let token = CancelToken::new();
    let mut obs = CancelAtFirstImage { token: token.clone(), seen: 0 };
    let result = import(&extracting(&pq, &out), &mut obs, token);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    assert!(obs.seen >= 1 && obs.seen < 300, "stopped in the image loop, after {} progress events", obs.seen);
    assert!(!out.exists(), "nothing extracted: {:?}", files_in(&out));
    // The same import, not cancelled, goes through.
    assert_eq!(run(&extracting(&pq, &out))?.images.len(), 300);
    Ok(())
}

#[test]
fn a_token_cancelled_before_the_import_stops_it_at_the_first_row() -> TestResult {
    let s = Synth::new(3, 2);
    let token = CancelToken::new();
    token.cancel();
    let result = import(&options(&s.path("metadata.jsonl"), Some(&s.images())), &mut NullObserver, token);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    Ok(())
}

#[test]
fn an_empty_name_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The metadata file does not even exist: the name is what the error is about.
    let mut o = options(&dir.path().join("missing.jsonl"), None);
    for name in ["", "   "] {
        o.name = name.into();
        let err = run(&o).expect_err("empty name");
        assert!(matches!(err, Error::Invalid(_)) && err.to_string().contains("name"), "{err}");
    }
}

#[test]
fn a_failure_while_extracting_removes_what_the_import_extracted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let pq = dir.path().join("hf.parquet");
    embedded(&pq, 3)?;
    let out = dir.path().join("extracted");
    // The last image's place (in file-name order) is taken by a folder: writing it fails.
    let probe = run(&extracting(&pq, &dir.path().join("probe")))?;
    let last = &probe.images.last().ok_or("no images")?.sha256;
    std::fs::create_dir_all(out.join(format!("{last}.png")).join("taken"))?;
    let err = run(&extracting(&pq, &out)).expect_err("cannot write over a folder");
    assert!(!matches!(err, Error::Cancelled), "{err}");
    assert_eq!(files_in(&out), vec![format!("{last}.png")], "only what was there before is left");
    Ok(())
}

#[test]
fn discarding_an_import_removes_only_the_files_it_created() -> TestResult {
    let dir = tempfile::tempdir()?;
    let pq = dir.path().join("hf.parquet");
    embedded(&pq, 4)?;
    let out = dir.path().join("store").join("extracted");
    let mut first = run(&extracting(&pq, &out))?;
    assert_eq!(files_in(&out).len(), 4);
    assert_eq!(first.extracted.len(), 4 + 2, "four files and two new folders: {:?}", first.extracted);
    // A second import of the same images finds them extracted already: it created nothing.
    let mut second = run(&extracting(&pq, &out))?;
    assert!(second.extracted.is_empty(), "{:?}", second.extracted);
    second.discard_extracted();
    assert_eq!(files_in(&out).len(), 4, "the first import's files stay");
    first.discard_extracted();
    assert!(!out.exists() && !out.parent().ok_or("parent")?.exists(), "{:?}", files_in(&out));
    Ok(())
}

#[test]
fn streamed_formats_read_the_same_rows_and_name_the_place_of_an_error() -> TestResult {
    let s = Synth::new(4, 3);
    write_jsonl(&s.path("plain.jsonl"), &s.rows);
    let reference = run(&options(&s.path("plain.jsonl"), Some(&s.images())))?;
    let objects: Vec<String> = s.rows.iter().map(|r| serde_json::Value::Object(r.clone()).to_string()).collect();
    // A JSON array (after a byte-order mark and blank space), and JSON lines with CRLF and blank lines.
    let array = s.path("array.json");
    std::fs::write(&array, format!("\u{feff}\n  [{}]\n", objects.join(",\n")))?;
    let lines = s.path("crlf.jsonl");
    std::fs::write(&lines, format!("\u{feff}{}\r\n\r\n", objects.join("\r\n")))?;
    for path in [&array, &lines] {
        let ds = run(&options(path, Some(&s.images())))?;
        assert_eq!((ds.rows.len(), &ds.images), (reference.rows.len(), &reference.images), "{}", path.display());
        for (a, b) in ds.rows.iter().zip(&reference.rows) {
            assert_eq!((a.row, &a.filename, &a.choices, a.label), (b.row, &b.filename, &b.choices, b.label));
            assert_eq!(a.extra, b.extra);
        }
    }

    let bad = s.path("bad.json");
    let cases: [(&[u8], &str); 4] = [
        (b"[{\"filename\": \"a.png\"}, 3]", "item 2: expected a JSON object, found a number"),
        (b"[{\"filename\": \"a.png\"},", "invalid JSON"),
        (b"[{\"filename\": \"a.png\"}] []", "invalid JSON"),
        (b"{\"filename\": \"a.png\"}\n{\"filename\": \"\xff\"}\n", "line 2: not UTF-8"),
    ];
    for (text, expected) in cases {
        std::fs::write(&bad, text)?;
        let err = run(&options(&bad, Some(&s.images()))).expect_err("malformed");
        assert!(err.to_string().contains(expected) && err.to_string().contains("bad.json"), "{err}");
    }
    Ok(())
}
