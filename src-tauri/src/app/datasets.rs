//! Datasets: listing and paging their samples, the import drafts (pick or demo → preview → confirm), and image
//! thumbnails.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use experiments::data::{self, ColumnMap, ImportOptions, ImportedDataset, OnError};
use experiments::run::demo::{self, DemoOptions};
use experiments::run::store::{DatasetInfo, StoredSample};

use experiments::events::{Callback, Event, Throttle};
use super::{lock, App, MAX_PAGE};
use crate::views::*;
use crate::{Error, Result};

/// A picked import, and its validated data once previewed.
pub(super) struct Draft {
    name: String,
    metadata: PathBuf,
    images_dir: Option<PathBuf>,
    columns: ColumnMap,
    validated: Option<ImportedDataset>,
}

impl App {
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        Ok(self.store().datasets()?)
    }

    pub(super) fn dataset_samples(&self, dataset_id: i64) -> Result<Arc<Vec<StoredSample>>> {
        if let Some(s) = lock(&self.samples).get(&dataset_id) {
            return Ok(s.clone());
        }
        // Datasets never change once imported, so their samples are cached for paging.
        let s = Arc::new(self.store().dataset_samples(dataset_id)?);
        lock(&self.samples).insert(dataset_id, s.clone());
        Ok(s)
    }

    /// A page of a dataset's samples, filtered by text and answer letter.
    pub fn samples(&self, dataset_id: i64, q: &SampleQuery) -> Result<SamplePage> {
        let all = self.dataset_samples(dataset_id)?;
        let text = q.text.trim().to_lowercase();
        let matches = |s: &&StoredSample| {
            q.label.is_none_or(|l| s.label == l)
                && (text.is_empty()
                    || s.filename.to_lowercase().contains(&text)
                    || s.choices.iter().any(|c| c.to_lowercase().contains(&text)))
        };
        let mut total = 0;
        let mut items = Vec::new();
        let limit = q.limit.clamp(1, MAX_PAGE);
        for s in all.iter().filter(matches) {
            if total >= q.offset && items.len() < limit {
                items.push(s.clone());
            }
            total += 1;
        }
        let n_letters = items.iter().map(|s| s.choices.len()).max().unwrap_or(0).max(LABEL_FILTER_CHOICES);
        Ok(SamplePage { total, offset: q.offset, items, letters: letters(n_letters) })
    }

    fn new_draft(&self, name: String, metadata: PathBuf, images_dir: Option<PathBuf>) -> ImportDraft {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let columns = ColumnMap::default();
        lock(&self.drafts).insert(
            token,
            Draft { name: name.clone(), metadata: metadata.clone(), images_dir: images_dir.clone(), columns: columns.clone(), validated: None },
        );
        ImportDraft { token, name, metadata, images_dir, columns }
    }

    /// Asks for the metadata file, then the image folder (cancel: images next to the metadata file or embedded).
    pub fn pick_import(&self) -> Result<Option<ImportDraft>> {
        let Some(metadata) = self.picker.pick_file(
            "Metadata file (filename, caption_choices, label)",
            &[("Metadata", &["parquet", "csv", "jsonl", "ndjson", "json"])],
        ) else {
            return Ok(None);
        };
        let images_dir = self.picker.pick_folder("Image folder (cancel: images sit next to the metadata file)");
        let name = metadata.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
        Ok(Some(self.new_draft(name, metadata, images_dir)))
    }

    /// Writes the embedded demo data (generated drawings and a tiny random CLIP) and starts an import of it.
    pub fn demo_import(&self, images: usize) -> Result<ImportDraft> {
        let opts = DemoOptions { images, heldout: (images / 5).max(1), ..self.demo.clone() };
        let files = demo::prepare(&self.home, &opts, &mut experiments::events::NullObserver)?;
        self.allow_model(&files.model, "demo");
        Ok(self.new_draft(files.dataset_name, files.metadata, Some(files.images_dir)))
    }

    /// Reads and validates a draft (every row; bad rows are reported, not stored) and keeps the result until
    /// the user confirms or drops it.
    pub fn preview_import(&self, token: u64, name: &str, columns: ColumnMap) -> Result<ImportPreview> {
        let (metadata, images_dir) = {
            let drafts = lock(&self.drafts);
            let d = drafts.get(&token).ok_or_else(|| Error::Invalid(format!("no import in progress with token {token}")))?;
            (d.metadata.clone(), d.images_dir.clone())
        };
        let opts = ImportOptions {
            name: name.trim().to_string(),
            metadata: metadata.clone(),
            images_dir: images_dir.clone(),
            columns: columns.clone(),
            on_error: OnError::Skip,
            extract_dir: Some(self.home.join("extracted").join(format!("import-{token}"))),
        };
        let sink = self.sink.as_ref();
        let mut obs = Throttle::new(Callback::new(|e: &Event| sink.emit(AppEvent::Import { token, event: e.clone() })));
        let (report, validated) = match data::import(&opts, &mut obs) {
            Ok(d) => (d.report.clone(), Some(d)),
            Err(experiments::Error::Rejected { report, .. }) => (*report, None),
            Err(e) => return Err(e.into()),
        };
        let mut kinds: Vec<KindCount> =
            report.counts_by_kind().into_iter().map(|(kind, count)| KindCount { kind, count }).collect();
        kinds.sort_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(&b.kind)));
        let examples = validated
            .as_ref()
            .map(|d| {
                d.rows
                    .iter()
                    .take(5)
                    .map(|r| PreviewRow {
                        row: r.row,
                        filename: r.filename.clone(),
                        choices: r.choices.clone(),
                        letters: letters(r.choices.len()),
                        label: r.label,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let preview = ImportPreview {
            token,
            name: opts.name.clone(),
            metadata,
            images_dir,
            importable: validated.is_some(),
            n_images: validated.as_ref().map_or(0, |d| d.images.len()),
            report,
            problem_kinds: kinds,
            examples,
        };
        if let Some(d) = lock(&self.drafts).get_mut(&token) {
            d.name = opts.name;
            d.columns = columns;
            d.validated = validated;
        }
        Ok(preview)
    }

    /// Stores a previewed import. With problems in it, `skip_bad_rows` must be true (the valid rows are stored,
    /// the bad ones counted as skipped); nothing is stored otherwise.
    pub fn confirm_import(&self, token: u64, skip_bad_rows: bool) -> Result<DatasetInfo> {
        let mut drafts = lock(&self.drafts);
        let d = drafts.get(&token).ok_or_else(|| Error::Invalid(format!("no import in progress with token {token}")))?;
        let Some(data) = &d.validated else {
            return Err(Error::Invalid("nothing to import: check the validation report first".into()));
        };
        let bad = data.report.problems.len();
        if bad > 0 && !skip_bad_rows {
            return Err(Error::Invalid(format!(
                "{bad} problem(s) in {}: import again with \"skip bad rows\" to store the {} valid rows",
                d.metadata.display(),
                data.report.valid_rows
            )));
        }
        let id = self.store().insert_dataset(data)?;
        drafts.remove(&token);
        drop(drafts);
        Ok(self.store().dataset(&id.to_string())?)
    }

    /// Forgets a draft the user dropped.
    pub fn cancel_import(&self, token: u64) {
        lock(&self.drafts).remove(&token);
    }


    /// A JPEG thumbnail (longest side `size`) of a stored image, cached under `home/thumbs` by content hash.
    pub fn thumbnail(&self, image_id: i64, size: u32) -> Result<Vec<u8>> {
        let size = size.clamp(32, 1024);
        let img = self.store().image(image_id)?;
        let cache = self.home.join("thumbs").join(format!("{}-{size}.jpg", img.sha256));
        if let Ok(bytes) = std::fs::read(&cache) {
            return Ok(bytes);
        }
        let decoded = image::open(&img.path)
            .map_err(|e| experiments::Error::BadImage { path: img.path.clone(), message: e.to_string() })?;
        let thumb = decoded.thumbnail(size, size).to_rgb8();
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
            .encode_image(&thumb)
            .map_err(|e| experiments::Error::BadImage { path: img.path.clone(), message: e.to_string() })?;
        // Best effort: a cache that cannot be written (full disk) only costs time.
        if let Some(parent) = cache.parent() {
            if std::fs::create_dir_all(parent).is_ok() {
                let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
                if std::fs::write(&tmp, &bytes).is_ok() {
                    let _ = std::fs::rename(&tmp, &cache);
                }
            }
        }
        Ok(bytes)
    }
}
