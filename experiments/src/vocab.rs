//! The words every layer shares: which side of the split a sample is on, before or after fine-tuning, and the
//! answer letter of a choice. Defined once here (the bottom layer, beside [`crate::error`] and [`crate::events`]);
//! the store, the analysis, the CLI and (through the generated bindings) the web page all use these.

use serde::{Deserialize, Serialize};

/// Which side of the train/held-out split a sample is on.
///
/// Written `train` / `heldout` (store, CSV, JSON); parsed from those and `held-out`, `held_out`, `test`, `val`
/// in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum Split {
    #[default]
    Train,
    #[serde(alias = "held-out", alias = "held_out", alias = "test", alias = "val")]
    #[strum(to_string = "heldout", serialize = "held-out", serialize = "held_out", serialize = "test", serialize = "val")]
    Heldout,
}

impl Split {
    /// Both splits, train first.
    pub const ALL: [Split; 2] = [Split::Train, Split::Heldout];

    /// `"train"` / `"heldout"` (as in the store and the CSV).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// `"train"` / `"held-out"`, for people.
    pub fn title(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Heldout => "held-out",
        }
    }

    /// Parses any accepted spelling (surrounding white space ignored); `None` for anything else.
    pub fn parse(s: &str) -> Option<Split> {
        s.trim().parse().ok()
    }
}

/// Before or after fine-tuning: when a sample's scores were taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum Stage {
    Before,
    After,
}

impl Stage {
    /// Both stages, before first.
    pub const ALL: [Stage; 2] = [Stage::Before, Stage::After];

    /// `"before"` / `"after"`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The answer letter of choice `i`: 0 → `"A"`, 25 → `"Z"`, 26 → `"AA"`, 27 → `"AB"`, ... (bijective base 26, as
/// spreadsheet columns; the inverse of [`letter_to_index`]). The web page gets the same letters from this function
/// (every card the app sends carries them).
pub fn letter(i: usize) -> String {
    let mut n = i + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        // rem < 26, so the cast cannot truncate.
        letters.push(char::from(b'A' + rem as u8));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

/// The index of a choice from its label: a letter (`"A"` → 0, `"b"` → 1, ... `"Z"` → 25, then `"AA"` → 26 as in
/// spreadsheet columns, at most three letters), or a 0-based decimal index (`"0"` → 0, `"3"` → 3). Surrounding
/// whitespace is ignored; anything else (empty, `"-1"`, `"A1"`, `"1.5"`) gives `None`.
///
/// Numbers are 0-based indices, never 1-based positions: a dataset labelled 1..N must be converted first.
pub fn letter_to_index(s: &str) -> Option<usize> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<usize>().ok();
    }
    if t.len() <= 3 && t.bytes().all(|b| b.is_ascii_alphabetic()) {
        // Bijective base 26: A..Z, AA..ZZ, AAA..ZZZ.
        let mut n: usize = 0;
        for b in t.bytes() {
            n = n * 26 + usize::from(b.to_ascii_uppercase() - b'A') + 1;
        }
        return Some(n - 1);
    }
    None
}

/// The one check that `label` names one of `n_choices` choices: "label 5 is not among the 5 choices", after
/// `place` (the row or record at fault) when it is not empty. The import names the letter too (see `data::parse`).
pub fn check_label(label: usize, n_choices: usize, place: &str) -> crate::Result<()> {
    if label < n_choices {
        return Ok(());
    }
    let what = format!("label {label} is not among the {n_choices} choices");
    Err(crate::Error::Invalid(if place.is_empty() { what } else { format!("{place}: {what}") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip_past_z() {
        assert_eq!(letter(0), "A");
        assert_eq!(letter(25), "Z");
        assert_eq!(letter(26), "AA");
        assert_eq!(letter(27), "AB");
        assert_eq!(letter(701), "ZZ");
        assert_eq!(letter(702), "AAA");
        for i in 0..18_278 {
            assert_eq!(letter_to_index(&letter(i)), Some(i), "letter {i}");
        }
    }

    #[test]
    fn split_and_stage_spellings() {
        assert_eq!(Split::Heldout.to_string(), "heldout");
        assert_eq!(Split::Train.as_str(), "train");
        for s in ["heldout", "Held-Out", "held_out", "TEST", "val", " heldout "] {
            assert_eq!(Split::parse(s), Some(Split::Heldout), "{s}");
        }
        assert_eq!(Split::parse("training"), None);
        assert_eq!("After".parse::<Stage>().ok(), Some(Stage::After));
        assert_eq!(Stage::Before.to_string(), "before");
        assert_eq!(serde_json::to_string(&Split::Heldout).ok().as_deref(), Some("\"heldout\""));
        assert_eq!(serde_json::from_str::<Split>("\"val\"").ok(), Some(Split::Heldout));
    }
}
