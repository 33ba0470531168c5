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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use experiments::data::{
    import, sha256_file, verify_images, ColumnMap, ImportOptions,
    ImportedDataset, OnError,
};
use experiments::validation::{kind, Problem};
use experiments::events::{Event, NullObserver, Phase, Recorder};
use experiments::data::synth::{caption_contest, write_dataset, SynthSample};
use experiments::vocab::{letter, letter_to_index};
use experiments::Error;
use image::{Rgb, RgbImage};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

type TestResult = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn options(metadata: &Path, images_dir: Option<&Path>) -> ImportOptions {
    ImportOptions {
        name: "test".into(),
        metadata: metadata.to_path_buf(),
        images_dir: images_dir.map(Path::to_path_buf),
        columns: ColumnMap::default(),
        on_error: OnError::Reject,
        extract_dir: None,
    }
}

fn skip(mut o: ImportOptions) -> ImportOptions {
    o.on_error = OnError::Skip;
    o
}

fn run(o: &ImportOptions) -> experiments::Result<ImportedDataset> {
    import(o, &mut NullObserver)
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut buf = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png).expect("encode png");
    buf
}

fn solid_png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    png_bytes(&RgbImage::from_pixel(w, h, Rgb(rgb)))
}

/// A synthetic dataset (`dir/images/*.png`, `dir/metadata.jsonl`) and its rows as JSON objects, each with a
/// `contest_number` added (so every format has an integer extra column).
struct Synth {
    dir: tempfile::TempDir,
    samples: Vec<SynthSample>,
    rows: Vec<serde_json::Map<String, Value>>,
}

impl Synth {
    fn new(n_images: usize, rows_per_image: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let samples = caption_contest(n_images, 5, rows_per_image, 16, 7);
        let meta = write_dataset(dir.path(), &samples).expect("write dataset");
        let text = std::fs::read_to_string(meta).expect("read metadata");
        let rows = text
            .lines()
            .enumerate()
            .map(|(i, line)| {
                let mut obj: serde_json::Map<String, Value> = serde_json::from_str(line).expect("json line");
                obj.insert("contest_number".into(), json!(500 + i / rows_per_image));
                obj
            })
            .collect();
        Synth { dir, samples, rows }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn images(&self) -> PathBuf {
        self.path("images")
    }
}

fn write_jsonl(path: &Path, rows: &[serde_json::Map<String, Value>]) {
    let text: String = rows.iter().map(|r| format!("{}\n", Value::Object(r.clone()))).collect();
    std::fs::write(path, text).expect("write jsonl");
}

/// CSV with the caption choices JSON-encoded in one cell.
fn write_csv(path: &Path, rows: &[serde_json::Map<String, Value>]) {
    let cols = ["filename", "caption_choices", "label", "instance_id", "image_description", "contest_number"];
    let mut w = csv::Writer::from_path(path).expect("csv writer");
    w.write_record(cols).expect("header");
    for r in rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match r.get(*c) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            })
            .collect();
        w.write_record(&cells).expect("record");
    }
    w.flush().expect("flush");
}

/// A Hugging Face image cell: (bytes, path).
type ImageCell = (Option<Vec<u8>>, Option<String>);

/// One parquet column, every value optional.
enum Col {
    Str(&'static str, Vec<Option<String>>),
    I64(&'static str, Vec<Option<i64>>),
    F64(&'static str, Vec<Option<f64>>),
    Bool(&'static str, Vec<Option<bool>>),
    StrList(&'static str, Vec<Option<Vec<Option<String>>>>),
    I64List(&'static str, Vec<Option<Vec<i64>>>),
    /// The Hugging Face image struct `{bytes, path}`.
    Image(&'static str, Vec<Option<ImageCell>>),
}

impl Col {
    fn schema(&self) -> String {
        match self {
            Col::Str(n, _) => format!("OPTIONAL BYTE_ARRAY {n} (UTF8);"),
            Col::I64(n, _) => format!("OPTIONAL INT64 {n};"),
            Col::F64(n, _) => format!("OPTIONAL DOUBLE {n};"),
            Col::Bool(n, _) => format!("OPTIONAL BOOLEAN {n};"),
            Col::StrList(n, _) => format!(
                "OPTIONAL group {n} (LIST) {{ REPEATED group list {{ OPTIONAL BYTE_ARRAY element (UTF8); }} }}"
            ),
            Col::I64List(n, _) => {
                format!("OPTIONAL group {n} (LIST) {{ REPEATED group list {{ OPTIONAL INT64 element; }} }}")
            }
            Col::Image(n, _) => {
                format!("OPTIONAL group {n} {{ OPTIONAL BYTE_ARRAY bytes; OPTIONAL BYTE_ARRAY path (UTF8); }}")
            }
        }
    }
}

fn opt_levels<T: Clone>(values: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let defs = values.iter().map(|v| i16::from(v.is_some())).collect();
    (values.iter().flatten().cloned().collect(), defs)
}

/// (values, definition levels, repetition levels) of an optional list of optional elements.
fn list_levels<T: Clone>(lists: &[Option<Vec<Option<T>>>]) -> (Vec<T>, Vec<i16>, Vec<i16>) {
    let (mut values, mut defs, mut reps) = (Vec::new(), Vec::new(), Vec::new());
    for list in lists {
        match list {
            None => {
                defs.push(0);
                reps.push(0);
            }
            Some(items) if items.is_empty() => {
                defs.push(1);
                reps.push(0);
            }
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    reps.push(i16::from(i > 0));
                    match item {
                        Some(v) => {
                            values.push(v.clone());
                            defs.push(3);
                        }
                        None => defs.push(2),
                    }
                }
            }
        }
    }
    (values, defs, reps)
}

fn bytes(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

fn write_parquet(path: &Path, cols: &[Col]) -> TestResult {
    let fields: Vec<String> = cols.iter().map(Col::schema).collect();
    let schema = parquet::schema::parser::parse_message_type(&format!("message schema {{ {} }}", fields.join(" ")))?;
    let props = WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build();
    let file = std::fs::File::create(path)?;
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props))?;
    let mut rg = writer.next_row_group()?;
    for col in cols {
        match col {
            Col::Str(_, v) => {
                let (vals, defs) = opt_levels(v);
                let vals: Vec<ByteArray> = vals.iter().map(|s| bytes(s)).collect();
                let mut c = rg.next_column()?.ok_or("column")?;
                c.typed::<ByteArrayType>().write_batch(&vals, Some(&defs), None)?;
                c.close()?;
            }
            Col::I64(_, v) => {
                let (vals, defs) = opt_levels(v);
                let mut c = rg.next_column()?.ok_or("column")?;
                c.typed::<Int64Type>().write_batch(&vals, Some(&defs), None)?;
                c.close()?;
            }
            Col::F64(_, v) => {
                let (vals, defs) = opt_levels(v);
                let mut c = rg.next_column()?.ok_or("column")?;
                c.typed::<DoubleType>().write_batch(&vals, Some(&defs), None)?;
                c.close()?;
            }
            Col::Bool(_, v) => {
                let (vals, defs) = opt_levels(v);
                let mut c = rg.next_column()?.ok_or("column")?;
                c.typed::<BoolType>().write_batch(&vals, Some(&defs), None)?;
                c.close()?;
            }
            Col::StrList(_, v) => {
                let (vals, defs, reps) = list_levels(v);
                let vals: Vec<ByteArray> = vals.iter().map(|s| bytes(s)).collect();
                let mut c = rg.next_column()?.ok_or("column")?;
                c.typed::<ByteArrayType>().write_batch(&vals, Some(&defs), Some(&reps))?;
                c.close()?;
            }
            Col::I64List(_, v) => {
                let v: Vec<Option<Vec<Option<i64>>>> =
                    v.iter().map(|l| l.as_ref().map(|l| l.iter().copied().map(Some).collect())).collect();
                let (vals, defs, reps) = list_levels(&v);
                let mut c = rg.next_column()?.ok_or("column")?;
                c.typed::<Int64Type>().write_batch(&vals, Some(&defs), Some(&reps))?;
                c.close()?;
            }
            Col::Image(_, v) => {
                // Leaf `bytes`, then leaf `path`: level 0 = no struct, 1 = struct with a null leaf, 2 = value.
                let leaf = |pick: &dyn Fn(&ImageCell) -> Option<Vec<u8>>| {
                    let mut vals = Vec::new();
                    let mut defs = Vec::new();
                    for s in v {
                        match s {
                            None => defs.push(0),
                            Some(s) => match pick(s) {
                                None => defs.push(1),
                                Some(b) => {
                                    vals.push(ByteArray::from(b));
                                    defs.push(2);
                                }
                            },
                        }
                    }
                    (vals, defs)
                };
                for (vals, defs) in [leaf(&|s| s.0.clone()), leaf(&|s| s.1.clone().map(String::into_bytes))] {
                    let mut c = rg.next_column()?.ok_or("column")?;
                    c.typed::<ByteArrayType>().write_batch(&vals, Some(&defs), None)?;
                    c.close()?;
                }
            }
        }
    }
    rg.close()?;
    writer.close()?;
    Ok(())
}

fn str_col(rows: &[serde_json::Map<String, Value>], name: &'static str) -> Col {
    Col::Str(name, rows.iter().map(|r| r.get(name).and_then(Value::as_str).map(String::from)).collect())
}

/// The synthetic rows as a parquet file like the tutorial's `new_yorker_meta.parquet`.
fn write_synth_parquet(path: &Path, rows: &[serde_json::Map<String, Value>]) -> TestResult {
    let choices = rows
        .iter()
        .map(|r| {
            r["caption_choices"].as_array().map(|a| a.iter().map(|c| c.as_str().map(String::from)).collect())
        })
        .collect();
    write_parquet(
        path,
        &[
            Col::I64("contest_number", rows.iter().map(|r| r["contest_number"].as_i64()).collect()),
            str_col(rows, "filename"),
            Col::StrList("caption_choices", choices),
            str_col(rows, "label"),
            str_col(rows, "instance_id"),
            str_col(rows, "image_description"),
        ],
    )
}

fn problems_of<'a>(ds_or_err: &'a [Problem], kind: &str) -> Vec<&'a Problem> {
    ds_or_err.iter().filter(|p| p.kind == kind).collect()
}

fn rejected_report(err: &Error) -> &experiments::validation::ValidationReport {
    match err {
        Error::Rejected { report, .. } => report,
        other => panic!("expected a rejected import, got: {other}"),
    }
}

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
    let ds = import(&options(&fixture("new_yorker_meta_mini.parquet"), Some(&dir.path().join("images"))), &mut rec)?;
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
    let choices = || Some(vec![Some("a red box".to_string()), Some("a green box".to_string())]);
    write_parquet(
        &pq,
        &[
            Col::Image(
                "image",
                vec![
                    Some((Some(red.clone()), Some("train/red.png".into()))),
                    Some((Some(red.clone()), Some("train/red.png".into()))),
                    Some((Some(green.clone()), None)),
                ],
            ),
            Col::StrList(
                "caption_choices",
                vec![choices(), Some(vec![Some("red".into()), Some("green".into()), Some("blue".into())]), choices()],
            ),
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
    let choices = || Some(vec![Some("a".to_string()), Some("b".to_string())]);
    write_parquet(
        &pq,
        &[
            Col::Image(
                "image",
                vec![
                    Some((Some(solid_png(2, 2, [1, 1, 1])), Some("x.png".into()))),
                    Some((Some(solid_png(2, 2, [2, 2, 2])), Some("x.png".into()))),
                ],
            ),
            Col::StrList("caption_choices", vec![choices(), choices()]),
            Col::Str("label", vec![Some("A".into()), Some("B".into())]),
        ],
    )?;
    let mut o = skip(options(&pq, None));
    o.extract_dir = Some(dir.path().join("x"));
    let ds = run(&o)?;
    assert_eq!(ds.rows.len(), 1);
    assert_eq!(ds.report.problems.len(), 1);
    assert_eq!(ds.report.problems[0].kind, kind::AMBIGUOUS_IMAGE);
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
        (2, kind::MISSING_IMAGE),
        (3, kind::UNREADABLE_IMAGE),
        (4, kind::UNREADABLE_IMAGE),
        (5, kind::LABEL_NOT_IN_CHOICES),
        (6, kind::TOO_FEW_CHOICES),
        (7, kind::EMPTY_CAPTION),
        (8, kind::DUPLICATE_ROW),
        (9, kind::BAD_VALUE),
        (10, kind::LABEL_NOT_IN_CHOICES),
        (11, kind::LABEL_NOT_IN_CHOICES),
        (12, kind::BAD_VALUE),
        (13, kind::BAD_VALUE),
        (15, kind::BAD_VALUE),
    ];
    let got: Vec<(usize, &str)> =
        ds.report.problems.iter().map(|p| (p.row.unwrap_or(0), p.kind.as_str())).collect();
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
    assert_eq!(ds.report.counts_by_kind()[kind::LABEL_NOT_IN_CHOICES], 3);

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
    let got: Vec<(Option<usize>, &str)> = ds.report.problems.iter().map(|p| (p.row, p.kind.as_str())).collect();
    assert_eq!(got, [(Some(1), kind::BAD_VALUE), (Some(2), kind::LABEL_NOT_IN_CHOICES)]);
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
    let got: Vec<(Option<usize>, &str)> = ds.report.problems.iter().map(|p| (p.row, p.kind.as_str())).collect();
    assert_eq!(got, [(Some(1), kind::BAD_VALUE), (Some(2), kind::BAD_VALUE)]);
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
    assert_eq!(rejected_report(&err).problems[0].kind, kind::BAD_VALUE);
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
    assert_eq!((p.row, p.kind.as_str()), (Some(2), kind::AMBIGUOUS_IMAGE));
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
        assert_eq!(rejected_report(&err).problems[0].kind, kind::MISSING_COLUMN);
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
    let changed = problems_of(&problems, kind::CHANGED_IMAGE);
    let missing = problems_of(&problems, kind::MISSING_IMAGE);
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
    let ds = import(&options(&meta, None), &mut rec)?;
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
    assert_eq!(letter(0), "A");
    assert_eq!(letter(4), "E");
    assert_eq!(letter(25), "Z");
    assert_eq!(letter(26), "AA");
    assert_eq!(letter(27), "AB");
    for i in 0..18_278 {
        assert_eq!(letter_to_index(&letter(i)), Some(i));
    }
}
