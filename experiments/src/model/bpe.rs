//! A CLIP tokenizer from the two files older hub repositories ship instead of `tokenizer.json`: `vocab.json`
//! (token → id) and `merges.txt` (the BPE merges, one pair a line after a `#version` header).
//!
//! The `tokenizers` crate has every piece but no CLIP preset, so this writes the `tokenizer.json` that
//! `transformers`' `CLIPConverter` (`convert_slow_tokenizer.py`) makes from the same two files: NFC, whitespace runs
//! to one space, lower case; the CLIP split pattern, then byte-level; BPE with `</w>` ending each word and
//! `<|endoftext|>` as the unknown token; `<|startoftext|>` … `<|endoftext|>` around every caption. The result
//! loads with `Tokenizer::from_bytes`, and is what an export writes as the checkpoint's `tokenizer.json`.

use std::path::Path;

use serde_json::{json, Map, Value};
use tokenizers::Tokenizer;

use crate::{Error, Result};

const SOT: &str = "<|startoftext|>";
const EOT: &str = "<|endoftext|>";

/// The pre-tokenizer's split pattern of CLIP (`CLIPTokenizer.pat` in `transformers`, as `CLIPConverter` writes it).
const CLIP_PATTERN: &str = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// `tokenizer.json` (as bytes) for the CLIP tokenizer of a `vocab.json` and a `merges.txt`, checked to load.
pub fn tokenizer_json_from_vocab_merges(vocab_path: &Path, merges_path: &Path) -> Result<Vec<u8>> {
    let vocab: Map<String, Value> = serde_json::from_slice(&crate::error::read_file(vocab_path)?)
        .map_err(|e| Error::bad_file(vocab_path, format!("not a JSON object of token ids: {e}")))?;
    let merges_text = String::from_utf8(crate::error::read_file(merges_path)?)
        .map_err(|_| Error::bad_file(merges_path, "not UTF-8 text"))?;
    let merges = parse_merges(&merges_text).map_err(|m| Error::bad_file(merges_path, m))?;
    let id = |token: &str| {
        vocab
            .get(token)
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::bad_file(vocab_path, format!("no `{token}` token: not a CLIP vocabulary")))
    };
    let (sot, eot) = (id(SOT)?, id(EOT)?);
    let json = clip_tokenizer_json(Value::Object(vocab), merges, sot, eot);
    let bytes = serde_json::to_vec(&json)?;
    // Load it once here, so a vocabulary the crate refuses is reported against the files it came from.
    Tokenizer::from_bytes(&bytes)
        .map_err(|e| Error::bad_file(vocab_path, format!("with {} it makes no tokenizer: {e}", merges_path.display())))?;
    Ok(bytes)
}

/// The merge pairs of `merges.txt`: every non-empty line but the `#version` header, as `"a b"`.
fn parse_merges(text: &str) -> std::result::Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || (i == 0 && line.starts_with("#version")) {
            continue;
        }
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => out.push(Value::String(format!("{a} {b}"))),
            _ => return Err(format!("line {}: not a merge (two tokens separated by one space)", i + 1)),
        }
    }
    Ok(out)
}

/// The `tokenizer.json` value (see the module docs).
fn clip_tokenizer_json(vocab: Value, merges: Vec<Value>, sot: u64, eot: u64) -> Value {
    let added = |id: u64, content: &str| {
        json!({ "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": true, "special": true })
    };
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(sot, SOT), added(eot, EOT)],
        "normalizer": { "type": "Sequence", "normalizers": [
            { "type": "NFC" },
            { "type": "Replace", "pattern": { "Regex": r"\s+" }, "content": " " },
            { "type": "Lowercase" }
        ]},
        "pre_tokenizer": { "type": "Sequence", "pretokenizers": [
            { "type": "Split", "pattern": { "Regex": CLIP_PATTERN }, "behavior": "Removed", "invert": true },
            { "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false }
        ]},
        "post_processor": { "type": "RobertaProcessing", "sep": [EOT, eot], "cls": [SOT, sot],
                            "trim_offsets": false, "add_prefix_space": false },
        "decoder": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true },
        "model": { "type": "BPE", "dropout": null, "unk_token": EOT, "continuing_subword_prefix": "",
                   "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false,
                   "vocab": vocab, "merges": merges }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A five-word vocabulary, encoded by hand as CLIP's BPE does: "A  cat!" → lower case, one space, split into
    /// `a`, `cat`, `!`; each word ends in `</w>`; `c a` then `ca t</w>` merge `cat`; start and end tokens around.
    #[test]
    fn encodes_as_clip_bpe_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vocab = json!({ "a": 0, "c": 1, "t": 2, "a</w>": 3, "t</w>": 4, "ca": 5, "cat</w>": 6, "!</w>": 7,
                            "<|startoftext|>": 8, "<|endoftext|>": 9 });
        let (v, m) = (dir.path().join("vocab.json"), dir.path().join("merges.txt"));
        std::fs::write(&v, vocab.to_string()).expect("write vocab");
        std::fs::write(&m, "#version: 0.2\nc a\nca t</w>\n").expect("write merges");
        let bytes = tokenizer_json_from_vocab_merges(&v, &m).expect("tokenizer");
        let tok = Tokenizer::from_bytes(&bytes).expect("load");
        let ids = tok.encode("A  cat!", true).expect("encode").get_ids().to_vec();
        assert_eq!(ids, vec![8, 3, 6, 7, 9]);
    }

    #[test]
    fn a_vocabulary_without_clip_tokens_or_a_bad_merge_line_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (v, m) = (dir.path().join("vocab.json"), dir.path().join("merges.txt"));
        std::fs::write(&v, r#"{"a": 0}"#).expect("write vocab");
        std::fs::write(&m, "#version: 0.2\n").expect("write merges");
        let e = tokenizer_json_from_vocab_merges(&v, &m).expect_err("no CLIP tokens").to_string();
        assert!(e.contains("no `<|startoftext|>` token"), "{e}");
        std::fs::write(&v, r#"{"<|startoftext|>": 0, "<|endoftext|>": 1}"#).expect("write vocab");
        std::fs::write(&m, "#version: 0.2\nabc\n").expect("write merges");
        let e = tokenizer_json_from_vocab_merges(&v, &m).expect_err("bad merge").to_string();
        assert!(e.contains("merges.txt: line 2"), "{e}");
    }
}
