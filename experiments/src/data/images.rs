//! The images of an import: the file-name index of the image folder, reading / hashing / fully decoding each
//! distinct image (on a few threads), writing embedded images out, and re-verifying images after the import.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::common::{display_name, io_or_missing};
use super::types::ImageRecord;
use crate::error::{Error, Result};
use crate::events::CancelToken;
use crate::decode::{decode_image, DecodeLimits};
use crate::validation::{ProblemKind, Problem};

/// SHA-256 (hex) and length of a file, read in a streaming way.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let file = std::fs::File::open(path).map_err(|e| io_or_missing(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut hasher = Sha256::new();
    let total = std::io::copy(&mut reader, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok((hex::encode(hasher.finalize()), total))
}

/// SHA-256 of bytes in memory, hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// File name → every file with that name under a folder (recursively; hidden subfolders are skipped).
#[derive(Debug, Default)]
pub(super) struct ImageIndex {
    pub(super) root: PathBuf,
    pub(super) by_name: HashMap<String, Vec<PathBuf>>,
    /// Number of files found.
    pub(super) files: usize,
}

impl ImageIndex {
    pub(super) fn build(root: &Path) -> Result<Self> {
        let meta = std::fs::metadata(root).map_err(|e| io_or_missing(root, e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!("{}: not a folder (expected the image folder)", root.display())));
        }
        let mut index = ImageIndex { root: root.to_path_buf(), ..Default::default() };
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(&dir, e))?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(file_type) = entry.file_type() else { continue };
                // Symbolic links are followed to files, never to folders (no loops).
                let (is_dir, is_file) = if file_type.is_symlink() {
                    (false, std::fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false))
                } else {
                    (file_type.is_dir(), file_type.is_file())
                };
                if is_dir {
                    if !name.starts_with('.') {
                        stack.push(path);
                    }
                } else if is_file {
                    index.files += 1;
                    index.by_name.entry(name).or_default().push(path);
                }
            }
        }
        for paths in index.by_name.values_mut() {
            paths.sort();
        }
        Ok(index)
    }

    pub(super) fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    /// A case-insensitive near miss, for the "not found" message.
    pub(super) fn near_miss(&self, name: &str) -> Option<&str> {
        let lower = name.to_lowercase();
        self.by_name.keys().find(|k| k.to_lowercase() == lower).map(|k| k.as_str())
    }
}

/// Where a row's image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Source {
    File(PathBuf),
    /// Embedded bytes, by SHA-256.
    Embedded(String),
}

/// What reading an image found out.
#[derive(Debug, Clone)]
pub(super) struct ImageInfo {
    pub(super) sha256: String,
    pub(super) bytes: u64,
    pub(super) width: u32,
    pub(super) height: u32,
    /// File extension of the sniffed format (for extracted images).
    pub(super) ext: &'static str,
}

/// Why an image cannot be used.
#[derive(Debug, Clone)]
pub(super) enum ImageFailure {
    Missing(String),
    Unreadable(String),
}

/// Hashes and fully decodes one image held in memory (a truncated file must fail here, not at training time).
fn inspect_bytes(bytes: &[u8], name_hint: &str) -> std::result::Result<ImageInfo, ImageFailure> {
    let format = image::guess_format(bytes).ok().or_else(|| image::ImageFormat::from_path(name_hint).ok());
    let Some(format) = format else {
        return Err(ImageFailure::Unreadable(
            "not an image in a known format (PNG, JPEG, WebP, GIF, BMP, TIFF)".to_string(),
        ));
    };
    let decoded = std::panic::catch_unwind(|| {
        // Pillow's pixels and limits (JPEG through libjpeg-turbo, truncated or too large images refused).
        decode_image(bytes, Path::new(name_hint), &DecodeLimits::default())
    });
    let img = match decoded {
        Ok(Ok(img)) => img,
        Ok(Err(Error::BadImage { message, .. })) => {
            return Err(ImageFailure::Unreadable(format!("cannot decode {format:?} image: {message}")))
        }
        Ok(Err(e)) => return Err(ImageFailure::Unreadable(format!("cannot decode {format:?} image: {e}"))),
        Err(_) => return Err(ImageFailure::Unreadable(format!("the {format:?} decoder crashed on this file"))),
    };
    Ok(ImageInfo {
        sha256: sha256_hex(bytes),
        bytes: bytes.len() as u64,
        width: img.width(),
        height: img.height(),
        ext: format.extensions_str().first().copied().unwrap_or("img"),
    })
}

/// How many bytes of pixels (and file bytes) the import's decoding threads may hold at once: with big images,
/// fewer are decoded side by side. One image bigger than this is decoded alone.
pub(super) const DECODE_BUDGET: u64 = 256 << 20;

/// A counted amount of memory that threads take a part of before a big allocation and give back after: a
/// weighted semaphore (a request larger than the whole waits until everything is free, then takes it all).
#[derive(Debug)]
pub(super) struct MemoryBudget {
    total: u64,
    free: Mutex<u64>,
    freed: Condvar,
}

/// A part of a [`MemoryBudget`], given back when dropped.
pub(super) struct Lease<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    pub(super) fn new(total: u64) -> Self {
        Self { total, free: Mutex::new(total), freed: Condvar::new() }
    }

    /// Waits until `bytes` (at most the whole budget) are free and takes them until the lease drops.
    pub(super) fn take(&self, bytes: u64) -> Lease<'_> {
        let bytes = bytes.min(self.total);
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free < bytes {
            free = self.freed.wait(free).unwrap_or_else(PoisonError::into_inner);
        }
        *free -= bytes;
        Lease { budget: self, bytes }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut free = self.budget.free.lock().unwrap_or_else(PoisonError::into_inner);
        *free += self.bytes;
        self.budget.freed.notify_all();
    }
}

/// The size of an image's decoded pixels, from its header only (`None` when the header cannot be read: then the
/// decode fails at once and costs little).
fn decoded_size(reader: impl std::io::BufRead + std::io::Seek) -> Option<u64> {
    use image::ImageDecoder as _;
    let reader = image::ImageReader::new(reader).with_guessed_format().ok()?;
    reader.into_decoder().ok().map(|d| d.total_bytes())
}

/// Reads (or takes the embedded bytes of) one image and inspects it, holding a part of `budget` the size of the
/// file and its decoded pixels while it does.
pub(super) fn inspect(
    source: &Source,
    blobs: &HashMap<String, Vec<u8>>,
    budget: &MemoryBudget,
) -> std::result::Result<ImageInfo, ImageFailure> {
    match source {
        Source::File(path) => {
            let header = std::fs::File::open(path).ok().and_then(|f| {
                let len = f.metadata().ok()?.len();
                Some(len.saturating_add(decoded_size(std::io::BufReader::new(f)).unwrap_or(0)))
            });
            let _lease = budget.take(header.unwrap_or(0));
            match std::fs::read(path) {
                Ok(bytes) => inspect_bytes(&bytes, &path.to_string_lossy()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(ImageFailure::Missing(format!("image file {} disappeared", path.display())))
                }
                Err(e) => Err(ImageFailure::Unreadable(format!("cannot read {}: {e}", path.display()))),
            }
        }
        Source::Embedded(sha) => match blobs.get(sha) {
            Some(bytes) => {
                let _lease = budget.take(decoded_size(std::io::Cursor::new(bytes)).unwrap_or(0));
                inspect_bytes(bytes, "")
            }
            None => Err(ImageFailure::Missing("embedded image bytes lost".to_string())),
        },
    }
}

/// Runs `work` over `items` on a few threads; `tick(done)` runs on this thread after each item and may stop
/// the work by returning `false` (then `None`). The threads also stop, between items, once `cancel` is
/// cancelled (then `None`).
pub(super) fn par_map<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
    mut tick: impl FnMut(usize) -> bool,
    cancel: &CancelToken,
) -> Option<Vec<R>> {
    let n = items.len();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 8).min(n.max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, R)>();
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let mut finished = true;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, work) = (&next, &stop, &work);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) && !cancel.is_cancelled() {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send((i, work(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for (i, r) in rx.iter() {
            out[i] = Some(r);
            done += 1;
            if !tick(done) || cancel.is_cancelled() {
                finished = false;
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        drop(rx);
    });
    if finished && !cancel.is_cancelled() {
        out.into_iter().collect()
    } else {
        None
    }
}


/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a reader never sees a
/// half-written file. An existing file with the same content is left alone. Returns whether `path` is new (did
/// not exist before).
pub(super) fn write_atomic(path: &Path, bytes: &[u8], sha256: &str) -> Result<bool> {
    let existing = std::fs::metadata(path).ok();
    if existing.as_ref().is_some_and(|m| m.len() == bytes.len() as u64)
        && sha256_file(path).is_ok_and(|(h, _)| h == sha256)
    {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        display_name(path),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map(|()| existing.is_none()).map_err(|e| {
        // Best effort: the write already failed and that error is the one to report; a leftover hidden temporary
        // file is harmless.
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}


/// Re-hashes each image file: `missing_image` when it is gone, `changed_image` when its content differs from the
/// import (`unreadable_image` when it cannot be read). Run before training to catch edited datasets.
pub fn verify_images(images: &[ImageRecord]) -> Vec<Problem> {
    let results = par_map(
        images,
        |img| match sha256_file(&img.path) {
            Ok((sha, _)) if sha == img.sha256 => None,
            Ok((sha, len)) => Some(Problem::new(
                None,
                Some(img.filename.clone()),
                ProblemKind::ChangedImage,
                format!(
                    "{} changed on disk since import (sha256 {} → {}, {} → {} bytes)",
                    img.path.display(),
                    &img.sha256[..img.sha256.len().min(12)],
                    &sha[..12],
                    img.bytes,
                    len
                ),
            )),
            Err(Error::MissingFile { .. }) => Some(Problem::new(
                None,
                Some(img.filename.clone()),
                ProblemKind::MissingImage,
                format!("{} is gone (deleted or moved since import)", img.path.display()),
            )),
            Err(e) => Some(Problem::new(None, Some(img.filename.clone()), ProblemKind::UnreadableImage, e.to_string())),
        },
        |_| true,
        &CancelToken::new(),
    );
    results.unwrap_or_default().into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_budget_bounds_what_threads_hold_at_once_and_lets_a_big_request_through_alone() {
        let budget = MemoryBudget::new(100);
        let held = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for i in 0..8 {
                let (budget, held, most) = (&budget, &held, &most);
                scope.spawn(move || {
                    for _ in 0..20 {
                        // 40 bytes each, and now and then more than the whole budget.
                        let want = if i == 0 { 500 } else { 40 };
                        let _lease = budget.take(want);
                        let now = held.fetch_add(want.min(100) as usize, Ordering::SeqCst) + want.min(100) as usize;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        held.fetch_sub(want.min(100) as usize, Ordering::SeqCst);
                    }
                });
            }
        });
        let most = most.load(Ordering::SeqCst);
        assert!((40..=100).contains(&most), "at most the budget at once: {most}");
        assert_eq!(*budget.free.lock().unwrap_or_else(PoisonError::into_inner), 100, "everything given back");
    }
}
