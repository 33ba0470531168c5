//! Reading a metadata file (parquet, CSV / TSV, JSON lines or a JSON array) into a [`RawTable`]: one JSON object
//! per row with every column but the image column, plus that column's file path and/or embedded bytes
//! (deduplicated by content hash). Nothing is checked here beyond the file's own syntax and the required columns.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::common::{display_name, io_or_missing, rejected, type_name};
use super::images::sha256_hex;
use super::types::ColumnMap;
use crate::error::{Error, Result};
use crate::validation::{kind, Problem, ValidationReport};

/// The format of a metadata file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Parquet,
    Csv(u8),
    Jsonl,
    /// `.json`: an array of objects, or JSON lines.
    Json,
}

impl Format {
    pub(super) fn of(path: &Path) -> Result<Self> {
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

    pub(super) fn name(self) -> &'static str {
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
pub(super) struct RawImage {
    /// Content hash of the embedded bytes (the bytes are in [`RawTable::blobs`]).
    pub(super) sha256: Option<String>,
    /// The path written in the data (`image.path`, or the column itself when it is text).
    pub(super) path: Option<String>,
}

/// One row as read.
#[derive(Debug)]
pub(super) struct RawRow {
    /// 1-based data row.
    pub(super) row: usize,
    /// Every column but the image column.
    pub(super) values: serde_json::Map<String, Value>,
    pub(super) image: Option<RawImage>,
    /// A problem found while reading the row (e.g. an image column of the wrong type).
    pub(super) problem: Option<(&'static str, String)>,
}

/// A metadata file as read.
#[derive(Debug, Default)]
pub(super) struct RawTable {
    /// Column names in file order.
    pub(super) columns: Vec<String>,
    pub(super) rows: Vec<RawRow>,
    /// Embedded image bytes by SHA-256.
    pub(super) blobs: HashMap<String, Vec<u8>>,
}

impl RawTable {
    /// Error naming the first required column that is missing, with the columns found.
    pub(super) fn check_columns(&self, path: &Path, cols: &ColumnMap) -> Result<()> {
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

/// Reads `path` in `format`; `cols` names the image column to set apart.
pub(super) fn read_metadata(path: &Path, format: Format, cols: &ColumnMap) -> Result<RawTable> {
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
            Err(_) => Value::String(hex::encode(b.data())),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
