//! Helpers shared by the store tests: a raw connection, row counts, a synthetic dataset and experiment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use experiments::data::{ColumnMap, DatasetRow, ImageRecord, ImportedDataset};
use experiments::model::engine::SampleScore;
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::{Store, DB_FILE};
use experiments::validation::{Problem, ValidationReport};

pub fn migration_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("migrations folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
}

/// A second, plain connection to the store's file (what another tool would see).
pub fn raw(home: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(home.join(DB_FILE)).expect("raw connection")
}

pub fn count(home: &Path, table: &str) -> i64 {
    raw(home).query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).expect("count")
}

pub fn tables(conn: &rusqlite::Connection) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .expect("prepare");
    let names = st.query_map([], |r| r.get(0)).expect("query");
    names.collect::<rusqlite::Result<Vec<String>>>().expect("names")
}

/// `n_images` images with `per_image` rows each; rows carry extra columns of several JSON types.
pub fn dataset(name: &str, n_images: usize, per_image: usize) -> ImportedDataset {
    let images: Vec<ImageRecord> = (0..n_images)
        .map(|i| ImageRecord {
            filename: format!("img{i:03}.png"),
            path: PathBuf::from(format!("/data/{name}/images/img{i:03}.png")),
            sha256: format!("{i:064x}"),
            width: 100 + i as u32,
            height: 50 + i as u32,
            bytes: 1_000_000_000_000 + i as u64,
        })
        .collect();
    let mut rows = Vec::new();
    for (i, im) in images.iter().enumerate() {
        for j in 0..per_image {
            let row = rows.len() + 2; // row 1 was skipped
            let mut extra = serde_json::Map::new();
            extra.insert("contest_number".into(), serde_json::json!(i * 10 + j));
            extra.insert("image_description".into(), serde_json::json!(format!("a drawing, \"quoted\" ünïcode {i}")));
            extra.insert("nested".into(), serde_json::json!({"a": [1, 2.5, null, true]}));
            rows.push(DatasetRow {
                row,
                filename: im.filename.clone(),
                choices: (0..5).map(|c| format!("caption {c} for row {row}")).collect(),
                label: (i + j) % 5,
                extra,
            });
        }
    }
    let total_rows = rows.len() + 1;
    ImportedDataset {
        name: name.into(),
        metadata_path: PathBuf::from(format!("/data/{name}/metadata.jsonl")),
        images_dir: Some(PathBuf::from(format!("/data/{name}/images"))),
        columns: ColumnMap { label: "answer".into(), ..ColumnMap::default() },
        report: ValidationReport {
            total_rows,
            valid_rows: rows.len(),
            problems: vec![Problem {
                row: Some(1),
                file: Some("metadata.jsonl".into()),
                kind: experiments::validation::ProblemKind::LabelNotInChoices,
                reason: "label F is not among the 5 choices".into(),
            }],
        },
        rows,
        images,
        content_hash: "ab".repeat(32),
        extracted: Vec::new(),
    }
}

pub fn spec(name: &str, dataset: &str) -> ExperimentSpec {
    let text = format!(
        "name = \"{name}\"\ndataset = \"{dataset}\"\nmodel = \"/models/clip\"\ndevice = \"cpu\"\nnotes = \"n\"\n\
         [sample]\ntrain = 4\nheldout = 2\nseed = 7\n\
         [train]\nepochs = 3\nbatch_size = 2\noptimizer = \"adamw\"\nlr = 1e-3\nweight_decay = 0.01\n"
    );
    ExperimentSpec::from_toml(&text, None).expect("spec")
}

/// A store with one dataset (3 images x 2 rows) and one experiment on it.
pub fn setup(home: &Path) -> (Store, i64, i64, Vec<i64>) {
    let mut store = Store::open(home).expect("open");
    let ds = store.insert_dataset(&dataset("shapes", 3, 2)).expect("insert");
    let exp = store.create_experiment(&spec("exp", "shapes"), ds).expect("experiment");
    let samples = store.dataset_samples(ds).expect("samples").iter().map(|s| s.id).collect();
    (store, ds, exp, samples)
}

pub fn score(i: usize) -> SampleScore {
    let logits: Vec<f32> = (0..5).map(|c| (c as f32 - 2.0) * 1.37 + i as f32 * 0.011).collect();
    let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
    let z: f32 = e.iter().sum();
    let probs: Vec<f32> = e.iter().map(|x| x / z).collect();
    let label = i % 5;
    SampleScore { label_prob: probs[label], correct: label == 4, probs, logits, label }
}
