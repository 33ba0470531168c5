//! Datasets: listing and paging their samples, the import drafts (pick or demo → preview → confirm), and image
//! thumbnails (made on a small fixed pool of worker threads).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use experiments::data::{self, ColumnMap, ImportOptions, ImportedDataset, OnError};
use experiments::run::demo::{self, DemoOptions};
use experiments::run::store::{DatasetInfo, StoredSample};

use experiments::events::{Callback, CancelToken, Event, Throttle};
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
    /// Stops the draft's preview when the user drops it.
    cancel: CancelToken,
}

impl Drop for Draft {
    /// A draft that goes away unstored (dropped, previewed again) takes the files its preview extracted with it;
    /// a stored one has handed its data to the store first.
    fn drop(&mut self) {
        if let Some(d) = &mut self.validated {
            d.discard_extracted();
        }
    }
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

    pub(super) fn new_draft(&self, name: String, metadata: PathBuf, images_dir: Option<PathBuf>) -> ImportDraft {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let columns = ColumnMap::default();
        lock(&self.drafts).insert(
            token,
            Draft {
                name: name.clone(),
                metadata: metadata.clone(),
                images_dir: images_dir.clone(),
                columns: columns.clone(),
                validated: None,
                cancel: CancelToken::new(),
            },
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
    /// the user confirms or drops it. A name that the store has already is refused before anything is read;
    /// [`Self::cancel_import`] stops a preview under way.
    pub fn preview_import(&self, token: u64, name: &str, columns: ColumnMap) -> Result<ImportPreview> {
        let wanted = name.trim();
        if self.store().datasets()?.iter().any(|d| d.name == wanted) {
            return Err(Error::Invalid(format!("a dataset named `{wanted}` already exists; choose another name")));
        }
        let (metadata, images_dir, cancel, earlier) = {
            let mut drafts = lock(&self.drafts);
            let d = drafts.get_mut(&token).ok_or_else(|| Error::Invalid(format!("no import in progress with token {token}")))?;
            (d.metadata.clone(), d.images_dir.clone(), d.cancel.clone(), d.validated.take())
        };
        // An earlier preview of this draft is replaced: its extracted files go (this one writes its own).
        if let Some(mut earlier) = earlier {
            earlier.discard_extracted();
        }
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
        // A URL draft downloads into the home's remote cache here (what is cached already is not fetched again).
        let (report, mut validated) = match data::remote::import_any(&opts, &self.home, &mut obs, cancel) {
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
        match lock(&self.drafts).get_mut(&token) {
            Some(d) => {
                d.name = opts.name;
                d.columns = columns;
                d.validated = validated;
            }
            // Dropped while it was being read: nothing of it stays.
            None => {
                if let Some(d) = &mut validated {
                    d.discard_extracted();
                }
            }
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
        // Stored: its extracted files now belong to the dataset.
        if let Some(mut d) = drafts.remove(&token) {
            if let Some(data) = &mut d.validated {
                data.extracted.clear();
            }
        }
        drop(drafts);
        Ok(self.store().dataset(&id.to_string())?)
    }

    /// Forgets a draft the user dropped: stops its preview if one is under way, and removes what it extracted.
    pub fn cancel_import(&self, token: u64) {
        let draft = lock(&self.drafts).remove(&token);
        if let Some(d) = draft {
            d.cancel.cancel();
        }
    }


    /// Makes the thumbnail of [`Self::thumbnail`] on the thumbnail pool and hands it to `reply` there: at most
    /// [`THUMBNAIL_WORKERS`] images are decoded at once, however many the page asks for. If the pool cannot be
    /// started, `reply` gets the error at once.
    pub fn thumbnail_later(
        self: &Arc<Self>,
        image_id: i64,
        size: u32,
        reply: impl FnOnce(Result<Vec<u8>>) + Send + 'static,
    ) {
        let app = Arc::clone(self);
        let job: Job = Box::new(move |worker| match worker {
            Ok(()) => reply(app.thumbnail(image_id, size)),
            Err(e) => reply(Err(Error::Invalid(e))),
        });
        match pool() {
            Ok(pool) => pool.submit(job),
            Err(e) => job(Err(e.clone())),
        }
    }

    /// A JPEG thumbnail (longest side `size`) of a stored image, cached under `home/thumbs` by content hash.
    pub fn thumbnail(&self, image_id: i64, size: u32) -> Result<Vec<u8>> {
        let size = size.clamp(32, 1024);
        let img = self.store().image(image_id)?;
        let cache = self.home.join("thumbs").join(format!("{}-{size}.jpg", img.sha256));
        if let Ok(bytes) = std::fs::read(&cache) {
            return Ok(bytes);
        }
        // The core's decoder: Pillow's pixels, and its size limit checked from the header before any buffer.
        let bytes = std::fs::read(&img.path).map_err(|e| experiments::Error::io(&img.path, e))?;
        let decoded = experiments::decode::decode_image(&bytes, &img.path, &experiments::decode::DecodeLimits::default())?;
        drop(bytes);
        let thumb = decoded.thumbnail(size, size).to_rgb8();
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
            .encode_image(&thumb)
            .map_err(|e| experiments::Error::BadImage { path: img.path.clone(), message: e.to_string() })?;
        // Best effort: a cache that cannot be written (full disk) only costs time.
        if let Some(parent) = cache.parent() {
            if std::fs::create_dir_all(parent).is_ok() {
                let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
                let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &cache));
                if written.is_err() {
                    // A half-written or unrenamed temporary file is removed; gone already is fine.
                    let _ = std::fs::remove_file(&tmp);
                }
            }
        }
        Ok(bytes)
    }
}

/// How many thumbnails are made at once (each decodes one image in full).
pub const THUMBNAIL_WORKERS: usize = 4;

/// Work for the pool; called with `Err` (why) instead when no worker can take it.
type Job = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// A fixed set of worker threads taking jobs from one queue.
struct Pool {
    queue: Mutex<Sender<Job>>,
}

impl Pool {
    fn start(workers: usize) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new().name(format!("thumbnail-{i}")).spawn(move || loop {
                let job = lock(&rx).recv();
                let Ok(job) = job else { break };
                // A job that panics (a decoder bug) must not take its worker with it.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(())))).is_err() {
                    tracing::error!("a thumbnail job panicked");
                }
            })?;
        }
        Ok(Pool { queue: Mutex::new(tx) })
    }

    fn submit(&self, job: Job) {
        let sent = lock(&self.queue).send(job);
        if let Err(mpsc::SendError(job)) = sent {
            job(Err("the thumbnail workers are gone".to_string()));
        }
    }
}

/// The process's thumbnail pool, started on first use.
fn pool() -> std::result::Result<&'static Pool, &'static String> {
    static POOL: OnceLock<std::result::Result<Pool, String>> = OnceLock::new();
    POOL.get_or_init(|| Pool::start(THUMBNAIL_WORKERS).map_err(|e| format!("cannot start the thumbnail workers: {e}")))
        .as_ref()
}
