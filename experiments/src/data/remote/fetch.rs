//! Objects to local files: a content-addressed cache (`blobs/sha256/ab/abcd…`, each file once whatever its name or
//! source) and, per source, a folder of hard links under the objects' own paths (`files/gs/BUCKET/PATH`) that the
//! local import reads. A link is made only once its blob is complete and its size checked, so a file in the folder
//! is a finished download: a second import of the same folder, or one after an interruption, downloads only the
//! objects without one.
//!
//! Downloads run [`PARALLEL`] at a time, each retried [`ATTEMPTS`] times (on top of `object_store`'s own retries of
//! a request); a download that cannot finish leaves no file behind (its temporary file is removed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStoreExt};
use sha2::{Digest, Sha256};

use super::location::{store_error, Location};
use crate::events::{CancelToken, Event, Observer, Phase};
use crate::{Error, Result};

/// Downloads at once.
pub const PARALLEL: usize = 8;
/// Tries per object (a broken-off body, a size that does not match).
pub const ATTEMPTS: usize = 3;

/// What a fetch did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FetchReport {
    pub files: usize,
    pub downloaded: usize,
    pub downloaded_bytes: u64,
    /// Files already complete in the cache.
    pub reused: usize,
    pub seconds: f64,
}

/// The cache under `root`: its blobs and its per-source folders.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The local folder that mirrors `loc` (its objects under their own paths).
    pub fn folder(&self, loc: &Location) -> PathBuf {
        self.local(loc, &loc.path)
    }

    /// Where object `path` of `loc`'s store lives locally.
    fn local(&self, loc: &Location, path: &ObjectPath) -> PathBuf {
        let authority = loc.authority.replace(':', "_");
        let mut p = self.root.join("files").join(&loc.scheme).join(authority);
        for part in path.parts() {
            p.push(part.as_ref());
        }
        p
    }

    fn blobs(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }
}

/// A single-purpose runtime for `object_store` (async) under the core's blocking API.
pub fn runtime(url: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io(url, e))
}

/// Every object under `loc`'s path (recursively) whose name `keep` accepts.
pub async fn list(loc: &Location, keep: impl Fn(&str) -> bool) -> Result<Vec<ObjectMeta>> {
    let all: Vec<ObjectMeta> =
        loc.store.list(Some(&loc.path)).try_collect().await.map_err(|e| store_error(&loc.url, e))?;
    let mut kept: Vec<ObjectMeta> =
        all.into_iter().filter(|m| m.location.filename().is_some_and(&keep)).collect();
    kept.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(kept)
}

/// The metadata of the one object at `loc`.
pub async fn head(loc: &Location) -> Result<ObjectMeta> {
    loc.store.head(&loc.path).await.map_err(|e| store_error(&loc.url, e))
}

/// Downloads `objects` of `loc`'s store into `cache` (see the module docs), with progress (phase `Load`, in files)
/// and `cancel` honoured between files. Returns the report; fails on the first object that cannot be fetched.
pub async fn fetch_all(
    loc: &Location,
    objects: &[ObjectMeta],
    cache: &Cache,
    obs: &mut dyn Observer,
    cancel: &CancelToken,
) -> Result<FetchReport> {
    let start = Instant::now();
    let mut report = FetchReport { files: objects.len(), ..Default::default() };
    let missing: Vec<&ObjectMeta> = objects
        .iter()
        .filter(|m| {
            let done = std::fs::metadata(cache.local(loc, &m.location)).is_ok_and(|f| f.is_file() && f.len() == m.size);
            report.reused += usize::from(done);
            !done
        })
        .collect();
    let bytes: u64 = missing.iter().map(|m| m.size).sum();
    obs.on_event(&Event::Info {
        message: format!(
            "{}: {} files to download ({}), {} already in the cache",
            loc.url,
            missing.len(),
            crate::fsio::human_bytes(bytes),
            report.reused
        ),
    });
    if missing.is_empty() {
        return Ok(report);
    }
    obs.on_event(&Event::PhaseStarted { phase: Phase::Load, total: missing.len() });
    let mut downloads = futures_util::stream::iter(missing.iter().map(|m| fetch_one(loc, m, cache)))
        .buffer_unordered(PARALLEL);
    let mut last = Instant::now();
    while let Some(done) = downloads.next().await {
        report.downloaded_bytes += done?;
        report.downloaded += 1;
        // The first file, the last, and at most ten a second between.
        let finished = report.downloaded == missing.len();
        if report.downloaded == 1 || finished || last.elapsed() >= Duration::from_millis(100) {
            last = Instant::now();
            let elapsed_s = start.elapsed().as_secs_f64();
            let rate = report.downloaded as f64 / elapsed_s.max(1e-9);
            let eta_s = (missing.len() - report.downloaded) as f64 / rate.max(1e-9);
            obs.on_event(&Event::Progress { phase: Phase::Load, done: report.downloaded, total: missing.len(), elapsed_s, eta_s });
        }
        // Downloads still in flight are dropped with their temporary files: the cache keeps only finished ones.
        if cancel.is_cancelled() || obs.cancelled() {
            return Err(Error::Cancelled);
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    obs.on_event(&Event::Info {
        message: format!(
            "downloaded {} files ({}) in {:.1} s ({}/s)",
            report.downloaded,
            crate::fsio::human_bytes(report.downloaded_bytes),
            report.seconds,
            crate::fsio::human_bytes((report.downloaded_bytes as f64 / report.seconds.max(1e-9)) as u64)
        ),
    });
    Ok(report)
}

/// Downloads one object (see the module docs); returns its size.
async fn fetch_one(loc: &Location, meta: &ObjectMeta, cache: &Cache) -> Result<u64> {
    let url = loc.url_of(&meta.location);
    let mut attempt = 1;
    loop {
        match download(loc, meta, cache, &url).await {
            Ok(()) => return Ok(meta.size),
            // Missing objects and refused credentials do not get better by asking again.
            Err(e @ Error::Remote { status: Some(403 | 404), .. }) => return Err(e),
            Err(e) if attempt >= ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::warn!(url = %url, attempt, "download failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                attempt += 1;
            }
        }
    }
}

/// One try: the body to a temporary file in the blob folder (hashed as it comes), its size checked, renamed to its
/// hash, linked into the source's folder.
async fn download(loc: &Location, meta: &ObjectMeta, cache: &Cache, url: &str) -> Result<()> {
    let blobs = cache.blobs();
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
    let mut tmp = tempfile::Builder::new().prefix(".part-").tempfile_in(&blobs).map_err(|e| Error::io(&blobs, e))?;
    let mut body = loc.store.get(&meta.location).await.map_err(|e| store_error(url, e))?.into_stream();
    let mut hasher = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| store_error(url, e))?;
        hasher.update(&chunk);
        tmp.write_all(&chunk).map_err(|e| Error::io(tmp.path(), e))?;
        n += chunk.len() as u64;
    }
    if n != meta.size {
        return Err(Error::Integrity {
            url: url.to_string(),
            message: format!("received {n} bytes but the listing says {}; nothing was kept", meta.size),
        });
    }
    tmp.flush().map_err(|e| Error::io(tmp.path(), e))?;
    let hash = hex::encode(hasher.finalize());
    let blob = blobs.join(&hash[..2]).join(&hash);
    if !blob.is_file() {
        let dir = blobs.join(&hash[..2]);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        tmp.persist(&blob).map_err(|e| Error::io(&blob, e.error))?;
    }
    link(&blob, &cache.local(loc, &meta.location))
}

/// `dest` becomes a hard link to `blob` (a copy where the file system has no hard links).
fn link(blob: &Path, dest: &Path) -> Result<()> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    match std::fs::remove_file(dest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(dest, e)),
        _ => {}
    }
    if std::fs::hard_link(blob, dest).is_err() {
        // Copy to a temporary name first, so `dest` only ever appears complete.
        let tmp = dest.with_extension("part");
        std::fs::copy(blob, &tmp).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))?;
    }
    Ok(())
}
