//! Helpers shared by the dataset import tests: fixtures, synthetic datasets, and writers for JSONL, CSV and
//! parquet metadata (the `parquet` crate's column writers).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use experiments::data::{
    import, ColumnMap, ImportOptions,
    ImportedDataset, OnError,
};
use experiments::validation::Problem;
use experiments::events::{CancelToken, NullObserver};
use experiments::data::synth::{caption_contest, write_dataset, SynthSample};
use experiments::Error;
use image::{Rgb, RgbImage};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn options(metadata: &Path, images_dir: Option<&Path>) -> ImportOptions {
    ImportOptions {
        name: "test".into(),
        metadata: metadata.to_path_buf(),
        images_dir: images_dir.map(Path::to_path_buf),
        columns: ColumnMap::default(),
        on_error: OnError::Reject,
        extract_dir: None,
    }
}

pub fn skip(mut o: ImportOptions) -> ImportOptions {
    o.on_error = OnError::Skip;
    o
}

pub fn run(o: &ImportOptions) -> experiments::Result<ImportedDataset> {
    import(o, &mut NullObserver, CancelToken::new())
}

pub fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut buf = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png).expect("encode png");
    buf
}

pub fn solid_png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    png_bytes(&RgbImage::from_pixel(w, h, Rgb(rgb)))
}

/// A synthetic dataset (`dir/images/*.png`, `dir/metadata.jsonl`) and its rows as JSON objects, each with a
/// `contest_number` added (so every format has an integer extra column).
pub struct Synth {
    pub dir: tempfile::TempDir,
    pub samples: Vec<SynthSample>,
    pub rows: Vec<serde_json::Map<String, Value>>,
}

impl Synth {
    pub fn new(n_images: usize, rows_per_image: usize) -> Self {
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn images(&self) -> PathBuf {
        self.path("images")
    }
}

pub fn write_jsonl(path: &Path, rows: &[serde_json::Map<String, Value>]) {
    let text: String = rows.iter().map(|r| format!("{}\n", Value::Object(r.clone()))).collect();
    std::fs::write(path, text).expect("write jsonl");
}

/// CSV with the caption choices JSON-encoded in one cell.
pub fn write_csv(path: &Path, rows: &[serde_json::Map<String, Value>]) {
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
pub type ImageCell = (Option<Vec<u8>>, Option<String>);

/// One parquet column, every value optional.
pub enum Col {
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
    pub fn schema(&self) -> String {
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

pub fn opt_levels<T: Clone>(values: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let defs = values.iter().map(|v| i16::from(v.is_some())).collect();
    (values.iter().flatten().cloned().collect(), defs)
}

/// (values, definition levels, repetition levels) of an optional list of optional elements.
pub fn list_levels<T: Clone>(lists: &[Option<Vec<Option<T>>>]) -> (Vec<T>, Vec<i16>, Vec<i16>) {
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

pub fn bytes(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

pub fn write_parquet(path: &Path, cols: &[Col]) -> TestResult {
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
                write_leaf::<ByteArrayType>(&mut rg, &vals, &defs, None)?;
            }
            Col::I64(_, v) => {
                let (vals, defs) = opt_levels(v);
                write_leaf::<Int64Type>(&mut rg, &vals, &defs, None)?;
            }
            Col::F64(_, v) => {
                let (vals, defs) = opt_levels(v);
                write_leaf::<DoubleType>(&mut rg, &vals, &defs, None)?;
            }
            Col::Bool(_, v) => {
                let (vals, defs) = opt_levels(v);
                write_leaf::<BoolType>(&mut rg, &vals, &defs, None)?;
            }
            Col::StrList(_, v) => {
                let (vals, defs, reps) = list_levels(v);
                let vals: Vec<ByteArray> = vals.iter().map(|s| bytes(s)).collect();
                write_leaf::<ByteArrayType>(&mut rg, &vals, &defs, Some(&reps))?;
            }
            Col::I64List(_, v) => {
                let v: Vec<Option<Vec<Option<i64>>>> =
                    v.iter().map(|l| l.as_ref().map(|l| l.iter().copied().map(Some).collect())).collect();
                let (vals, defs, reps) = list_levels(&v);
                write_leaf::<Int64Type>(&mut rg, &vals, &defs, Some(&reps))?;
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
                    write_leaf::<ByteArrayType>(&mut rg, &vals, &defs, None)?;
                }
            }
        }
    }
    rg.close()?;
    writer.close()?;
    Ok(())
}

/// Writes the row group's next leaf column: its values with their definition (and, in a list, repetition) levels.
fn write_leaf<T: DataType>(
    rg: &mut SerializedRowGroupWriter<'_, std::fs::File>,
    vals: &[T::T],
    defs: &[i16],
    reps: Option<&[i16]>,
) -> TestResult {
    let mut c = rg.next_column()?.ok_or("column")?;
    c.typed::<T>().write_batch(vals, Some(defs), reps)?;
    c.close()?;
    Ok(())
}

/// A present list of present strings, as a parquet list cell.
pub fn str_list(items: &[&str]) -> Option<Vec<Option<String>>> {
    Some(items.iter().map(|s| Some(s.to_string())).collect())
}

pub fn str_col(rows: &[serde_json::Map<String, Value>], name: &'static str) -> Col {
    Col::Str(name, rows.iter().map(|r| r.get(name).and_then(Value::as_str).map(String::from)).collect())
}

/// The synthetic rows as a parquet file like the tutorial's `new_yorker_meta.parquet`.
pub fn write_synth_parquet(path: &Path, rows: &[serde_json::Map<String, Value>]) -> TestResult {
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

pub fn problems_of(ds_or_err: &[Problem], kind: experiments::validation::ProblemKind) -> Vec<&Problem> {
    ds_or_err.iter().filter(|p| p.kind == kind).collect()
}

pub fn rejected_report(err: &Error) -> &experiments::validation::ValidationReport {
    match err {
        Error::Rejected { report, .. } => report,
        other => panic!("expected a rejected import, got: {other}"),
    }
}

