//! The import pipeline: reads, joins and validates a dataset, one small function per step.
//!
//! How an import goes:
//!
//! 1. The name is checked (not empty), before anything is read.
//! 2. The metadata file is read as a stream ([`super::read`]): each row (every column but the image column, plus
//!    the image column's file path and/or embedded bytes, deduplicated by content hash) is checked as soon as it
//!    is read ([`super::parse`]: `bad_value`, `too_few_choices`, `empty_caption`, `label_not_in_choices`; here:
//!    `duplicate_row`), so only the checked rows are kept, never the file or its raw rows.
//! 3. The image folder is indexed once (file name → path) and each row's image found there (`missing_image`,
//!    `ambiguous_image`), unless the row carries the image itself.
//! 4. Each distinct image is read once, hashed (SHA-256) and fully decoded (`unreadable_image`), on a few threads
//!    that together hold at most [`DECODE_BUDGET`] bytes of images ([`super::images`]).
//! 5. Bad rows reject the import or are left out; embedded images used by kept rows are written to `extract_dir`.
//!
//! The [`CancelToken`] is checked between the steps, for every row read and for every image; a cancelled import
//! returns [`Error::Cancelled`]. Whatever the error, files that the import extracted are removed again.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::common::{absolute, display_name, io_or_missing, rejected};
use super::images::{inspect, par_map, write_atomic, ImageFailure, ImageIndex, ImageInfo, MemoryBudget, Source, DECODE_BUDGET};
use super::parse::{parse_row, Parsed};
use super::read::{read_metadata, Blobs, Format, RawRow, RawTable};
use super::types::{remove_created, DatasetRow, ImageRecord, ImportOptions, ImportedDataset, OnError};
use crate::error::{Error, Result};
use crate::events::{CancelToken, Event, Observer, Phase};
use crate::fsio::human_bytes;
use crate::validation::{ProblemKind, Problem, ValidationReport};

/// Reads, joins and validates a dataset (see the module docs and [`ImportOptions`]).
///
/// Errors: an empty name; the metadata file is missing, unreadable or malformed (naming the file and row /
/// line); a required column is missing ([`Error::Rejected`] with one `missing_column` problem, listing the
/// columns found); any bad row under [`OnError::Reject`], or no valid row at all under [`OnError::Skip`]
/// ([`Error::Rejected`] carrying the full [`ValidationReport`]); embedded images but no `extract_dir`;
/// [`Error::Cancelled`] once `cancel` is cancelled. On any error nothing extracted is left behind.
pub fn import(opts: &ImportOptions, obs: &mut dyn Observer, cancel: CancelToken) -> Result<ImportedDataset> {
    if opts.name.trim().is_empty() {
        return Err(Error::Invalid("a dataset needs a name".into()));
    }
    let (meta_path, table, mut checked) = read_rows(opts, obs, &cancel)?;
    let (root, index) = find_files(opts, &meta_path, &mut checked, obs)?;
    let sources = one_source_per_name(&mut checked);
    if sources.iter().any(|s| matches!(s, Source::Embedded(_))) && opts.extract_dir.is_none() {
        return Err(Error::Invalid(format!(
            "{}: the images are embedded in the metadata; set an extract folder to write them to",
            meta_path.display()
        )));
    }
    stop_if(&cancel)?;
    let outcomes = inspect_all(&sources, &table.blobs, obs, &cancel)?;
    let outcome: Outcomes<'_> = sources.iter().zip(outcomes.iter()).collect();
    let Kept { rows, used, report } = keep_or_reject(opts, &meta_path, checked, index.as_ref(), &outcome, obs)?;
    stop_if(&cancel)?;
    let mut created = Created::default();
    let written = image_records(opts, &used, &outcome, &table.blobs, &mut created, &cancel)?;
    drop(table);
    let content_hash = content_hash(&meta_path, &written.images)?;
    stop_if(&cancel)?;

    info(
        obs,
        format!(
            "hashed and decoded {} images ({}){}; {} of {} rows valid",
            count(written.images.len()),
            human_bytes(written.total_bytes),
            if written.extracted > 0 { format!(", {} extracted", count(written.extracted)) } else { String::new() },
            count(report.valid_rows),
            count(report.total_rows)
        ),
    );
    Ok(ImportedDataset {
        name: opts.name.clone(),
        metadata_path: meta_path,
        images_dir: if used.values().any(|s| matches!(s, Source::File(_))) { root } else { None },
        columns: opts.columns.clone(),
        rows,
        images: written.images,
        report,
        content_hash,
        extracted: created.keep(),
    })
}

/// [`Error::Cancelled`] once `cancel` is cancelled.
fn stop_if(cancel: &CancelToken) -> Result<()> {
    if cancel.is_cancelled() {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

/// The files and folders an import created, removed again when dropped before [`Created::keep`] (an error, a
/// cancellation or a panic on the way).
#[derive(Default)]
struct Created(Vec<PathBuf>);

impl Created {
    fn keep(mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        remove_created(std::mem::take(&mut self.0));
    }
}

/// One row after step 2 (and, as the steps go on, with its image found and its image problems added).
struct Checked {
    /// 1-based data row.
    row: usize,
    /// `None` when the file name, choices or label are unusable.
    parsed: Option<Parsed>,
    problems: Vec<Problem>,
}

/// Each distinct image's outcome of [`inspect`].
type Outcomes<'a> = HashMap<&'a Source, &'a std::result::Result<ImageInfo, ImageFailure>>;

/// Steps 1–2: checks the options, reads the metadata file row by row, checking each row as it comes, and its
/// required columns; returns its absolute path, what the reading kept (columns, embedded images) and the rows.
fn read_rows(opts: &ImportOptions, obs: &mut dyn Observer, cancel: &CancelToken) -> Result<(PathBuf, RawTable, Vec<Checked>)> {
    let meta_path = absolute(&opts.metadata)?;
    let cols = &opts.columns;
    let format = Format::of(&meta_path)?;
    if !meta_path.is_file() {
        return Err(Error::MissingFile { path: meta_path, hint: " (the metadata file)".to_string() });
    }
    info(obs, format!("reading {} metadata from {}", format.name(), meta_path.display()));
    let mut rows = RowChecker::new(opts);
    let table = read_metadata(&meta_path, format, cols, &mut |raw, blobs| {
        stop_if(cancel)?;
        rows.push(raw, blobs);
        Ok(())
    })?;
    table.check_columns(&meta_path, cols)?;
    if table.rows == 0 {
        return Err(Error::bad_file(&meta_path, "no data rows"));
    }
    info(obs, format!("read {} rows from {}", count(table.rows), display_name(&meta_path)));
    stop_if(cancel)?;
    Ok((meta_path, table, rows.checked))
}

/// Step 2: the values of each row, and rows that repeat an earlier one (`duplicate_row`). Rows are compared by
/// a hash of their file name, choices and label (then by value, on the rows kept): no second copy of the rows.
struct RowChecker<'a> {
    opts: &'a ImportOptions,
    checked: Vec<Checked>,
    /// Row hash → index in `checked` of the first row with that hash.
    first: HashMap<u64, usize>,
    /// Further distinct rows whose hash was already taken (practically never).
    collided: HashMap<u64, Vec<usize>>,
}

impl<'a> RowChecker<'a> {
    fn new(opts: &'a ImportOptions) -> Self {
        Self { opts, checked: Vec::new(), first: HashMap::new(), collided: HashMap::new() }
    }

    fn push(&mut self, raw: RawRow, blobs: &Blobs) {
        let row = raw.row;
        let (parsed, mut problems) = parse_row(raw, &self.opts.columns, blobs);
        if let Some(p) = &parsed {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&p.filename, &p.choices, p.label).hash(&mut h);
            let hash = h.finish();
            let same = |i: &usize| {
                self.checked[*i].parsed.as_ref().is_some_and(|q| {
                    q.label == p.label && q.filename == p.filename && q.choices == p.choices
                })
            };
            let earlier = match self.first.get(&hash) {
                None => {
                    self.first.insert(hash, self.checked.len());
                    None
                }
                Some(i) if same(i) => Some(*i),
                Some(_) => {
                    let others = self.collided.entry(hash).or_default();
                    let found = others.iter().find(|i| same(i)).copied();
                    if found.is_none() {
                        others.push(self.checked.len());
                    }
                    found
                }
            };
            if let Some(i) = earlier {
                problems.push(Problem::new(
                    Some(row),
                    Some(p.filename.clone()),
                    ProblemKind::DuplicateRow,
                    format!("same image, choices and label as row {}", self.checked[i].row),
                ));
            }
        }
        self.checked.push(Checked { row, parsed, problems });
    }
}

/// Step 3: finds the files of rows that don't carry their image. Returns the image folder (the given one, else
/// the metadata file's folder when files are needed) and its index (when files are needed).
fn find_files(
    opts: &ImportOptions,
    meta_path: &Path,
    checked: &mut [Checked],
    obs: &mut dyn Observer,
) -> Result<(Option<PathBuf>, Option<ImageIndex>)> {
    let needs_files = checked.iter().filter_map(|c| c.parsed.as_ref()).any(|p| p.source.is_none());
    let root = match &opts.images_dir {
        Some(dir) => Some(absolute(dir)?),
        None if needs_files => Some(meta_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)),
        None => None,
    };
    let index = match (&root, needs_files) {
        (Some(root), true) => {
            let index = ImageIndex::build(root)?;
            info(obs, format!("found {} files under {}", count(index.files), root.display()));
            Some(index)
        }
        _ => None,
    };
    if let Some(index) = &index {
        for c in checked.iter_mut() {
            locate(c, index);
        }
    }
    Ok((root, index))
}

/// Sets a row's image to the one file of its name in `index` (`ambiguous_image` when there are several,
/// `missing_image` when there is none). Rows that carry their image are left alone.
fn locate(c: &mut Checked, index: &ImageIndex) {
    let Some(p) = &mut c.parsed else { return };
    if p.source.is_some() {
        return;
    }
    match index.by_name.get(&p.filename).map(Vec::as_slice) {
        Some([one]) => p.source = Some(Source::File(one.clone())),
        Some(many) => c.problems.push(Problem::new(
            Some(c.row),
            Some(p.filename.clone()),
            ProblemKind::AmbiguousImage,
            format!(
                "{} files are named {}: {}",
                many.len(),
                p.filename,
                many.iter().map(|m| index.relative(m)).collect::<Vec<_>>().join(", ")
            ),
        )),
        None => {
            let hint = index
                .near_miss(&p.filename)
                .map(|m| format!(" (there is {m}: file names are case-sensitive)"))
                .unwrap_or_default();
            c.problems.push(Problem::new(
                Some(c.row),
                Some(p.filename.clone()),
                ProblemKind::MissingImage,
                format!("no image file named {} under {}{hint}", p.filename, index.root.display()),
            ));
        }
    }
}

/// Step 3: one source per file name (two different images under one name cannot be told apart: the later rows
/// get `ambiguous_image`). Returns the distinct sources, sorted.
fn one_source_per_name(checked: &mut [Checked]) -> Vec<Source> {
    let mut by_name: HashMap<String, (Source, usize)> = HashMap::new();
    for c in checked.iter_mut() {
        let Some(p) = &mut c.parsed else { continue };
        let Some(source) = &p.source else { continue };
        match by_name.get(&p.filename) {
            None => {
                by_name.insert(p.filename.clone(), (source.clone(), c.row));
            }
            Some((s, _)) if s == source => {}
            Some((_, first)) => {
                c.problems.push(Problem::new(
                    Some(c.row),
                    Some(p.filename.clone()),
                    ProblemKind::AmbiguousImage,
                    format!("a different image than row {first}'s has the same file name {}", p.filename),
                ));
                p.source = None;
            }
        }
    }
    let mut sources: Vec<Source> = by_name.into_values().map(|(s, _)| s).collect();
    sources.sort();
    sources.dedup();
    sources
}

/// Step 4: reads, hashes and decodes each distinct image once, reporting progress, with at most
/// [`DECODE_BUDGET`] bytes of images in memory at once; [`Error::Cancelled`] once `cancel` is cancelled.
fn inspect_all(
    sources: &[Source],
    blobs: &Blobs,
    obs: &mut dyn Observer,
    cancel: &CancelToken,
) -> Result<Vec<std::result::Result<ImageInfo, ImageFailure>>> {
    let mut ticker = Ticker::new(sources.len());
    let budget = MemoryBudget::new(DECODE_BUDGET);
    par_map(
        sources,
        |s| inspect(s, blobs, &budget),
        |done| {
            ticker.tick(done, obs);
            true
        },
        cancel,
    )
    .ok_or(Error::Cancelled)
}

/// The rows kept, the image each kept file name refers to, and the report.
struct Kept {
    rows: Vec<DatasetRow>,
    used: BTreeMap<String, Source>,
    report: ValidationReport,
}

/// Step 5: adds image problems, then keeps the good rows, or rejects the import (any problem under
/// [`OnError::Reject`], no good row at all under [`OnError::Skip`]).
fn keep_or_reject(
    opts: &ImportOptions,
    meta_path: &Path,
    checked: Vec<Checked>,
    index: Option<&ImageIndex>,
    outcome: &Outcomes<'_>,
    obs: &mut dyn Observer,
) -> Result<Kept> {
    let mut report = ValidationReport { total_rows: checked.len(), ..Default::default() };
    let mut rows = Vec::with_capacity(checked.len());
    let mut used: BTreeMap<String, Source> = BTreeMap::new();
    for mut c in checked {
        add_image_problem(&mut c, index, outcome);
        match c.parsed {
            Some(Parsed { filename, choices, label, extra, source: Some(source) }) if c.problems.is_empty() => {
                used.insert(filename.clone(), source);
                rows.push(DatasetRow { row: c.row, filename, choices, label, extra });
            }
            _ => report.problems.extend(c.problems),
        }
    }
    report.valid_rows = rows.len();
    if !report.problems.is_empty() {
        info(
            obs,
            format!(
                "{} of {} rows have problems: {}",
                count(report.bad_rows()),
                count(report.total_rows),
                report.counts_by_kind().iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    if (opts.on_error == OnError::Reject && !report.problems.is_empty()) || rows.is_empty() {
        return Err(rejected(meta_path, report));
    }
    Ok(Kept { rows, used, report })
}

/// The row's image problem, if its image turned out missing or unreadable (named relative to the image folder).
fn add_image_problem(c: &mut Checked, index: Option<&ImageIndex>, outcome: &Outcomes<'_>) {
    let Some(Parsed { filename, source: Some(source), .. }) = &c.parsed else { return };
    let shown = match (source, index) {
        (Source::File(path), Some(index)) => index.relative(path),
        _ => filename.clone(),
    };
    let (k, reason) = match outcome.get(source) {
        Some(Err(ImageFailure::Missing(reason))) => (ProblemKind::MissingImage, reason),
        Some(Err(ImageFailure::Unreadable(reason))) => (ProblemKind::UnreadableImage, reason),
        Some(Ok(_)) | None => return,
    };
    c.problems.push(Problem::new(Some(c.row), Some(shown), k, reason.clone()));
}

/// The image records of the kept rows, with their total size and how many embedded images were written out.
struct Written {
    images: Vec<ImageRecord>,
    total_bytes: u64,
    extracted: usize,
}

/// Step 6: one record per used image (in file-name order); embedded images are written to `extract_dir`, and
/// what is new there is noted in `created`. [`Error::Cancelled`] once `cancel` is cancelled.
fn image_records(
    opts: &ImportOptions,
    used: &BTreeMap<String, Source>,
    outcome: &Outcomes<'_>,
    blobs: &Blobs,
    created: &mut Created,
    cancel: &CancelToken,
) -> Result<Written> {
    let extract_dir = match &opts.extract_dir {
        Some(dir) if used.values().any(|s| matches!(s, Source::Embedded(_))) => {
            let dir = absolute(dir)?;
            create_dirs(&dir, created)?;
            Some(dir)
        }
        _ => None,
    };
    let mut written = Written { images: Vec::with_capacity(used.len()), total_bytes: 0, extracted: 0 };
    for (filename, source) in used {
        let Some(Ok(info)) = outcome.get(source) else { continue };
        let path = match (source, &extract_dir) {
            (Source::File(path), _) => path.clone(),
            (Source::Embedded(sha), Some(dir)) => {
                stop_if(cancel)?;
                let path = dir.join(format!("{}.{}", info.sha256, info.ext));
                if let Some(bytes) = blobs.get(sha) {
                    if write_atomic(&path, bytes, &info.sha256)? {
                        created.0.push(path.clone());
                    }
                    written.extracted += 1;
                }
                path
            }
            (Source::Embedded(_), None) => continue,
        };
        written.total_bytes += info.bytes;
        written.images.push(ImageRecord {
            filename: filename.clone(),
            path,
            sha256: info.sha256.clone(),
            width: info.width,
            height: info.height,
            bytes: info.bytes,
        });
    }
    Ok(written)
}

/// Creates `dir` and its missing parents, noting each one created in `created`.
fn create_dirs(dir: &Path, created: &mut Created) -> Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => created.0.push(d.to_path_buf()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(d, e)),
        }
    }
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{}: not a folder (the extract folder)", dir.display())))
    }
}

/// Step 7: SHA-256 over the metadata file's bytes and every image's hash (in file-name order), hex.
fn content_hash(meta_path: &Path, images: &[ImageRecord]) -> Result<String> {
    let mut hasher = Sha256::new();
    let file = std::fs::File::open(meta_path).map_err(|e| io_or_missing(meta_path, e))?;
    let mut reader = std::io::BufReader::new(file);
    std::io::copy(&mut reader, &mut hasher).map_err(|e| Error::io(meta_path, e))?;
    for img in images {
        hasher.update(img.sha256.as_bytes());
    }
    Ok(hex::encode(hasher.finalize()))
}

// ---------------------------------------------------------------------------------------------------------------
// Progress and messages
// ---------------------------------------------------------------------------------------------------------------

/// Reports progress of `Phase::Load` about every 1 %.
struct Ticker {
    total: usize,
    last_pct: usize,
    start: std::time::Instant,
}

impl Ticker {
    fn new(total: usize) -> Self {
        Ticker { total, last_pct: usize::MAX, start: std::time::Instant::now() }
    }

    fn tick(&mut self, done: usize, obs: &mut dyn Observer) {
        let pct = done * 100 / self.total.max(1);
        if pct != self.last_pct || done == self.total {
            self.last_pct = pct;
            let elapsed_s = self.start.elapsed().as_secs_f64();
            let left = self.total.saturating_sub(done);
            let eta_s = if done == 0 { 0.0 } else { elapsed_s / done as f64 * left as f64 };
            obs.on_event(&Event::Progress { phase: Phase::Load, done, total: self.total, elapsed_s, eta_s });
        }
    }
}

fn info(obs: &mut dyn Observer, message: String) {
    obs.on_event(&Event::Info { message });
}

/// `2341` → `"2,341"`.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(2341), "2,341");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
