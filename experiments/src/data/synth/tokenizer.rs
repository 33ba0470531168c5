//! A tiny word-level Hugging Face tokenizer over the words the generated captions use.

use std::collections::BTreeSet;
use std::path::Path;

use super::scene::{Background, Color, Shape};
use super::{BOS_TOKEN, EOS_TOKEN, UNK_TOKEN};
use crate::{Error, Result};

// ---------------------------------------------------------------------------------------------------------------
// Tiny tokenizer
// ---------------------------------------------------------------------------------------------------------------

/// Every word a generated caption can use, sorted and without duplicates.
pub fn vocabulary() -> Vec<String> {
    let mut words: BTreeSet<&'static str> = BTreeSet::new();
    let fixed = [
        // counts and articles
        "a",
        "an",
        "two",
        "three",
        "is",
        "are", // templates
        "on",
        "background",
        "drawing",
        "of",
        "there",
        "here",
        "picture",
        "against",
        "with",
        "simple",
        "image",
        "showing",
        "drawn", // positions
        "in",
        "the",
        "middle",
        "left",
        "right",
        "at",
        "top",
        "bottom",
    ];
    words.extend(fixed);
    for s in Shape::ALL {
        words.extend(s.noun().split_whitespace());
        words.extend(s.plural().split_whitespace());
    }
    words.extend(Color::ALL.iter().map(|c| c.word()));
    words.extend(Background::ALL.iter().map(|b| b.word()));
    words.into_iter().map(str::to_owned).collect()
}

/// A Hugging Face `tokenizer.json` for the generated captions, loadable with `tokenizers::Tokenizer::from_bytes`.
///
/// Lower-cases, splits on whitespace and punctuation, and maps each word through a word-level vocabulary:
/// `[UNK]` = 0, the words of [`vocabulary`] = 1..=n, then [`BOS_TOKEN`] = n+1 and [`EOS_TOKEN`] = n+2 (the largest
/// id, as in CLIP). Its post-processor wraps every sequence as `<|startoftext|> … <|endoftext|>`. The vocabulary
/// size is `vocabulary().len() + 3`.
pub fn tiny_tokenizer_json() -> serde_json::Value {
    use serde_json::{json, Map, Value};

    let words = vocabulary();
    let bos_id = words.len() + 1;
    let eos_id = words.len() + 2;
    let mut vocab = Map::new();
    vocab.insert(UNK_TOKEN.to_owned(), json!(0));
    for (i, w) in words.iter().enumerate() {
        vocab.insert(w.clone(), json!(i + 1));
    }
    vocab.insert(BOS_TOKEN.to_owned(), json!(bos_id));
    vocab.insert(EOS_TOKEN.to_owned(), json!(eos_id));

    let added = |id: usize, content: &str| {
        json!({
            "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true
        })
    };
    let special = |name: &str| json!({ "SpecialToken": { "id": name, "type_id": 0 } });
    let seq = |id: &str| json!({ "Sequence": { "id": id, "type_id": 0 } });
    let special_entry =
        |name: &str, id: usize| json!({ "id": name, "ids": [id], "tokens": [name] });

    json!({
        "version": "1.0",
        "truncation": Value::Null,
        "padding": Value::Null,
        "added_tokens": [added(0, UNK_TOKEN), added(bos_id, BOS_TOKEN), added(eos_id, EOS_TOKEN)],
        "normalizer": { "type": "Lowercase" },
        "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special(BOS_TOKEN), seq("A"), special(EOS_TOKEN)],
            "pair": [special(BOS_TOKEN), seq("A"), special(EOS_TOKEN), seq("B"), special(EOS_TOKEN)],
            "special_tokens": {
                BOS_TOKEN: special_entry(BOS_TOKEN, bos_id),
                EOS_TOKEN: special_entry(EOS_TOKEN, eos_id),
            }
        },
        "decoder": Value::Null,
        "model": { "type": "WordLevel", "vocab": Value::Object(vocab), "unk_token": UNK_TOKEN }
    })
}

/// Writes [`tiny_tokenizer_json`] to `path` (pretty-printed).
pub fn write_tiny_tokenizer(path: &Path) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(&tiny_tokenizer_json())?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}
