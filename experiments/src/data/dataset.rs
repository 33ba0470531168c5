//! Importing a dataset: a folder of images plus a metadata file (parquet, CSV or JSONL) joined on the file name,
//! validated row by row.
//!
//! (Types are shared with `store`; the import itself is implemented below them.)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which metadata columns hold what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct ColumnMap {
    /// Image file name, matched against the file names in the image folder.
    pub filename: String,
    /// The caption choices: a list of strings (parquet list, JSON array; in CSV a JSON-encoded list).
    pub choices: String,
    /// The right choice: a letter A–E (or A–Z), or a 0-based index.
    pub label: String,
    /// Hugging Face layout: a struct column with `bytes` and/or `path` holding the image itself.
    pub image: String,
}

impl Default for ColumnMap {
    fn default() -> Self {
        Self { filename: "filename".into(), choices: "caption_choices".into(), label: "label".into(), image: "image".into() }
    }
}

/// What to do with rows that fail validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Any bad row rejects the whole import (nothing is stored).
    #[default]
    Reject,
    /// Bad rows are left out, counted and reported.
    Skip,
}

/// What to import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportOptions {
    /// Name of the dataset in the store (unique).
    pub name: String,
    /// The metadata file; its extension picks the format (`.parquet`, `.csv`, `.jsonl` / `.ndjson`).
    pub metadata: PathBuf,
    /// The image folder (searched recursively by file name). `None`: images are embedded in the metadata
    /// (Hugging Face layout) or next to the metadata file.
    pub images_dir: Option<PathBuf>,
    pub columns: ColumnMap,
    pub on_error: OnError,
    /// Where embedded images (Hugging Face parquet with image bytes) are written as files, one per image, named
    /// by content hash. Required only when the data has embedded images.
    pub extract_dir: Option<PathBuf>,
}

/// One valid sample (metadata row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRow {
    /// 1-based row number in the metadata file.
    pub row: usize,
    /// The image's file name (the join key); rows with the same image form a group.
    pub filename: String,
    pub choices: Vec<String>,
    /// 0-based index of the right choice.
    pub label: usize,
    /// Every other column, kept as JSON (`contest_number`, `image_description`, `instance_id`, ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One image the rows refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The join key (file name).
    pub filename: String,
    /// Absolute path of the file (for embedded images: the extracted file).
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// A validated dataset, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedDataset {
    pub name: String,
    pub metadata_path: PathBuf,
    pub images_dir: Option<PathBuf>,
    pub columns: ColumnMap,
    pub rows: Vec<DatasetRow>,
    pub images: Vec<ImageRecord>,
    pub report: ValidationReport,
    /// SHA-256 over the metadata file's bytes and every image's hash (in file-name order), hex.
    pub content_hash: String,
}

// ===============================================================================================================
// Import
// ===============================================================================================================
//
// How an import goes:
//
// 1. The metadata file is read into a [`RawTable`]: one JSON object per row (every column but the image column),
//    plus the image column's file path and/or embedded bytes (deduplicated by content hash).
// 2. Each row's join key, caption choices and label are checked (`bad_value`, `too_few_choices`, `empty_caption`,
//    `label_not_in_choices`, `duplicate_row`).
// 3. The image folder is indexed once (file name → path) and each row's image found there (`missing_image`,
//    `ambiguous_image`), unless the row carries the image itself.
// 4. Each distinct image is read once, hashed (SHA-256) and fully decoded (`unreadable_image`), on a few threads.
// 5. Bad rows reject the import or are left out; embedded images used by kept rows are written to `extract_dir`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::events::{Event, Observer, Phase};
use crate::validation::{kind, Problem, ValidationReport};
use crate::vocab::{letter, letter_to_index};


/// SHA-256 (hex) and length of a file, read in a streaming way.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let file = std::fs::File::open(path).map_err(|e| io_or_missing(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

fn io_or_missing(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::MissingFile { path: path.to_path_buf(), hint: String::new() }
    } else {
        Error::io(path, e)
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `2341` → `"2,341"`.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

fn info(obs: &mut dyn Observer, message: String) {
    obs.on_event(&Event::Info { message });
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The file-name component of a path written in metadata (`images/x.png`, `C:\data\x.png` → `x.png`).
fn file_name_of(s: &str) -> &str {
    s.rsplit(['/', '\\']).next().unwrap_or(s)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value shortened for messages.
fn short(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}…")
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading metadata
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Csv(u8),
    Jsonl,
    /// `.json`: an array of objects, or JSON lines.
    Json,
}

impl Format {
    fn of(path: &Path) -> Result<Self> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "parquet" | "pq" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv(b',')),
            "tsv" => Ok(Format::Csv(b'\t')),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "json" => Ok(Format::Json),
            _ => Err(Error::Invalid(format!(
                "{}: unknown metadata format {}; use a .parquet, .csv, .tsv, .jsonl / .ndjson or .json file",
                path.display(),
                if ext.is_empty() { "(no extension)".to_string() } else { format!("`.{ext}`") }
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv(b'\t') => "TSV",
            Format::Csv(_) => "CSV",
            Format::Jsonl => "JSON lines",
            Format::Json => "JSON",
        }
    }
}

/// The image column of one row.
#[derive(Debug, Default, Clone)]
struct RawImage {
    /// Content hash of the embedded bytes (the bytes are in [`RawTable::blobs`]).
    sha256: Option<String>,
    /// The path written in the data (`image.path`, or the column itself when it is text).
    path: Option<String>,
}

#[derive(Debug)]
struct RawRow {
    /// 1-based data row.
    row: usize,
    /// Every column but the image column.
    values: serde_json::Map<String, Value>,
    image: Option<RawImage>,
    /// A problem found while reading the row (e.g. an image column of the wrong type).
    problem: Option<(&'static str, String)>,
}

#[derive(Debug, Default)]
struct RawTable {
    /// Column names in file order.
    columns: Vec<String>,
    rows: Vec<RawRow>,
    /// Embedded image bytes by SHA-256.
    blobs: HashMap<String, Vec<u8>>,
}

impl RawTable {
    /// Error naming the first required column that is missing, with the columns found.
    fn check_columns(&self, path: &Path, cols: &ColumnMap) -> Result<()> {
        let has = |c: &str| self.columns.iter().any(|x| x == c);
        let mut required = vec![(&cols.choices, "caption choices"), (&cols.label, "label")];
        if !has(&cols.image) {
            required.insert(0, (&cols.filename, "image file name"));
        }
        for (col, what) in required {
            if !has(col) {
                let found = if self.columns.is_empty() {
                    "none".to_string()
                } else {
                    self.columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                };
                let problem = Problem::new(
                    None,
                    Some(display_name(path)),
                    kind::MISSING_COLUMN,
                    format!("missing column `{col}` ({what}); columns found: {found}"),
                );
                return Err(rejected(path, ValidationReport { problems: vec![problem], ..Default::default() }));
            }
        }
        Ok(())
    }

    /// Turns the image column's value into a [`RawImage`] (text: a path; object: `bytes` / `path`).
    fn image_from_json(v: Value) -> std::result::Result<Option<RawImage>, String> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(RawImage { sha256: None, path: Some(s) })),
            Value::Object(map) => {
                let path = match map.get("path") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Null) | None => None,
                    Some(other) => return Err(format!("image.path is {}, expected text", type_name(other))),
                };
                if map.get("bytes").is_some_and(|b| !b.is_null()) {
                    return Err("embedded image bytes are only read from parquet files".to_string());
                }
                Ok(Some(RawImage { sha256: None, path }))
            }
            other => Err(format!("image column holds {}, expected a path or {{bytes, path}}", type_name(&other))),
        }
    }

    /// Adds a row of JSON values (CSV, JSONL), moving the image column out.
    fn push_json_row(&mut self, mut values: serde_json::Map<String, Value>, cols: &ColumnMap) {
        let row = self.rows.len() + 1;
        let mut problem = None;
        let image = match values.remove(&cols.image) {
            None => None,
            Some(v) => match Self::image_from_json(v) {
                Ok(img) => img,
                Err(reason) => {
                    problem = Some((kind::BAD_VALUE, reason));
                    None
                }
            },
        };
        self.rows.push(RawRow { row, values, image, problem });
    }
}

fn read_metadata(path: &Path, format: Format, cols: &ColumnMap) -> Result<RawTable> {
    match format {
        Format::Parquet => read_parquet(path, cols),
        Format::Csv(delimiter) => read_csv(path, delimiter, cols),
        Format::Jsonl => read_json_lines(path, &read_text(path)?, cols),
        Format::Json => {
            let text = read_text(path)?;
            if text.trim_start().starts_with('[') {
                read_json_array(path, &text, cols)
            } else {
                read_json_lines(path, &text, cols)
            }
        }
    }
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = crate::error::read_file(path)?;
    let mut text =
        String::from_utf8(bytes).map_err(|e| Error::bad_file(path, format!("not UTF-8 text: {}", e.utf8_error())))?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

fn add_columns(columns: &mut Vec<String>, seen: &mut HashSet<String>, obj: &serde_json::Map<String, Value>) {
    for k in obj.keys() {
        if !seen.contains(k) {
            seen.insert(k.clone());
            columns.push(k.clone());
        }
    }
}

fn read_json_lines(path: &Path, text: &str, cols: &ColumnMap) -> Result<RawTable> {
    let mut table = RawTable::default();
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let lineno = i + 1;
        let value: Value = serde_json::from_str(line)
            .map_err(|e| Error::bad_file(path, format!("line {lineno}: invalid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(Error::bad_file(
                path,
                format!("line {lineno}: expected one JSON object per line, found {}", type_name(&value)),
            ));
        };
        add_columns(&mut table.columns, &mut seen, &obj);
        table.push_json_row(obj, cols);
    }
    Ok(table)
}

fn read_json_array(path: &Path, text: &str, cols: &ColumnMap) -> Result<RawTable> {
    let value: Value = serde_json::from_str(text).map_err(|e| Error::bad_file(path, format!("invalid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(Error::bad_file(path, "expected a JSON array of objects"));
    };
    let mut table = RawTable::default();
    let mut seen = HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(obj) = item else {
            return Err(Error::bad_file(
                path,
                format!("item {}: expected a JSON object, found {}", i + 1, type_name(&item)),
            ));
        };
        add_columns(&mut table.columns, &mut seen, &obj);
        table.push_json_row(obj, cols);
    }
    Ok(table)
}

/// A CSV cell of an extra column: JSON numbers and booleans become numbers and booleans (only when the cell is
/// exactly a JSON number, so `007` or `1e` stay text), an empty cell is null, anything else is text.
fn csv_cell(s: &str) -> Value {
    let t = s.trim();
    if t.is_empty() {
        return Value::Null;
    }
    let first = t.as_bytes()[0];
    if first == b'-' || first.is_ascii_digit() || t == "true" || t == "false" {
        if let Ok(v @ (Value::Number(_) | Value::Bool(_))) = serde_json::from_str::<Value>(t) {
            return v;
        }
    }
    Value::String(s.to_string())
}

fn read_csv(path: &Path, delimiter: u8, cols: &ColumnMap) -> Result<RawTable> {
    let bytes = crate::error::read_file(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes.as_slice());
    let headers = reader.headers().map_err(|e| Error::bad_file(path, format!("header: {e}")))?.clone();
    let mut table = RawTable::default();
    for (i, h) in headers.iter().enumerate() {
        // Strip a byte-order mark the reader may have left on the first name.
        let h = if i == 0 { h.trim_start_matches('\u{feff}') } else { h };
        let h = h.trim().to_string();
        if table.columns.contains(&h) {
            return Err(Error::bad_file(path, format!("column `{h}` appears twice in the header")));
        }
        table.columns.push(h);
    }
    let text_cols = [&cols.filename, &cols.choices, &cols.label, &cols.image];
    let mut record = csv::StringRecord::new();
    loop {
        let more = reader.read_record(&mut record).map_err(|e| {
            let row = table.rows.len() + 1;
            match e.position() {
                Some(p) => Error::bad_file(path, format!("row {row} (line {}): {e}", p.line())),
                None => Error::bad_file(path, format!("row {row}: {e}")),
            }
        })?;
        if !more {
            break;
        }
        let mut values = serde_json::Map::new();
        for (name, cell) in table.columns.iter().zip(record.iter()) {
            let v = if text_cols.contains(&name) {
                if cell.trim().is_empty() && name != &cols.label {
                    Value::Null
                } else {
                    Value::String(cell.to_string())
                }
            } else {
                csv_cell(cell)
            };
            values.insert(name.clone(), v);
        }
        table.push_json_row(values, cols);
    }
    Ok(table)
}

fn read_parquet(path: &Path, cols: &ColumnMap) -> Result<RawTable> {
    // The parquet reader panics on some corrupt files; a broken file must give an error, not a crash.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_parquet_inner(path, cols))) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "reader crashed".to_string());
            Err(Error::bad_file(path, format!("corrupt parquet file: {msg}")))
        }
    }
}

fn read_parquet_inner(path: &Path, cols: &ColumnMap) -> Result<RawTable> {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let file = std::fs::File::open(path).map_err(|e| io_or_missing(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| Error::bad_file(path, format!("not a readable parquet file: {e}")))?;
    let mut table = RawTable {
        columns: reader
            .metadata()
            .file_metadata()
            .schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
        ..Default::default()
    };
    table.check_columns(path, cols)?;
    let rows = reader.get_row_iter(None).map_err(|e| Error::bad_file(path, format!("cannot read rows: {e}")))?;
    for (i, row) in rows.enumerate() {
        let rownum = i + 1;
        let row = row.map_err(|e| Error::bad_file(path, format!("row {rownum}: {e}")))?;
        let mut values = serde_json::Map::new();
        let mut image = None;
        let mut problem = None;
        for (name, field) in row.into_columns() {
            if name == cols.image {
                match parquet_image(field, &mut table.blobs) {
                    Ok(img) => image = img,
                    Err(reason) => problem = Some((kind::BAD_VALUE, reason)),
                }
            } else {
                values.insert(name, field_to_json(&field));
            }
        }
        table.rows.push(RawRow { row: rownum, values, image, problem });
    }
    Ok(table)
}

/// The Hugging Face image column: a struct `{bytes: binary, path: string}` (either may be null), or a plain path
/// or plain bytes.
fn parquet_image(
    field: parquet::record::Field,
    blobs: &mut HashMap<String, Vec<u8>>,
) -> std::result::Result<Option<RawImage>, String> {
    use parquet::record::Field;
    let mut store = |bytes: Vec<u8>| {
        let sha = sha256_hex(&bytes);
        blobs.entry(sha.clone()).or_insert(bytes);
        sha
    };
    match field {
        Field::Null => Ok(None),
        Field::Str(s) => Ok(Some(RawImage { sha256: None, path: Some(s) })),
        Field::Bytes(b) => Ok(Some(RawImage { sha256: Some(store(b.data().to_vec())), path: None })),
        Field::Group(row) => {
            let mut img = RawImage::default();
            for (name, f) in row.into_columns() {
                match (name.as_str(), f) {
                    (_, Field::Null) => {}
                    ("bytes", Field::Bytes(b)) => img.sha256 = Some(store(b.data().to_vec())),
                    ("bytes", Field::Str(s)) => img.sha256 = Some(store(s.into_bytes())),
                    ("path", Field::Str(s)) => img.path = Some(s),
                    ("path", Field::Bytes(b)) => img.path = Some(String::from_utf8_lossy(b.data()).into_owned()),
                    ("bytes" | "path", other) => {
                        return Err(format!("image.{name} has an unexpected type ({})", field_to_json(&other)))
                    }
                    _ => {}
                }
            }
            Ok((img.sha256.is_some() || img.path.is_some()).then_some(img))
        }
        other => Err(format!("image column holds {}, expected {{bytes, path}}", type_name(&field_to_json(&other)))),
    }
}

/// Any parquet value as JSON: numbers as numbers (non-finite floats as null), text as text, binary as text when
/// it is UTF-8 and as hex otherwise, decimals / dates / times as text, structs as objects, lists as arrays, maps
/// as objects (text keys) or as arrays of `[key, value]` pairs.
fn field_to_json(field: &parquet::record::Field) -> Value {
    use parquet::record::Field;
    let float = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(n) => Value::from(*n),
        Field::Short(n) => Value::from(*n),
        Field::Int(n) => Value::from(*n),
        Field::Long(n) => Value::from(*n),
        Field::UByte(n) => Value::from(*n),
        Field::UShort(n) => Value::from(*n),
        Field::UInt(n) => Value::from(*n),
        Field::ULong(n) => Value::from(*n),
        Field::Float16(x) => float(f64::from(*x)),
        Field::Float(x) => float(f64::from(*x)),
        Field::Double(x) => float(*x),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::String(hex(b.data())),
        },
        Field::Decimal(_)
        | Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => Value::String(field.to_string()),
        Field::Group(row) => {
            Value::Object(row.get_column_iter().map(|(k, v)| (k.clone(), field_to_json(v))).collect())
        }
        Field::ListInternal(list) => Value::Array(list.elements().iter().map(field_to_json).collect()),
        Field::MapInternal(map) => {
            let entries = map.entries();
            if entries.iter().all(|(k, _)| matches!(k, Field::Str(_))) {
                Value::Object(
                    entries
                        .iter()
                        .filter_map(|(k, v)| match k {
                            Field::Str(k) => Some((k.clone(), field_to_json(v))),
                            _ => None,
                        })
                        .collect(),
                )
            } else {
                Value::Array(
                    entries.iter().map(|(k, v)| Value::Array(vec![field_to_json(k), field_to_json(v)])).collect(),
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Checking values
// ---------------------------------------------------------------------------------------------------------------

type RowProblem = (&'static str, String);

/// A list written as text: JSON (`["a", "b"]`) or Python's repr as pandas writes it to CSV (`['a', "b's"]`, and
/// numpy's `['a' 'b']` without commas).
fn parse_list_text(s: &str) -> Option<Vec<Value>> {
    let t = s.trim();
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(t) {
        return Some(items);
    }
    parse_python_str_list(t).map(|v| v.into_iter().map(Value::String).collect())
}

/// Parses `['a', "b", 'c\'d']` (commas optional, as numpy prints arrays).
fn parse_python_str_list(s: &str) -> Option<Vec<String>> {
    let mut chars = s.chars().peekable();
    let skip_ws = |c: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while c.peek().is_some_and(|c| c.is_whitespace()) {
            c.next();
        }
    };
    skip_ws(&mut chars);
    if chars.next()? != '[' {
        return None;
    }
    let mut out = Vec::new();
    loop {
        skip_ws(&mut chars);
        match chars.next()? {
            ']' => break,
            ',' if !out.is_empty() => continue,
            q @ ('\'' | '"') => {
                let mut item = String::new();
                loop {
                    match chars.next()? {
                        c if c == q => break,
                        '\\' => match chars.next()? {
                            'n' => item.push('\n'),
                            't' => item.push('\t'),
                            'r' => item.push('\r'),
                            '0' => item.push('\0'),
                            '\n' => {}
                            'x' => item.push(hex_char(&mut chars, 2)?),
                            'u' => item.push(hex_char(&mut chars, 4)?),
                            'U' => item.push(hex_char(&mut chars, 8)?),
                            c @ ('\\' | '\'' | '"') => item.push(c),
                            c => {
                                item.push('\\');
                                item.push(c);
                            }
                        },
                        c => item.push(c),
                    }
                }
                out.push(item);
            }
            _ => return None,
        }
    }
    skip_ws(&mut chars);
    chars.next().is_none().then_some(out)
}

fn hex_char(chars: &mut impl Iterator<Item = char>, n: usize) -> Option<char> {
    let digits: String = chars.take(n).collect();
    if digits.len() != n {
        return None;
    }
    char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
}

fn parse_choices(v: Option<&Value>, col: &str) -> std::result::Result<Vec<String>, RowProblem> {
    let items = match v {
        None | Some(Value::Null) => return Err((kind::BAD_VALUE, format!("no caption choices (`{col}` is empty)"))),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => parse_list_text(s).ok_or_else(|| {
            (
                kind::BAD_VALUE,
                format!("`{col}` is not a list: {} (expected a JSON list such as [\"first\", \"second\"])", short(s)),
            )
        })?,
        Some(other) => {
            return Err((kind::BAD_VALUE, format!("`{col}` is {}, expected a list of captions", type_name(other))))
        }
    };
    let mut choices = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::String(s) => choices.push(s),
            other => {
                return Err((
                    kind::BAD_VALUE,
                    format!("choice {} of `{col}` is {}, expected text", letter(i), type_name(&other)),
                ))
            }
        }
    }
    if choices.len() < 2 {
        return Err((
            kind::TOO_FEW_CHOICES,
            format!("{} caption choice(s); a multiple-choice row needs at least 2", choices.len()),
        ));
    }
    if let Some(i) = choices.iter().position(|c| c.trim().is_empty()) {
        return Err((kind::EMPTY_CAPTION, format!("caption choice {} is empty", letter(i))));
    }
    Ok(choices)
}

/// The label as an index into `choices`: a letter, a 0-based index (text or number), or the text of one caption.
fn parse_label(v: Option<&Value>, choices: &[String], col: &str) -> std::result::Result<usize, RowProblem> {
    let n = choices.len();
    let last = n.saturating_sub(1);
    let range = format!("{}–{} or 0–{last}", letter(0), letter(last));
    let out_of_range =
        |shown: String| (kind::LABEL_NOT_IN_CHOICES, format!("label {shown} is not among the {n} choices ({range})"));
    match v {
        None | Some(Value::Null) => Err((kind::LABEL_NOT_IN_CHOICES, format!("no label (`{col}` is empty)"))),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                return Err((kind::LABEL_NOT_IN_CHOICES, format!("no label (`{col}` is empty)")));
            }
            match letter_to_index(t) {
                Some(i) if i < n => Ok(i),
                parsed => match choices.iter().position(|c| c.trim() == t) {
                    Some(i) => Ok(i),
                    None if parsed.is_some() || t.starts_with('-') => Err(out_of_range(short(t))),
                    None => Err((
                        kind::LABEL_NOT_IN_CHOICES,
                        format!("label {} is not a choice letter ({range}) nor one of the captions", short(t)),
                    )),
                },
            }
        }
        Some(Value::Number(num)) => {
            if let Some(i) = num.as_u64() {
                return usize::try_from(i).ok().filter(|&i| i < n).ok_or_else(|| out_of_range(num.to_string()));
            }
            if num.as_i64().is_some() {
                return Err(out_of_range(num.to_string()));
            }
            match num.as_f64() {
                Some(x) if x.fract() == 0.0 && x >= 0.0 && x < n as f64 => Ok(x as usize),
                Some(x) if x.fract() == 0.0 => Err(out_of_range(num.to_string())),
                _ => Err((kind::BAD_VALUE, format!("label {num} is not a whole number"))),
            }
        }
        Some(other) => Err((
            kind::BAD_VALUE,
            format!("label is {}, expected a letter (A–E) or a 0-based index", type_name(other)),
        )),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------------------------

/// File name → every file with that name under a folder (recursively; hidden subfolders are skipped).
#[derive(Debug, Default)]
struct ImageIndex {
    root: PathBuf,
    by_name: HashMap<String, Vec<PathBuf>>,
    files: usize,
}

impl ImageIndex {
    fn build(root: &Path) -> Result<Self> {
        let meta = std::fs::metadata(root).map_err(|e| io_or_missing(root, e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!("{}: not a folder (expected the image folder)", root.display())));
        }
        let mut index = ImageIndex { root: root.to_path_buf(), ..Default::default() };
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&dir, e))?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(file_type) = entry.file_type() else { continue };
                // Symbolic links are followed to files, never to folders (no loops).
                let (is_dir, is_file) = if file_type.is_symlink() {
                    (false, std::fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false))
                } else {
                    (file_type.is_dir(), file_type.is_file())
                };
                if is_dir {
                    if !name.starts_with('.') {
                        stack.push(path);
                    }
                } else if is_file {
                    index.files += 1;
                    index.by_name.entry(name).or_default().push(path);
                }
            }
        }
        for paths in index.by_name.values_mut() {
            paths.sort();
        }
        Ok(index)
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    /// A case-insensitive near miss, for the "not found" message.
    fn near_miss(&self, name: &str) -> Option<&str> {
        let lower = name.to_lowercase();
        self.by_name.keys().find(|k| k.to_lowercase() == lower).map(|k| k.as_str())
    }
}

/// Where a row's image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Source {
    File(PathBuf),
    /// Embedded bytes, by SHA-256.
    Embedded(String),
}

#[derive(Debug, Clone)]
struct ImageInfo {
    sha256: String,
    bytes: u64,
    width: u32,
    height: u32,
    /// File extension of the sniffed format (for extracted images).
    ext: &'static str,
}

#[derive(Debug, Clone)]
enum ImageFailure {
    Missing(String),
    Unreadable(String),
}

/// Hashes and fully decodes one image held in memory (a truncated file must fail here, not at training time).
fn inspect_bytes(bytes: &[u8], name_hint: &str) -> std::result::Result<ImageInfo, ImageFailure> {
    let format = image::guess_format(bytes).ok().or_else(|| image::ImageFormat::from_path(name_hint).ok());
    let Some(format) = format else {
        return Err(ImageFailure::Unreadable(
            "not an image in a known format (PNG, JPEG, WebP, GIF, BMP, TIFF)".to_string(),
        ));
    };
    let decoded = std::panic::catch_unwind(|| {
        image::ImageReader::with_format(std::io::Cursor::new(bytes), format).decode()
    });
    let img = match decoded {
        Ok(Ok(img)) => img,
        Ok(Err(e)) => return Err(ImageFailure::Unreadable(format!("cannot decode {format:?} image: {e}"))),
        Err(_) => return Err(ImageFailure::Unreadable(format!("the {format:?} decoder crashed on this file"))),
    };
    Ok(ImageInfo {
        sha256: sha256_hex(bytes),
        bytes: bytes.len() as u64,
        width: img.width(),
        height: img.height(),
        ext: format.extensions_str().first().copied().unwrap_or("img"),
    })
}

fn inspect(source: &Source, blobs: &HashMap<String, Vec<u8>>) -> std::result::Result<ImageInfo, ImageFailure> {
    match source {
        Source::File(path) => match std::fs::read(path) {
            Ok(bytes) => inspect_bytes(&bytes, &path.to_string_lossy()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ImageFailure::Missing(format!("image file {} disappeared", path.display())))
            }
            Err(e) => Err(ImageFailure::Unreadable(format!("cannot read {}: {e}", path.display()))),
        },
        Source::Embedded(sha) => match blobs.get(sha) {
            Some(bytes) => inspect_bytes(bytes, ""),
            None => Err(ImageFailure::Missing("embedded image bytes lost".to_string())),
        },
    }
}

/// Runs `work` over `items` on a few threads; `tick(done)` runs on this thread after each item and may stop
/// the work by returning `false` (then `None`).
fn par_map<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
    mut tick: impl FnMut(usize) -> bool,
) -> Option<Vec<R>> {
    let n = items.len();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 8).min(n.max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, R)>();
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let mut finished = true;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, work) = (&next, &stop, &work);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send((i, work(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for (i, r) in rx.iter() {
            out[i] = Some(r);
            done += 1;
            if !tick(done) {
                finished = false;
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        drop(rx);
    });
    if finished {
        out.into_iter().collect()
    } else {
        None
    }
}

/// Reports progress of `Phase::Load` about every 1 %.
struct Ticker {
    total: usize,
    last_pct: usize,
    start: std::time::Instant,
}

impl Ticker {
    fn new(total: usize) -> Self {
        Ticker { total, last_pct: usize::MAX, start: std::time::Instant::now() }
    }

    fn tick(&mut self, done: usize, obs: &mut dyn Observer) {
        let pct = done * 100 / self.total.max(1);
        if pct != self.last_pct || done == self.total {
            self.last_pct = pct;
            let elapsed_s = self.start.elapsed().as_secs_f64();
            let left = self.total.saturating_sub(done);
            let eta_s = if done == 0 { 0.0 } else { elapsed_s / done as f64 * left as f64 };
            obs.on_event(&Event::Progress { phase: Phase::Load, done, total: self.total, elapsed_s, eta_s });
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a reader never sees a
/// half-written file. An existing file with the same content is left alone.
fn write_atomic(path: &Path, bytes: &[u8], sha256: &str) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64)
        && sha256_file(path).is_ok_and(|(h, _)| h == sha256)
    {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        display_name(path),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io(path, e))
}

fn rejected(metadata: &Path, report: ValidationReport) -> Error {
    let first = report.problems.first().map_or_else(|| "no valid row".to_string(), |p| p.to_string());
    Error::Rejected { file: metadata.to_path_buf(), n: report.problems.len(), first, report: Box::new(report) }
}

// ---------------------------------------------------------------------------------------------------------------
// The import
// ---------------------------------------------------------------------------------------------------------------

/// A row after its values were checked.
struct Parsed {
    filename: String,
    choices: Vec<String>,
    label: usize,
    extra: serde_json::Map<String, Value>,
    source: Option<Source>,
}

/// Reads, joins and validates a dataset (see the module docs and [`ImportOptions`]).
///
/// Errors: the metadata file is missing, unreadable or malformed (naming the file and row / line); a required
/// column is missing ([`Error::Rejected`] with one `missing_column` problem, listing the columns found); any bad
/// row under [`OnError::Reject`], or no valid row at all under [`OnError::Skip`] ([`Error::Rejected`] carrying
/// the full [`ValidationReport`]); embedded images but no `extract_dir`; cancellation through `obs`.
pub fn import(opts: &ImportOptions, obs: &mut dyn Observer) -> Result<ImportedDataset> {
    let meta_path = absolute(&opts.metadata)?;
    let meta_name = display_name(&meta_path);
    let cols = &opts.columns;
    let format = Format::of(&meta_path)?;
    if !meta_path.is_file() {
        return Err(Error::MissingFile { path: meta_path, hint: " (the metadata file)".to_string() });
    }
    info(obs, format!("reading {} metadata from {}", format.name(), meta_path.display()));
    let table = read_metadata(&meta_path, format, cols)?;
    table.check_columns(&meta_path, cols)?;
    if table.rows.is_empty() {
        return Err(Error::bad_file(&meta_path, "no data rows"));
    }
    info(obs, format!("read {} rows from {meta_name}", count(table.rows.len())));
    if obs.cancelled() {
        return Err(Error::Cancelled);
    }

    // 1. Values of each row.
    let mut problems: Vec<Vec<Problem>> = Vec::with_capacity(table.rows.len());
    let mut parsed: Vec<Option<Parsed>> = Vec::with_capacity(table.rows.len());
    let mut seen_rows: HashMap<(String, Vec<String>, usize), usize> = HashMap::new();
    for raw in &table.rows {
        let (p, mut probs) = parse_row(raw, cols, &table.blobs);
        if let Some(p) = &p {
            let key = (p.filename.clone(), p.choices.clone(), p.label);
            if let Some(first) = seen_rows.get(&key) {
                probs.push(Problem::new(
                    Some(raw.row),
                    Some(p.filename.clone()),
                    kind::DUPLICATE_ROW,
                    format!("same image, choices and label as row {first}"),
                ));
            } else {
                seen_rows.insert(key, raw.row);
            }
        }
        problems.push(probs);
        parsed.push(p);
    }

    // 2. Find the files of rows that don't carry their image.
    let needs_files = parsed.iter().flatten().any(|p| p.source.is_none());
    let root = match &opts.images_dir {
        Some(dir) => Some(absolute(dir)?),
        None if needs_files => Some(meta_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)),
        None => None,
    };
    let index = match (&root, needs_files) {
        (Some(root), true) => {
            let index = ImageIndex::build(root)?;
            info(obs, format!("found {} files under {}", count(index.files), root.display()));
            Some(index)
        }
        _ => None,
    };
    if let Some(index) = &index {
        for ((raw, p), probs) in table.rows.iter().zip(parsed.iter_mut()).zip(problems.iter_mut()) {
            let Some(p) = p else { continue };
            if p.source.is_some() {
                continue;
            }
            match index.by_name.get(&p.filename).map(Vec::as_slice) {
                Some([one]) => p.source = Some(Source::File(one.clone())),
                Some(many) => probs.push(Problem::new(
                    Some(raw.row),
                    Some(p.filename.clone()),
                    kind::AMBIGUOUS_IMAGE,
                    format!(
                        "{} files are named {}: {}",
                        many.len(),
                        p.filename,
                        many.iter().map(|m| index.relative(m)).collect::<Vec<_>>().join(", ")
                    ),
                )),
                None => {
                    let hint = index
                        .near_miss(&p.filename)
                        .map(|m| format!(" (there is {m}: file names are case-sensitive)"))
                        .unwrap_or_default();
                    probs.push(Problem::new(
                        Some(raw.row),
                        Some(p.filename.clone()),
                        kind::MISSING_IMAGE,
                        format!("no image file named {} under {}{hint}", p.filename, index.root.display()),
                    ));
                }
            }
        }
    }

    // 3. One source per file name (two different images under one name cannot be told apart).
    let mut by_name: HashMap<String, (Source, usize)> = HashMap::new();
    for ((raw, p), probs) in table.rows.iter().zip(parsed.iter_mut()).zip(problems.iter_mut()) {
        let Some(p) = p else { continue };
        let Some(source) = &p.source else { continue };
        match by_name.get(&p.filename) {
            None => {
                by_name.insert(p.filename.clone(), (source.clone(), raw.row));
            }
            Some((s, _)) if s == source => {}
            Some((_, first)) => {
                probs.push(Problem::new(
                    Some(raw.row),
                    Some(p.filename.clone()),
                    kind::AMBIGUOUS_IMAGE,
                    format!("a different image than row {first}'s has the same file name {}", p.filename),
                ));
                p.source = None;
            }
        }
    }

    // 4. Read, hash and decode each distinct image once.
    let mut sources: Vec<Source> = by_name.values().map(|(s, _)| s.clone()).collect();
    sources.sort();
    sources.dedup();
    if sources.iter().any(|s| matches!(s, Source::Embedded(_))) && opts.extract_dir.is_none() {
        return Err(Error::Invalid(format!(
            "{}: the images are embedded in the metadata; set an extract folder to write them to",
            meta_path.display()
        )));
    }
    let mut ticker = Ticker::new(sources.len());
    let mut cancelled = false;
    let outcomes = par_map(
        &sources,
        |s| inspect(s, &table.blobs),
        |done| {
            ticker.tick(done, obs);
            cancelled = obs.cancelled();
            !cancelled
        },
    )
    .ok_or(Error::Cancelled)?;
    let outcome: HashMap<&Source, &std::result::Result<ImageInfo, ImageFailure>> =
        sources.iter().zip(outcomes.iter()).collect();

    // 5. Image problems, then keep or reject.
    let mut report = ValidationReport { total_rows: table.rows.len(), ..Default::default() };
    let mut rows = Vec::new();
    let mut used: BTreeMap<String, Source> = BTreeMap::new();
    for ((raw, p), mut probs) in table.rows.iter().zip(parsed).zip(problems) {
        if let Some(Parsed { filename, source: Some(source), .. }) = &p {
            let shown = match (source, &index) {
                (Source::File(path), Some(index)) => index.relative(path),
                _ => filename.clone(),
            };
            match outcome.get(source) {
                Some(Ok(_)) => {}
                Some(Err(ImageFailure::Missing(reason))) => {
                    probs.push(Problem::new(Some(raw.row), Some(shown), kind::MISSING_IMAGE, reason.clone()))
                }
                Some(Err(ImageFailure::Unreadable(reason))) => {
                    probs.push(Problem::new(Some(raw.row), Some(shown), kind::UNREADABLE_IMAGE, reason.clone()))
                }
                None => {}
            }
        }
        match p {
            Some(Parsed { filename, choices, label, extra, source: Some(source) }) if probs.is_empty() => {
                used.insert(filename.clone(), source);
                rows.push(DatasetRow { row: raw.row, filename, choices, label, extra });
            }
            _ => report.problems.extend(probs),
        }
    }
    report.valid_rows = rows.len();
    if !report.problems.is_empty() {
        info(
            obs,
            format!(
                "{} of {} rows have problems: {}",
                count(report.bad_rows()),
                count(report.total_rows),
                report.counts_by_kind().iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    if (opts.on_error == OnError::Reject && !report.problems.is_empty()) || rows.is_empty() {
        return Err(rejected(&meta_path, report));
    }

    // 6. Image records (embedded images written out), content hash.
    let extract_dir = match &opts.extract_dir {
        Some(dir) if used.values().any(|s| matches!(s, Source::Embedded(_))) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            Some(absolute(dir)?)
        }
        _ => None,
    };
    let mut images = Vec::with_capacity(used.len());
    let mut total_bytes = 0u64;
    let mut extracted = 0usize;
    for (filename, source) in &used {
        let Some(Ok(info)) = outcome.get(source) else { continue };
        let path = match (source, &extract_dir) {
            (Source::File(path), _) => path.clone(),
            (Source::Embedded(sha), Some(dir)) => {
                let path = dir.join(format!("{}.{}", info.sha256, info.ext));
                if let Some(bytes) = table.blobs.get(sha) {
                    write_atomic(&path, bytes, &info.sha256)?;
                    extracted += 1;
                }
                path
            }
            (Source::Embedded(_), None) => continue,
        };
        total_bytes += info.bytes;
        images.push(ImageRecord {
            filename: filename.clone(),
            path,
            sha256: info.sha256.clone(),
            width: info.width,
            height: info.height,
            bytes: info.bytes,
        });
    }
    let mut hasher = Sha256::new();
    {
        let file = std::fs::File::open(&meta_path).map_err(|e| io_or_missing(&meta_path, e))?;
        let mut reader = std::io::BufReader::new(file);
        std::io::copy(&mut reader, &mut hasher).map_err(|e| Error::io(&meta_path, e))?;
    }
    for img in &images {
        hasher.update(img.sha256.as_bytes());
    }
    let content_hash = hex(&hasher.finalize());

    info(
        obs,
        format!(
            "hashed and decoded {} images ({}){}; {} of {} rows valid",
            count(images.len()),
            human_bytes(total_bytes),
            if extracted > 0 { format!(", {} extracted", count(extracted)) } else { String::new() },
            count(report.valid_rows),
            count(report.total_rows)
        ),
    );
    Ok(ImportedDataset {
        name: opts.name.clone(),
        metadata_path: meta_path,
        images_dir: if used.values().any(|s| matches!(s, Source::File(_))) { root } else { None },
        columns: cols.clone(),
        rows,
        images,
        report,
        content_hash,
    })
}

/// Checks one row's values; `None` when the file name, choices or label are unusable.
fn parse_row(raw: &RawRow, cols: &ColumnMap, blobs: &HashMap<String, Vec<u8>>) -> (Option<Parsed>, Vec<Problem>) {
    let mut probs = Vec::new();
    if let Some((k, reason)) = &raw.problem {
        probs.push(Problem::new(Some(raw.row), None, k, reason.clone()));
    }

    // The join key: the filename column, else the image's path, else the embedded image's hash.
    let from_image = |img: &RawImage| -> Option<String> {
        if let Some(path) = img.path.as_deref().map(file_name_of).filter(|s| !s.trim().is_empty()) {
            return Some(path.to_string());
        }
        let sha = img.sha256.as_ref()?;
        let ext = blobs
            .get(sha)
            .and_then(|b| image::guess_format(b).ok())
            .and_then(|f| f.extensions_str().first().copied())
            .unwrap_or("img");
        Some(format!("{sha}.{ext}"))
    };
    let filename = match raw.values.get(&cols.filename) {
        Some(Value::String(s)) if !file_name_of(s).trim().is_empty() => Some(file_name_of(s).to_string()),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            let f = raw.image.as_ref().and_then(from_image);
            if f.is_none() {
                probs.push(Problem::new(
                    Some(raw.row),
                    None,
                    kind::BAD_VALUE,
                    format!("no image file name (`{}` is empty)", cols.filename),
                ));
            }
            f
        }
        Some(other) => {
            probs.push(Problem::new(
                Some(raw.row),
                None,
                kind::BAD_VALUE,
                format!("`{}` is {}, expected a file name", cols.filename, type_name(other)),
            ));
            None
        }
    };
    let file = filename.clone();
    let choices = match parse_choices(raw.values.get(&cols.choices), &cols.choices) {
        Ok(c) => Some(c),
        Err((k, reason)) => {
            probs.push(Problem::new(Some(raw.row), file.clone(), k, reason));
            None
        }
    };
    let label = choices.as_ref().and_then(|choices| {
        match parse_label(raw.values.get(&cols.label), choices, &cols.label) {
            Ok(l) => Some(l),
            Err((k, reason)) => {
                probs.push(Problem::new(Some(raw.row), file.clone(), k, reason));
                None
            }
        }
    });
    let parsed = match (filename, choices, label) {
        (Some(filename), Some(choices), Some(label)) => {
            let extra = raw
                .values
                .iter()
                .filter(|(k, _)| **k != cols.filename && **k != cols.choices && **k != cols.label)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let source = raw.image.as_ref().and_then(|i| i.sha256.clone()).map(Source::Embedded);
            Some(Parsed { filename, choices, label, extra, source })
        }
        _ => None,
    };
    (parsed, probs)
}

/// Re-hashes each image file: `missing_image` when it is gone, `changed_image` when its content differs from the
/// import (`unreadable_image` when it cannot be read). Run before training to catch edited datasets.
pub fn verify_images(images: &[ImageRecord]) -> Vec<Problem> {
    let results = par_map(
        images,
        |img| match sha256_file(&img.path) {
            Ok((sha, _)) if sha == img.sha256 => None,
            Ok((sha, len)) => Some(Problem::new(
                None,
                Some(img.filename.clone()),
                kind::CHANGED_IMAGE,
                format!(
                    "{} changed on disk since import (sha256 {} → {}, {} → {} bytes)",
                    img.path.display(),
                    &img.sha256[..img.sha256.len().min(12)],
                    &sha[..12],
                    img.bytes,
                    len
                ),
            )),
            Err(Error::MissingFile { .. }) => Some(Problem::new(
                None,
                Some(img.filename.clone()),
                kind::MISSING_IMAGE,
                format!("{} is gone (deleted or moved since import)", img.path.display()),
            )),
            Err(e) => Some(Problem::new(None, Some(img.filename.clone()), kind::UNREADABLE_IMAGE, e.to_string())),
        },
        |_| true,
    );
    results.unwrap_or_default().into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_and_numpy_list_reprs() {
        assert_eq!(parse_python_str_list("['a', \"b's\"]"), Some(vec!["a".to_string(), "b's".to_string()]));
        assert_eq!(parse_python_str_list("['a' 'b'\n 'c']"), Some(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(parse_python_str_list("[]"), Some(vec![]));
        assert_eq!(parse_python_str_list("['x\\n\\u00e9\\\\',]"), Some(vec!["x\né\\".to_string()]));
        for bad in ["", "[", "['a'", "['a'] x", "[1, 2]", "a, b", "[,'a']"] {
            assert_eq!(parse_python_str_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn labels_resolve_to_indices() {
        let choices: Vec<String> = ["red", "blue", "C"].iter().map(|s| s.to_string()).collect();
        let label = |v: Value| parse_label(Some(&v), &choices, "label").map_err(|(k, _)| k);
        assert_eq!(label(json_str("b")), Ok(1));
        assert_eq!(label(json_str("2")), Ok(2));
        assert_eq!(label(Value::from(0)), Ok(0));
        assert_eq!(label(Value::from(2.0)), Ok(2));
        assert_eq!(label(json_str("blue")), Ok(1));
        assert_eq!(label(json_str("D")), Err(kind::LABEL_NOT_IN_CHOICES));
        assert_eq!(label(Value::from(-1)), Err(kind::LABEL_NOT_IN_CHOICES));
        assert_eq!(label(Value::from(3)), Err(kind::LABEL_NOT_IN_CHOICES));
        assert_eq!(label(json_str(" ")), Err(kind::LABEL_NOT_IN_CHOICES));
        assert_eq!(label(Value::Null), Err(kind::LABEL_NOT_IN_CHOICES));
        assert_eq!(label(Value::from(1.5)), Err(kind::BAD_VALUE));
        assert_eq!(label(Value::Bool(true)), Err(kind::BAD_VALUE));
    }

    fn json_str(s: &str) -> Value {
        Value::String(s.to_string())
    }

    #[test]
    fn csv_cells_keep_text_that_only_looks_numeric() {
        assert_eq!(csv_cell("12"), Value::from(12));
        assert_eq!(csv_cell("-1.5"), Value::from(-1.5));
        assert_eq!(csv_cell("true"), Value::Bool(true));
        assert_eq!(csv_cell(""), Value::Null);
        for text in ["007", "1e", "12abc", "True", "NaN", "a1b2"] {
            assert_eq!(csv_cell(text), Value::String(text.to_string()), "{text}");
        }
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(2341), "2,341");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
