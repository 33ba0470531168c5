//! The hyperparameters that differ between runs: flattened JSON, compared by value, and as a text table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::RunData;

/// Flattens nested JSON objects into dotted keys (`{"train": {"lr": 1}}` → `train.lr`). Arrays and scalars are
/// leaves; a non-object at the top level is the single key `""`.
pub fn flatten_json(v: &Value) -> BTreeMap<String, Value> {
    fn go(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
                for (k, x) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    go(&key, x, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    go("", v, &mut out);
    out
}

/// Equal as hyperparameters: numbers compare by value (`1` equals `1.0`, `1e-4` equals `0.0001`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// One hyperparameter whose value differs between runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ParamDiff {
    /// Dotted key.
    pub key: String,
    /// Its value in each run, in order; `None` where the run lacks the key.
    pub values: Vec<Option<Value>>,
}

/// The keys (flattened, dotted) whose values are not the same in all of `specs`, sorted by key. A key missing
/// from some runs differs.
pub fn json_diff(specs: &[&Value]) -> Vec<ParamDiff> {
    let flat: Vec<BTreeMap<String, Value>> = specs.iter().map(|v| flatten_json(v)).collect();
    let mut keys: Vec<&String> = flat.iter().flat_map(|m| m.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let values: Vec<Option<Value>> = flat.iter().map(|m| m.get(key).cloned()).collect();
            let first = values.first()?;
            let all_same = values.iter().all(|v| match (first, v) {
                (Some(a), Some(b)) => same_value(a, b),
                (None, None) => true,
                _ => false,
            });
            (!all_same).then(|| ParamDiff { key: key.clone(), values })
        })
        .collect()
}

/// [`json_diff`] of the runs' hyperparameters.
pub fn hyperparameter_diff(runs: &[RunData]) -> Vec<ParamDiff> {
    json_diff(&runs.iter().map(|r| &r.hyperparameters).collect::<Vec<_>>())
}

/// A JSON value as a short cell: strings without quotes, `—` for a missing key.
pub fn format_value(v: Option<&Value>) -> String {
    match v {
        None => "—".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) => "null".to_string(),
        Some(other) => other.to_string(),
    }
}

/// The differing hyperparameters as a fixed-width text table: one row per key, one column per run.
pub fn hyperparameter_diff_table(runs: &[RunData]) -> String {
    let diff = hyperparameter_diff(runs);
    if runs.len() < 2 {
        return "(need two or more runs to compare)\n".to_string();
    }
    if diff.is_empty() {
        return "(all hyperparameters are the same)\n".to_string();
    }
    let mut cols: Vec<Vec<String>> = Vec::with_capacity(runs.len() + 1);
    let mut key_col = vec!["key".to_string()];
    key_col.extend(diff.iter().map(|d| d.key.clone()));
    cols.push(key_col);
    for (i, r) in runs.iter().enumerate() {
        let mut col = vec![format!("run {}", r.id)];
        col.extend(diff.iter().map(|d| format_value(d.values.get(i).and_then(|v| v.as_ref()))));
        cols.push(col);
    }
    let widths: Vec<usize> =
        cols.iter().map(|c| c.iter().map(|s| s.chars().count()).max().unwrap_or(0).min(40)).collect();
    let mut out = String::new();
    for row in 0..=diff.len() {
        let line: Vec<String> =
            cols.iter().zip(&widths).map(|(c, &w)| pad(c.get(row).map_or("", |s| s.as_str()), w)).collect();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// `s` cut to `width` characters (ending in `…` when cut) and padded with spaces to `width`.
pub(crate) fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n > width {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        format!("{s}{}", " ".repeat(width - n))
    }
}
