//! Breaking a row of a generated JSONL metadata file on purpose, for the app crate's and the end-to-end tests.

use std::path::Path;

/// Sets the `label` of row `row` (1-based, as the import's messages count) of the JSONL file `metadata`.
pub fn set_label(metadata: &Path, row: usize, label: &str) {
    let text = std::fs::read_to_string(metadata).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut value: serde_json::Value = serde_json::from_str(&lines[row - 1]).expect("row");
    value["label"] = serde_json::json!(label);
    lines[row - 1] = value.to_string();
    std::fs::write(metadata, lines.join("\n") + "\n").expect("write");
}
