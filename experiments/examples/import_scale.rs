//! Times the dataset import at scale and measures its peak memory: generates a caption-contest dataset (by default
//! 3,000 224×224 images with 3 rows each, 9,000 rows), imports it in a fresh child process, re-verifies its images,
//! and prints how long each took and the import's peak resident memory next to the metadata file's size and the
//! goal (under 3× the metadata file plus a fixed bound). Fails when the import does not keep every row and image or
//! the verification finds a problem; the memory goal is reported, not enforced.
//!
//! ```text
//! cargo run --release -p experiments --example import_scale [-- IMAGES [ROWS_PER_IMAGE [SIZE [jsonl|csv]]]]
//! ```
//!
//! The 400k-row JSON-lines case of issue 10: `-- 4000 100 16` (about 100 MB of metadata).
//! The import runs in a child process so that the generator's memory does not count in the peak (Linux only:
//! the peak is `VmHWM` of `/proc/self/status`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use experiments::data::synth::{caption_contest, write_dataset};
use experiments::data::{import, verify_images, ColumnMap, ImportOptions, OnError};
use experiments::events::{CancelToken, NullObserver};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The child's environment variable: `<metadata path>|<expected rows>|<expected images>`.
const CHILD: &str = "IMPORT_SCALE_CHILD";

fn arg(i: usize, default: usize) -> Res<usize> {
    Ok(std::env::args().nth(i).map(|s| s.parse()).transpose()?.unwrap_or(default))
}

/// Peak resident memory of this process so far, in bytes (`VmHWM`), when the OS tells it.
fn peak_rss() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// Resident memory now, in bytes (`VmRSS`).
fn rss() -> Option<u64> {
    status_bytes("VmRSS:")
}

fn status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mb(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

fn main() -> Res<()> {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    let (images, rows_per_image, size) = (arg(1, 3000)?, arg(2, 3)?, arg(3, 224)?);
    let format = std::env::args().nth(4).unwrap_or_else(|| "jsonl".into());
    let dir = tempfile::tempdir()?;
    let start = Instant::now();
    let samples = caption_contest(images, 5, rows_per_image, u32::try_from(size)?, 11);
    let mut metadata = write_dataset(dir.path(), &samples)?;
    let rows = samples.len();
    drop(samples);
    if format == "csv" {
        metadata = jsonl_to_csv(&metadata)?;
    }
    let meta_bytes = std::fs::metadata(&metadata)?.len();
    println!("generated {rows} rows / {images} images in {:?}; {format} metadata {}", start.elapsed(), mb(meta_bytes));

    let status = Command::new(std::env::current_exe()?)
        .env(CHILD, format!("{}|{rows}|{images}", metadata.display()))
        .status()?;
    if !status.success() {
        return Err(format!("the import failed ({status})").into());
    }
    Ok(())
}

/// The child: imports, checks the counts, prints the peak memory, verifies the images.
fn child(spec: &str) -> Res<()> {
    let mut parts = spec.split('|');
    let (Some(metadata), Some(rows), Some(images)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("bad {CHILD}: {spec}").into());
    };
    let (metadata, rows, images): (PathBuf, usize, usize) = (metadata.into(), rows.parse()?, images.parse()?);
    let meta_bytes = std::fs::metadata(&metadata)?.len();
    let before = peak_rss();
    let opts = ImportOptions {
        name: "scale".into(),
        metadata: metadata.clone(),
        images_dir: None,
        columns: ColumnMap::default(),
        on_error: OnError::Reject,
        extract_dir: None,
    };
    let start = Instant::now();
    let ds = import(&opts, &mut NullObserver, CancelToken::new())?;
    println!("imported {} rows / {} images in {:?}", ds.rows.len(), ds.images.len(), start.elapsed());
    match (before, peak_rss(), rss()) {
        (Some(before), Some(peak), Some(now)) => println!(
            "peak memory: {} = {:.2}x the metadata ({}; at start {}, held after the import {}); goal: 3x = {} plus \
             a fixed bound",
            mb(peak),
            peak as f64 / meta_bytes as f64,
            mb(meta_bytes),
            mb(before),
            mb(now),
            mb(3 * meta_bytes)
        ),
        _ => println!("peak memory: unknown on this OS"),
    }
    if (ds.rows.len(), ds.images.len()) != (rows, images) {
        return Err(format!("expected {rows} rows and {images} images").into());
    }
    let start = Instant::now();
    let problems = verify_images(&ds.images);
    println!("verified in {:?}", start.elapsed());
    if let Some(first) = problems.first() {
        return Err(format!("{} image problem(s) after import; first: {first}", problems.len()).into());
    }
    Ok(())
}

/// Rewrites `metadata.jsonl` as `metadata.csv` (the choices as JSON text), streaming.
fn jsonl_to_csv(jsonl: &Path) -> Res<PathBuf> {
    use std::io::BufRead;
    let out = jsonl.with_extension("csv");
    let mut w = csv::Writer::from_path(&out)?;
    let cols = ["filename", "caption_choices", "label", "instance_id", "image_description"];
    w.write_record(cols)?;
    for line in std::io::BufReader::new(std::fs::File::open(jsonl)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let cell = |c: &str| match &v[c] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        w.write_record(cols.map(cell))?;
    }
    w.flush()?;
    Ok(out)
}
