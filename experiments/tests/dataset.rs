//! Tests of the dataset import (`experiments::data`): the three metadata formats, the Hugging Face layout with
//! embedded images, every kind of bad row, broken files, re-verification of images and the content hash.
//!
//! Data is generated here (synthetic PNGs from `experiments::data::synth`, metadata written as JSONL, CSV and parquet
//! with the `parquet` crate's column writers). Two small parquet files made with real pyarrow are committed under
//! `tests/fixtures/`; `tests/fixtures/make_fixtures.py` made them:
//!
//! ```python
//! meta = pd.DataFrame({"contest_number": pd.Series([527, 527, 612, 703], dtype="int64"),
//!                      "filename": ["527.png", "527.png", "images/612.png", "703.png"],
//!                      "caption_choices": [[...5 captions...], ...], "label": ["C", "E", "A", "d"],
//!                      "instance_id": [...], "image_description": [...]})
//! pq.write_table(pa.Table.from_pandas(meta, preserve_index=False), "new_yorker_meta_mini.parquet",
//!                compression="snappy")
//! image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
//! hf = pa.table({"image": pa.array([{"bytes": red, "path": "red.png"}, {"bytes": red, "path": "red.png"},
//!                                   {"bytes": blue, "path": None}], type=image_type), ...})
//! pq.write_table(hf, "hf_embedded_mini.parquet", compression="snappy")
//! ```


use experiments::data::{
    import, sha256_file,
};
use experiments::validation::ProblemKind;
use experiments::events::{CancelToken, Event, Recorder};
use image::{Rgb, RgbImage};
use serde_json::{json, Value};

#[path = "support/dataset.rs"]
mod support;
use support::*;

// ---------------------------------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn jsonl_csv_and_parquet_import_the_same_rows() -> TestResult {
    let s = Synth::new(4, 3);
    let (jsonl, csv_path, pq) = (s.path("meta.jsonl"), s.path("meta.csv"), s.path("meta.parquet"));
    write_jsonl(&jsonl, &s.rows);
    write_csv(&csv_path, &s.rows);
    write_synth_parquet(&pq, &s.rows)?;

    let mut imported = Vec::new();
    for meta in [&jsonl, &csv_path, &pq] {
        let ds = run(&options(meta, Some(&s.images())))?;
        assert_eq!(ds.report.total_rows, 12, "{}", meta.display());
        assert_eq!(ds.report.valid_rows, 12);
        assert!(ds.report.problems.is_empty(), "{:?}", ds.report.problems);
        assert_eq!(ds.rows.len(), 12);
        for (row, sample) in ds.rows.iter().zip(&s.samples) {
            assert_eq!(row.filename, sample.filename);
            assert_eq!(row.choices, sample.caption_choices);
            assert_eq!(row.label, sample.label);
        }
        assert_eq!(ds.rows[0].row, 1);
        assert_eq!(ds.rows[11].row, 12);
        // Extra columns are kept with their types: the contest number is a number in every format.
        let extra = &ds.rows[4].extra;
        assert_eq!(extra["contest_number"], json!(501), "{}", meta.display());
        assert_eq!(extra["instance_id"], s.rows[4]["instance_id"]);
        assert_eq!(extra["image_description"], s.rows[4]["image_description"]);
        assert!(!extra.contains_key("filename") && !extra.contains_key("label"));
        // Three rows per image share one record.
        assert_eq!(ds.images.len(), 4);
        let names: Vec<&str> = ds.images.iter().map(|i| i.filename.as_str()).collect();
        assert_eq!(names, ["img00000.png", "img00001.png", "img00002.png", "img00003.png"]);
        for img in &ds.images {
            assert!(img.path.is_absolute());
            let file = std::fs::read(&img.path)?;
            assert_eq!(img.sha256, sha_hex(&file));
            assert_eq!(img.bytes, file.len() as u64);
            assert_eq!((img.width, img.height), (16, 16));
        }
        imported.push(ds);
    }
    // The same images; the metadata bytes differ, so do the content hashes.
    assert_eq!(imported[0].images, imported[1].images);
    assert_eq!(imported[0].images, imported[2].images);
    assert_ne!(imported[0].content_hash, imported[1].content_hash);
    Ok(())
}

#[test]
fn images_next_to_the_metadata_file_are_found() -> TestResult {
    // The synth layout: dir/metadata.jsonl + dir/images/*.png, no image folder given.
    let s = Synth::new(3, 2);
    let ds = run(&options(&s.path("metadata.jsonl"), None))?;
    assert_eq!(ds.rows.len(), 6);
    assert_eq!(ds.images.len(), 3);
    assert_eq!(ds.images_dir.as_deref(), Some(s.dir.path()));
    assert!(ds.images[0].path.ends_with("images/img00000.png"));
    Ok(())
}

#[test]
fn metadata_paths_are_matched_by_file_name_and_blank_lines_ignored() -> TestResult {
    let s = Synth::new(2, 1);
    let mut rows = s.rows.clone();
    rows[0].insert("filename".into(), json!("some/where/else/img00000.png"));
    rows[1].insert("filename".into(), json!("C:\\data\\img00001.png"));
    let text = format!("\n{}\n\n{}\n\n", Value::Object(rows[0].clone()), Value::Object(rows[1].clone()));
    std::fs::write(s.path("m.ndjson"), text)?;
    let ds = run(&options(&s.path("m.ndjson"), Some(&s.images())))?;
    assert_eq!(ds.rows.len(), 2);
    assert_eq!(ds.rows[0].filename, "img00000.png");
    assert_eq!(ds.rows[1].filename, "img00001.png");
    assert_eq!(ds.rows[1].row, 2);
    Ok(())
}

#[test]
fn csv_accepts_pandas_list_repr_numeric_labels_and_caption_labels() -> TestResult {
    let s = Synth::new(1, 1);
    let csv_text = "\u{feff}filename,caption_choices,label,score,flag,note\n\
        img00000.png,\"['it\\'s a cat', \"\"a dog\"\"]\",1,0.5,true,\n\
        img00000.png,\"['one' 'two'\n 'three']\",0,7,false,007\n\
        img00000.png,\"[\"\"x\"\", \"\"y\"\"]\",y,-2,,hello\n";
    std::fs::write(s.path("m.csv"), csv_text)?;
    let ds = run(&options(&s.path("m.csv"), Some(&s.images())))?;
    assert_eq!(ds.rows.len(), 3);
    assert_eq!(ds.rows[0].choices, ["it's a cat", "a dog"]);
    assert_eq!(ds.rows[0].label, 1);
    assert_eq!(ds.rows[1].choices, ["one", "two", "three"]);
    assert_eq!(ds.rows[1].label, 0);
    // A label that is the text of one caption.
    assert_eq!(ds.rows[2].label, 1);
    assert_eq!(ds.rows[0].extra["score"], json!(0.5));
    assert_eq!(ds.rows[0].extra["flag"], json!(true));
    assert_eq!(ds.rows[0].extra["note"], Value::Null);
    assert_eq!(ds.rows[1].extra["note"], json!("007"));
    assert_eq!(ds.rows[2].extra["score"], json!(-2));
    assert_eq!(ds.rows[2].extra["note"], json!("hello"));

    // TSV by extension.
    std::fs::write(s.path("m.tsv"), "filename\tcaption_choices\tlabel\nimg00000.png\t[\"a\",\"b\"]\tB\n")?;
    let ds = run(&options(&s.path("m.tsv"), Some(&s.images())))?;
    assert_eq!(ds.rows[0].label, 1);
    Ok(())
}

#[test]
fn parquet_extra_values_of_every_type_become_json() -> TestResult {
    let s = Synth::new(1, 1);
    let pq = s.path("m.parquet");
    let two = |a: &str, b: &str| Some(vec![Some(a.to_string()), Some(b.to_string())]);
    write_parquet(
        &pq,
        &[
            Col::Str("filename", vec![Some("img00000.png".into()), Some("img00000.png".into())]),
            Col::StrList("caption_choices", vec![two("a", "b"), two("c", "d")]),
            Col::Str("label", vec![Some("b".into()), Some("0".into())]),
            Col::F64("score", vec![Some(1.25), None]),
            Col::Bool("funny", vec![Some(true), Some(false)]),
            Col::I64("votes", vec![None, Some(-3)]),
            Col::I64List("ranks", vec![Some(vec![3, 1, 2]), Some(vec![])]),
            Col::StrList("tags", vec![None, two("p", "q")]),
        ],
    )?;
    let ds = run(&options(&pq, Some(&s.images())))?;
    assert_eq!(ds.rows[0].label, 1);
    assert_eq!(ds.rows[1].label, 0);
    let (a, b) = (&ds.rows[0].extra, &ds.rows[1].extra);
    assert_eq!(a["score"], json!(1.25));
    assert_eq!(b["score"], Value::Null);
    assert_eq!(a["funny"], json!(true));
    assert_eq!(a["votes"], Value::Null);
    assert_eq!(b["votes"], json!(-3));
    assert_eq!(a["ranks"], json!([3, 1, 2]));
    assert_eq!(b["ranks"], json!([]));
    assert_eq!(a["tags"], Value::Null);
    assert_eq!(b["tags"], json!(["p", "q"]));
    Ok(())
}

#[test]
fn pyarrow_new_yorker_fixture_imports() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("images/sub"))?;
    std::fs::write(dir.path().join("images/527.png"), solid_png(10, 6, [1, 2, 3]))?;
    std::fs::write(dir.path().join("images/sub/612.png"), solid_png(4, 4, [9, 9, 9]))?;
    std::fs::write(dir.path().join("images/703.png"), solid_png(5, 7, [0, 200, 0]))?;
    let mut rec = Recorder::default();
    let ds = import(&options(&fixture("new_yorker_meta_mini.parquet"), Some(&dir.path().join("images"))), &mut rec, CancelToken::new())?;
    assert_eq!(ds.rows.len(), 4);
    let labels: Vec<usize> = ds.rows.iter().map(|r| r.label).collect();
    assert_eq!(labels, [2, 4, 0, 3]);
    assert_eq!(ds.rows[0].choices.len(), 5);
    assert_eq!(ds.rows[0].choices[1], "Is it a boy or a dog?");
    assert_eq!(ds.rows[2].filename, "612.png");
    assert_eq!(ds.rows[0].extra["contest_number"], json!(527));
    assert_eq!(ds.rows[3].extra["instance_id"], json!("0789ab"));
    assert_eq!(ds.rows[2].extra["image_description"], json!("A man walks a lobster."));
    assert_eq!(ds.images.len(), 3);
    assert_eq!((ds.images[0].filename.as_str(), ds.images[0].width, ds.images[0].height), ("527.png", 10, 6));
    assert!(ds.images[1].path.ends_with("images/sub/612.png"));
    let infos: Vec<&str> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Info { message } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert!(infos.iter().any(|m| m.contains("read 4 rows from new_yorker_meta_mini.parquet")), "{infos:?}");
    assert!(infos.last().is_some_and(|m| m.contains("3 images")), "{infos:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Embedded images (Hugging Face layout)
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn embedded_images_are_extracted_by_content_hash() -> TestResult {
    let dir = tempfile::tempdir()?;
    let red = solid_png(6, 4, [255, 0, 0]);
    let green = solid_png(3, 3, [0, 255, 0]);
    let pq = dir.path().join("hf.parquet");
    let choices = || str_list(&["a red box", "a green box"]);
    let red_cell = || Some((Some(red.clone()), Some("train/red.png".into())));
    write_parquet(
        &pq,
        &[
            Col::Image("image", vec![red_cell(), red_cell(), Some((Some(green.clone()), None))]),
            Col::StrList("caption_choices", vec![choices(), str_list(&["red", "green", "blue"]), choices()]),
            Col::I64("label", vec![Some(0), Some(0), Some(1)]),
        ],
    )?;
    // Without an extract folder the import cannot place the images.
    let err = run(&options(&pq, None)).expect_err("needs extract_dir");
    assert!(err.to_string().contains("extract"), "{err}");

    let out = dir.path().join("extracted");
    let mut o = options(&pq, None);
    o.extract_dir = Some(out.clone());
    let ds = run(&o)?;
    assert_eq!(ds.rows.len(), 3);
    assert_eq!(ds.images_dir, None);
    let green_name = format!("{}.png", sha_hex(&green));
    assert_eq!(ds.rows[0].filename, "red.png");
    assert_eq!(ds.rows[2].filename, green_name);
    assert_eq!(ds.rows[2].label, 1);
    assert_eq!(ds.images.len(), 2);
    for img in &ds.images {
        assert!(img.path.starts_with(std::path::absolute(&out)?));
        assert_eq!(img.path.file_name().and_then(|n| n.to_str()), Some(format!("{}.png", img.sha256).as_str()));
        assert_eq!(sha256_file(&img.path)?.0, img.sha256);
    }
    let red_rec = ds.images.iter().find(|i| i.filename == "red.png").ok_or("red record")?;
    assert_eq!(red_rec.sha256, sha_hex(&red));
    assert_eq!((red_rec.width, red_rec.height), (6, 4));
    // No temporary files are left behind; a second import reuses the files.
    assert_eq!(std::fs::read_dir(&out)?.count(), 2);
    let again = run(&o)?;
    assert_eq!(again.images, ds.images);
    assert_eq!(again.content_hash, ds.content_hash);
    Ok(())
}

#[test]
fn pyarrow_hf_fixture_imports_and_extracts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut o = options(&fixture("hf_embedded_mini.parquet"), None);
    o.extract_dir = Some(dir.path().join("x"));
    let ds = run(&o)?;
    assert_eq!(ds.rows.len(), 3);
    assert_eq!(ds.rows[0].filename, "red.png");
    assert_eq!(ds.rows[1].choices, ["red", "blue", "green"]);
    assert_eq!(ds.rows[2].label, 1);
    assert!(ds.rows[2].filename.ends_with(".png") && ds.rows[2].filename.len() == 64 + 4);
    assert_eq!(ds.rows[1].extra["contest_number"], json!(2));
    assert!(!ds.rows[0].extra.contains_key("image"));
    assert_eq!(ds.images.len(), 2);
    for img in &ds.images {
        assert_eq!(sha256_file(&img.path)?.0, img.sha256);
        assert_eq!((img.width, img.height), (12, 8));
    }
    Ok(())
}

#[test]
fn two_different_embedded_images_with_one_name_are_ambiguous() -> TestResult {
    let dir = tempfile::tempdir()?;
    let pq = dir.path().join("hf.parquet");
    let cell = |grey| Some((Some(solid_png(2, 2, [grey; 3])), Some("x.png".into())));
    write_parquet(
        &pq,
        &[
            Col::Image("image", vec![cell(1), cell(2)]),
            Col::StrList("caption_choices", vec![str_list(&["a", "b"]), str_list(&["a", "b"])]),
            Col::Str("label", vec![Some("A".into()), Some("B".into())]),
        ],
    )?;
    let mut o = skip(options(&pq, None));
    o.extract_dir = Some(dir.path().join("x"));
    let ds = run(&o)?;
    assert_eq!(ds.rows.len(), 1);
    assert_eq!(ds.report.problems.len(), 1);
    assert_eq!(ds.report.problems[0].kind, ProblemKind::AmbiguousImage);
    assert_eq!(ds.report.problems[0].row, Some(2));
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Bad rows
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_kind_of_bad_row_is_reported_with_its_row() -> TestResult {
    let s = Synth::new(3, 1);
    let images = s.images();
    // A corrupt file and a truncated PNG.
    std::fs::write(images.join("corrupt.png"), b"this is not a png at all")?;
    let full = solid_png(64, 64, [10, 20, 30]);
    let noisy: RgbImage = RgbImage::from_fn(64, 64, |x, y| Rgb([(x * 7 + y) as u8, (y * 3) as u8, (x ^ y) as u8]));
    let noisy = png_bytes(&noisy);
    std::fs::write(images.join("truncated.png"), &noisy[..noisy.len() * 2 / 3])?;
    std::fs::write(images.join("fine.png"), &full)?;

    let good =
        |f: &str, label: &str| json!({"filename": f, "caption_choices": ["a", "b", "c", "d", "e"], "label": label});
    let rows = vec![
        good("img00000.png", "A"),                                                       // 1 ok
        good("nowhere.png", "A"),                                                        // 2 missing image
        good("corrupt.png", "B"),                                                        // 3 undecodable
        good("truncated.png", "C"),                                                      // 4 truncated PNG
        good("img00001.png", "F"),                                                       // 5 label F of 5
        json!({"filename": "img00001.png", "caption_choices": ["only one"], "label": "A"}), // 6 one choice
        json!({"filename": "img00001.png", "caption_choices": ["a", "  "], "label": "A"}), // 7 empty caption
        good("img00000.png", "A"),                                                       // 8 duplicate of 1
        json!({"filename": "img00002.png", "caption_choices": "a, b", "label": "A"}),     // 9 not a list
        good("fine.png", ""),                                                            // 10 empty label
        json!({"filename": "img00002.png", "caption_choices": ["a", "b"], "label": 2}),   // 11 index out of range
        json!({"filename": 17, "caption_choices": ["a", "b"], "label": "A"}),             // 12 file name a number
        json!({"filename": "img00002.png", "caption_choices": ["a", 3], "label": "A"}),   // 13 choice a number
        good("img00002.png", "e"),                                                       // 14 ok (lower case)
        json!({"filename": "fine.png", "caption_choices": ["a", "b"], "label": [1]}),     // 15 label a list
    ];
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let meta = s.path("bad.jsonl");
    std::fs::write(&meta, text)?;

    let ds = run(&skip(options(&meta, Some(&images))))?;
    assert_eq!(ds.report.total_rows, 15);
    assert_eq!(ds.report.valid_rows, 2);
    assert_eq!(ds.rows.iter().map(|r| r.row).collect::<Vec<_>>(), [1, 14]);
    assert_eq!(ds.rows[1].label, 4);
    let expected = [
        (2, ProblemKind::MissingImage),
        (3, ProblemKind::UnreadableImage),
        (4, ProblemKind::UnreadableImage),
        (5, ProblemKind::LabelNotInChoices),
        (6, ProblemKind::TooFewChoices),
        (7, ProblemKind::EmptyCaption),
        (8, ProblemKind::DuplicateRow),
        (9, ProblemKind::BadValue),
        (10, ProblemKind::LabelNotInChoices),
        (11, ProblemKind::LabelNotInChoices),
        (12, ProblemKind::BadValue),
        (13, ProblemKind::BadValue),
        (15, ProblemKind::BadValue),
    ];
    let got: Vec<(usize, ProblemKind)> =
        ds.report.problems.iter().map(|p| (p.row.unwrap_or(0), p.kind)).collect();
    assert_eq!(got, expected, "{:#?}", ds.report.problems);
    // Only images of kept rows are recorded.
    let names: Vec<&str> = ds.images.iter().map(|i| i.filename.as_str()).collect();
    assert_eq!(names, ["img00000.png", "img00002.png"]);
    // The reasons say what is wrong.
    let reason = |row: usize| {
        ds.report.problems.iter().find(|p| p.row == Some(row)).map(|p| p.to_string()).unwrap_or_default()
    };
    assert!(reason(2).contains("nowhere.png"), "{}", reason(2));
    assert!(reason(4).contains("truncated.png"), "{}", reason(4));
    assert!(reason(5).contains("\"F\"") && reason(5).contains("A–E"), "{}", reason(5));
    assert!(reason(8).contains("row 1"), "{}", reason(8));
    assert_eq!(ds.report.counts_by_kind()[&ProblemKind::LabelNotInChoices], 3);

    // Reject: nothing imported, the message names the file, the count and the first problem with its row.
    let err = run(&options(&meta, Some(&images))).expect_err("rejected");
    let msg = err.to_string();
    assert!(msg.contains("bad.jsonl") && msg.contains("13 problem(s)") && msg.contains("row 2"), "{msg}");
    assert!(msg.contains("nowhere.png"), "{msg}");
    let report = rejected_report(&err);
    assert_eq!(report.problems, ds.report.problems);
    Ok(())
}

#[test]
fn bad_values_in_csv_and_parquet() -> TestResult {
    let s = Synth::new(1, 1);
    // CSV: choices that are not valid JSON, a label out of range as a number.
    let csv_text = "filename,caption_choices,label\n\
        img00000.png,\"[\"\"a\"\", \"\"b\"\"\",A\n\
        img00000.png,\"[\"\"a\"\", \"\"b\"\"]\",5\n\
        img00000.png,\"[\"\"c\"\", \"\"d\"\"]\",B\n";
    std::fs::write(s.path("m.csv"), csv_text)?;
    let ds = run(&skip(options(&s.path("m.csv"), Some(&s.images()))))?;
    let got: Vec<(Option<usize>, ProblemKind)> = ds.report.problems.iter().map(|p| (p.row, p.kind)).collect();
    assert_eq!(got, [(Some(1), ProblemKind::BadValue), (Some(2), ProblemKind::LabelNotInChoices)]);
    assert!(ds.report.problems[0].reason.contains("not a list"), "{}", ds.report.problems[0]);
    assert_eq!(ds.rows.len(), 1);

    // Parquet: a null element, a null list, a choices column of the wrong type elsewhere.
    let pq = s.path("m.parquet");
    write_parquet(
        &pq,
        &[
            Col::Str("filename", vec![Some("img00000.png".into()); 3]),
            Col::StrList(
                "caption_choices",
                vec![Some(vec![Some("a".into()), None]), None, Some(vec![Some("x".into()), Some("y".into())])],
            ),
            Col::Str("label", vec![Some("A".into()); 3]),
        ],
    )?;
    let ds = run(&skip(options(&pq, Some(&s.images()))))?;
    let got: Vec<(Option<usize>, ProblemKind)> = ds.report.problems.iter().map(|p| (p.row, p.kind)).collect();
    assert_eq!(got, [(Some(1), ProblemKind::BadValue), (Some(2), ProblemKind::BadValue)]);
    assert_eq!(ds.rows.len(), 1);

    let pq2 = s.path("m2.parquet");
    write_parquet(
        &pq2,
        &[
            Col::Str("filename", vec![Some("img00000.png".into())]),
            Col::I64("caption_choices", vec![Some(3)]),
            Col::Str("label", vec![Some("A".into())]),
        ],
    )?;
    let err = run(&options(&pq2, Some(&s.images()))).expect_err("wrong type");
    assert_eq!(rejected_report(&err).problems[0].kind, ProblemKind::BadValue);
    assert!(err.to_string().contains("row 1"), "{err}");
    Ok(())
}

#[test]
fn a_file_name_in_two_subfolders_is_ambiguous() -> TestResult {
    let s = Synth::new(2, 1);
    std::fs::create_dir_all(s.images().join("a"))?;
    std::fs::create_dir_all(s.images().join("b"))?;
    std::fs::write(s.images().join("a/twin.png"), solid_png(2, 2, [0, 0, 0]))?;
    std::fs::write(s.images().join("b/twin.png"), solid_png(2, 2, [0, 0, 0]))?;
    let mut rows = s.rows.clone();
    rows[1].insert("filename".into(), json!("twin.png"));
    write_jsonl(&s.path("m.jsonl"), &rows);
    let ds = run(&skip(options(&s.path("m.jsonl"), Some(&s.images()))))?;
    assert_eq!(ds.rows.len(), 1);
    let p = &ds.report.problems[0];
    assert_eq!((p.row, p.kind), (Some(2), ProblemKind::AmbiguousImage));
    assert!(p.reason.contains("a/twin.png") && p.reason.contains("b/twin.png"), "{p}");
    Ok(())
}

#[test]
fn skip_with_no_valid_row_is_an_error() -> TestResult {
    let s = Synth::new(1, 1);
    let row = json!({"filename": "gone.png", "caption_choices": ["a", "b"], "label": "A"});
    std::fs::write(s.path("m.jsonl"), format!("{row}\n"))?;
    let err = run(&skip(options(&s.path("m.jsonl"), Some(&s.images())))).expect_err("nothing valid");
    assert_eq!(rejected_report(&err).valid_rows, 0);
    assert!(err.to_string().contains("m.jsonl"), "{err}");
    // An empty file is an error too.
    std::fs::write(s.path("empty.jsonl"), "\n\n")?;
    let err = run(&skip(options(&s.path("empty.jsonl"), Some(&s.images())))).expect_err("empty");
    assert!(err.to_string().contains("empty.jsonl"), "{err}");
    Ok(())
}

