//! Reading a metadata file (parquet, CSV / TSV, JSON lines or a JSON array) as a stream of [`RawRow`]s: one JSON
//! object per row with every column but the image column, plus that column's file path and/or embedded bytes
//! (deduplicated by content hash, kept in the [`RawTable`]). Rows go to the caller one by one as they are read, so
//! the file is never held whole in memory. Nothing is checked here beyond the file's own syntax and the required
//! columns.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use super::common::{display_name, io_or_missing, rejected, type_name};
use super::images::sha256_hex;
use super::types::ColumnMap;
use crate::error::{Error, Result};
use crate::validation::{ProblemKind, Problem, ValidationReport};

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
    pub(super) problem: Option<(ProblemKind, String)>,
}

/// Embedded image bytes by SHA-256.
pub(super) type Blobs = HashMap<String, Vec<u8>>;

/// What reading a metadata file gives besides its rows (which go one by one to the caller, see
/// [`read_metadata`]).
#[derive(Debug, Default)]
pub(super) struct RawTable {
    /// Column names in file order (JSON: in order of first appearance).
    pub(super) columns: Vec<String>,
    /// Number of data rows read.
    pub(super) rows: usize,
    /// Embedded image bytes by SHA-256.
    pub(super) blobs: Blobs,
}

/// Receives each row as it is read, with the embedded images read so far (this row's included); an error stops
/// the reading and is returned as is (a cancellation, say).
pub(super) type OnRow<'a> = dyn FnMut(RawRow, &Blobs) -> Result<()> + 'a;

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
                    ProblemKind::MissingColumn,
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

    /// Hands a row of JSON values (CSV, JSON) to `on_row`, moving the image column out.
    fn push_json_row(
        &mut self,
        mut values: serde_json::Map<String, Value>,
        cols: &ColumnMap,
        on_row: &mut OnRow<'_>,
    ) -> Result<()> {
        self.rows += 1;
        let mut problem = None;
        let image = match values.remove(&cols.image) {
            None => None,
            Some(v) => match Self::image_from_json(v) {
                Ok(img) => img,
                Err(reason) => {
                    problem = Some((ProblemKind::BadValue, reason));
                    None
                }
            },
        };
        on_row(RawRow { row: self.rows, values, image, problem }, &self.blobs)
    }
}

/// Reads `path` in `format` as a stream, handing each row to `on_row` as soon as it is read (JSON lines and CSV
/// line by line, a JSON array element by element, parquet row group by row group), so that the whole file is
/// never held in memory; `cols` names the image column to set apart.
pub(super) fn read_metadata(path: &Path, format: Format, cols: &ColumnMap, on_row: &mut OnRow<'_>) -> Result<RawTable> {
    match format {
        Format::Parquet => read_parquet(path, cols, on_row),
        Format::Csv(delimiter) => read_csv(path, delimiter, cols, on_row),
        Format::Jsonl => read_json_lines(path, open_text(path)?, cols, on_row),
        Format::Json => {
            let mut reader = open_text(path)?;
            let first = loop {
                let buf = reader.fill_buf().map_err(|e| Error::io(path, e))?;
                match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                    Some(i) => break Some(buf[i]),
                    None if buf.is_empty() => break None,
                    None => {
                        let n = buf.len();
                        reader.consume(n);
                    }
                }
            };
            if first == Some(b'[') {
                read_json_array(path, reader, cols, on_row)
            } else {
                read_json_lines(path, reader, cols, on_row)
            }
        }
    }
}

/// Opens a text file for buffered reading, past a UTF-8 byte-order mark.
fn open_text(path: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| io_or_missing(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    if reader.fill_buf().map_err(|e| Error::io(path, e))?.starts_with(b"\xef\xbb\xbf") {
        reader.consume(3);
    }
    Ok(reader)
}

fn add_columns(columns: &mut Vec<String>, seen: &mut HashSet<String>, obj: &serde_json::Map<String, Value>) {
    for k in obj.keys() {
        if !seen.contains(k) {
            seen.insert(k.clone());
            columns.push(k.clone());
        }
    }
}

fn read_json_lines(path: &Path, mut reader: impl BufRead, cols: &ColumnMap, on_row: &mut OnRow<'_>) -> Result<RawTable> {
    let mut table = RawTable::default();
    let mut seen = HashSet::new();
    let mut buf = Vec::new();
    for lineno in 1.. {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(|e| Error::io(path, e))? == 0 {
            break;
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|e| Error::bad_file(path, format!("line {lineno}: not UTF-8 text: {e}")))?
            .trim();
        if line.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| Error::bad_file(path, format!("line {lineno}: invalid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(Error::bad_file(
                path,
                format!("line {lineno}: expected one JSON object per line, found {}", type_name(&value)),
            ));
        };
        add_columns(&mut table.columns, &mut seen, &obj);
        table.push_json_row(obj, cols, on_row)?;
    }
    Ok(table)
}

/// A JSON array of objects, element by element (serde's sequence visitor): one element in memory at a time.
fn read_json_array(path: &Path, reader: impl std::io::Read, cols: &ColumnMap, on_row: &mut OnRow<'_>) -> Result<RawTable> {
    use serde::de::{Deserializer as _, Error as _, SeqAccess, Visitor};

    struct Elements<'a, 'b> {
        path: &'a Path,
        cols: &'a ColumnMap,
        on_row: &'a mut OnRow<'b>,
        table: RawTable,
        seen: HashSet<String>,
        /// The error that stopped the reading (not a JSON syntax error).
        stopped: Option<Error>,
    }
    impl<'de> Visitor<'de> for &mut Elements<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
            let mut i = 0;
            while let Some(item) = seq.next_element::<Value>()? {
                i += 1;
                let result = match item {
                    Value::Object(obj) => {
                        add_columns(&mut self.table.columns, &mut self.seen, &obj);
                        self.table.push_json_row(obj, self.cols, self.on_row)
                    }
                    other => Err(Error::bad_file(
                        self.path,
                        format!("item {i}: expected a JSON object, found {}", type_name(&other)),
                    )),
                };
                if let Err(e) = result {
                    self.stopped = Some(e);
                    return Err(A::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }

    let mut elements =
        Elements { path, cols, on_row, table: RawTable::default(), seen: HashSet::new(), stopped: None };
    let mut de = serde_json::Deserializer::from_reader(reader);
    let read = de.deserialize_seq(&mut elements).and_then(|()| de.end());
    if let Some(e) = elements.stopped.take() {
        return Err(e);
    }
    read.map_err(|e| Error::bad_file(path, format!("invalid JSON: {e}")))?;
    Ok(elements.table)
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

fn read_csv(path: &Path, delimiter: u8, cols: &ColumnMap, on_row: &mut OnRow<'_>) -> Result<RawTable> {
    let file = std::fs::File::open(path).map_err(|e| io_or_missing(path, e))?;
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(false).from_reader(file);
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
            let row = table.rows + 1;
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
        table.push_json_row(values, cols, on_row)?;
    }
    Ok(table)
}

fn read_parquet(path: &Path, cols: &ColumnMap, on_row: &mut OnRow<'_>) -> Result<RawTable> {
    // The parquet reader panics on some corrupt files; a broken file must give an error, not a crash.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_parquet_inner(path, cols, on_row))) {
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

/// Reads one row group at a time (a row group's column chunks are what the reader holds in memory).
fn read_parquet_inner(path: &Path, cols: &ColumnMap, on_row: &mut OnRow<'_>) -> Result<RawTable> {
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
    for group in 0..reader.num_row_groups() {
        let cannot = |e| Error::bad_file(path, format!("cannot read rows (row group {}): {e}", group + 1));
        let group_reader = reader.get_row_group(group).map_err(cannot)?;
        let rows = group_reader.get_row_iter(None).map_err(cannot)?;
        for row in rows {
            let rownum = table.rows + 1;
            let row = row.map_err(|e| Error::bad_file(path, format!("row {rownum}: {e}")))?;
            let mut values = serde_json::Map::new();
            let mut image = None;
            let mut problem = None;
            for (name, field) in row.into_columns() {
                if name == cols.image {
                    match parquet_image(field, &mut table.blobs) {
                        Ok(img) => image = img,
                        Err(reason) => problem = Some((ProblemKind::BadValue, reason)),
                    }
                } else {
                    values.insert(name, field_to_json(&field));
                }
            }
            table.rows = rownum;
            on_row(RawRow { row: rownum, values, image, problem }, &table.blobs)?;
        }
    }
    Ok(table)
}

/// The Hugging Face image column: a struct `{bytes: binary, path: string}` (either may be null), or a plain path
/// or plain bytes.
fn parquet_image(
    field: parquet::record::Field,
    blobs: &mut Blobs,
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
