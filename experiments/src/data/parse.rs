//! Checking one row's values: the join key (file name), the caption choices and the label, turned into a
//! [`Parsed`] row or into problems (`bad_value`, `too_few_choices`, `empty_caption`, `label_not_in_choices`).

use serde_json::Value;

use super::common::{short, type_name};
use super::images::Source;
use super::read::{Blobs, RawImage, RawRow};
use super::types::ColumnMap;
use crate::validation::{ProblemKind, Problem};
use crate::vocab::{letter, letter_to_index};

/// A problem kind and its reason.
type RowProblem = (ProblemKind, String);

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
        None | Some(Value::Null) => return Err((ProblemKind::BadValue, format!("no caption choices (`{col}` is empty)"))),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => parse_list_text(s).ok_or_else(|| {
            (
                ProblemKind::BadValue,
                format!("`{col}` is not a list: {} (expected a JSON list such as [\"first\", \"second\"])", short(s)),
            )
        })?,
        Some(other) => {
            return Err((ProblemKind::BadValue, format!("`{col}` is {}, expected a list of captions", type_name(other))))
        }
    };
    let mut choices = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::String(s) => choices.push(s),
            other => {
                return Err((
                    ProblemKind::BadValue,
                    format!("choice {} of `{col}` is {}, expected text", letter(i), type_name(&other)),
                ))
            }
        }
    }
    if choices.len() < 2 {
        return Err((
            ProblemKind::TooFewChoices,
            format!("{} caption choice(s); a multiple-choice row needs at least 2", choices.len()),
        ));
    }
    if let Some(i) = choices.iter().position(|c| c.trim().is_empty()) {
        return Err((ProblemKind::EmptyCaption, format!("caption choice {} is empty", letter(i))));
    }
    Ok(choices)
}

/// The label as an index into `choices`: a letter, a 0-based index (text or number), or the text of one caption.
fn parse_label(v: Option<&Value>, choices: &[String], col: &str) -> std::result::Result<usize, RowProblem> {
    let n = choices.len();
    let last = n.saturating_sub(1);
    let range = format!("{}–{} or 0–{last}", letter(0), letter(last));
    let out_of_range =
        |shown: String| (ProblemKind::LabelNotInChoices, format!("label {shown} is not among the {n} choices ({range})"));
    match v {
        None | Some(Value::Null) => Err((ProblemKind::LabelNotInChoices, format!("no label (`{col}` is empty)"))),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                return Err((ProblemKind::LabelNotInChoices, format!("no label (`{col}` is empty)")));
            }
            match letter_to_index(t) {
                Some(i) if i < n => Ok(i),
                parsed => match choices.iter().position(|c| c.trim() == t) {
                    Some(i) => Ok(i),
                    None if parsed.is_some() || t.starts_with('-') => Err(out_of_range(short(t))),
                    None => Err((
                        ProblemKind::LabelNotInChoices,
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
                _ => Err((ProblemKind::BadValue, format!("label {num} is not a whole number"))),
            }
        }
        Some(other) => Err((
            ProblemKind::BadValue,
            format!("label is {}, expected a letter (A–E) or a 0-based index", type_name(other)),
        )),
    }
}

/// A row after its values were checked.
pub(super) struct Parsed {
    pub(super) filename: String,
    pub(super) choices: Vec<String>,
    pub(super) label: usize,
    pub(super) extra: serde_json::Map<String, Value>,
    /// Where its image comes from: set here for embedded images, by the import for files found in the folder.
    pub(super) source: Option<Source>,
}

/// The file-name component of a path written in metadata (`images/x.png`, `C:\data\x.png` → `x.png`).
fn file_name_of(s: &str) -> &str {
    s.rsplit(['/', '\\']).next().unwrap_or(s)
}

/// Checks one row's values; `None` when the file name, choices or label are unusable. The row's other columns
/// move into [`Parsed::extra`] (in their order).
pub(super) fn parse_row(raw: RawRow, cols: &ColumnMap, blobs: &Blobs) -> (Option<Parsed>, Vec<Problem>) {
    let mut probs = Vec::new();
    if let Some((k, reason)) = &raw.problem {
        probs.push(Problem::new(Some(raw.row), None, *k, reason.clone()));
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
                    ProblemKind::BadValue,
                    format!("no image file name (`{}` is empty)", cols.filename),
                ));
            }
            f
        }
        Some(other) => {
            probs.push(Problem::new(
                Some(raw.row),
                None,
                ProblemKind::BadValue,
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
            let source = raw.image.and_then(|i| i.sha256).map(Source::Embedded);
            let extra = raw
                .values
                .into_iter()
                .filter(|(k, _)| *k != cols.filename && *k != cols.choices && *k != cols.label)
                .collect();
            Some(Parsed { filename, choices, label, extra, source })
        }
        _ => None,
    };
    (parsed, probs)
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
        assert_eq!(label(json_str("D")), Err(ProblemKind::LabelNotInChoices));
        assert_eq!(label(Value::from(-1)), Err(ProblemKind::LabelNotInChoices));
        assert_eq!(label(Value::from(3)), Err(ProblemKind::LabelNotInChoices));
        assert_eq!(label(json_str(" ")), Err(ProblemKind::LabelNotInChoices));
        assert_eq!(label(Value::Null), Err(ProblemKind::LabelNotInChoices));
        assert_eq!(label(Value::from(1.5)), Err(ProblemKind::BadValue));
        assert_eq!(label(Value::Bool(true)), Err(ProblemKind::BadValue));
    }

    fn json_str(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
