//! Datasets from `gs://`, `s3://` and `https://` URLs: the files are fetched into a cache in the CLIP Lab home,
//! then imported exactly as a local import reads them (the same validation, the same content hash), and the
//! dataset records the URLs it came from (its `metadata_path` and `images_dir` are the URLs).
//!
//! Through the `object_store` crate: public buckets are read anonymously; credentials are used when the standard
//! environment has them (`GOOGLE_APPLICATION_CREDENTIALS` / `GOOGLE_SERVICE_ACCOUNT*` for gs://,
//! `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` and the rest of `AWS_*` for s3://); emulators through
//! `STORAGE_EMULATOR_HOST` (gs://, as Google's own clients) and `AWS_ENDPOINT_URL` (s3://). An `https://` image
//! folder must be listable (WebDAV); a metadata file over `https://` is one plain GET.
//!
//! - `location`: a URL → the store and the object path;
//! - `fetch`: listing, parallel downloads with retries into the content-addressed cache.

mod fetch;
mod location;

use std::path::{Path, PathBuf};

pub use fetch::{FetchReport, ATTEMPTS, PARALLEL};
pub use location::is_url;

use super::import::import;
use super::types::{ImportOptions, ImportedDataset};
use crate::events::{CancelToken, Observer};
use crate::{Error, Result};

/// The image file extensions a remote image folder is filtered on (what `decode` reads).
const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];
/// The metadata file extensions [`resolve_folder`] looks for.
const METADATA_EXTENSIONS: [&str; 5] = ["parquet", "csv", "tsv", "jsonl", "ndjson"];

/// The folder of the remote cache in a CLIP Lab home.
pub fn cache_dir(home: &Path) -> PathBuf {
    home.join("cache").join("remote")
}

/// Where a remote dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemoteSource {
    /// The metadata file's URL.
    pub metadata: String,
    /// The image folder's URL; `None`: the images are embedded in the metadata.
    pub images: Option<String>,
}

/// What [`fetch_source`] left on disk, for a local import.
#[derive(Debug, Clone)]
pub struct LocalCopy {
    pub metadata: PathBuf,
    pub images_dir: Option<PathBuf>,
    pub metadata_report: FetchReport,
    pub images_report: Option<FetchReport>,
}

/// Imports the dataset `opts` describes when its metadata (and image folder) are URLs: fetched into
/// [`cache_dir`]`(home)`, then imported as a local import would (see [`super::import`]); nothing is recorded (the
/// caller stores the result). Local paths go straight to the local import.
pub fn import_any(opts: &ImportOptions, home: &Path, obs: &mut dyn Observer, cancel: CancelToken) -> Result<ImportedDataset> {
    let Some(source) = remote_source(opts)? else {
        return import(opts, obs, cancel);
    };
    let local = fetch_source(&source, &cache_dir(home), obs, &cancel)?;
    let mut local_opts = opts.clone();
    local_opts.metadata = local.metadata;
    local_opts.images_dir = local.images_dir;
    let mut imported = import(&local_opts, obs, cancel)?;
    imported.metadata_path = PathBuf::from(&source.metadata);
    imported.images_dir = source.images.map(PathBuf::from);
    Ok(imported)
}

/// The URLs of `opts`, when its metadata is one; an image folder that is a URL beside a local metadata file (or
/// the other way round) is refused.
pub fn remote_source(opts: &ImportOptions) -> Result<Option<RemoteSource>> {
    let meta = opts.metadata.to_string_lossy();
    let images = opts.images_dir.as_ref().map(|p| p.to_string_lossy().into_owned());
    let images_remote = images.as_deref().is_some_and(is_url);
    if !is_url(&meta) {
        if images_remote {
            return Err(Error::Invalid(format!(
                "{}: a remote image folder needs a remote metadata file (got the local {meta})",
                images.unwrap_or_default()
            )));
        }
        return Ok(None);
    }
    if images.is_some() && !images_remote {
        return Err(Error::Invalid(format!("{meta}: a remote metadata file needs a remote image folder (or none)")));
    }
    Ok(Some(RemoteSource { metadata: meta.into_owned(), images }))
}

/// Fetches the metadata file (always: it is small and may have changed) and every image of the image folder that is
/// not complete in the cache yet.
pub fn fetch_source(source: &RemoteSource, cache_root: &Path, obs: &mut dyn Observer, cancel: &CancelToken) -> Result<LocalCopy> {
    let cache = fetch::Cache::new(cache_root);
    let rt = fetch::runtime(&source.metadata)?;
    rt.block_on(async {
        let meta_loc = location::open(&source.metadata)?;
        let meta = fetch::head(&meta_loc).await?;
        let metadata_path = cache.folder(&meta_loc);
        // Fetched again whatever is cached: the size alone does not say it is the same file.
        if metadata_path.is_file() {
            std::fs::remove_file(&metadata_path).map_err(|e| Error::io(&metadata_path, e))?;
        }
        let metadata_report = fetch::fetch_all(&meta_loc, &[meta], &cache, obs, cancel).await?;
        let (images_dir, images_report) = match &source.images {
            None => (None, None),
            Some(url) => {
                let loc = location::open(url)?;
                let objects = fetch::list(&loc, is_image).await?;
                if objects.is_empty() {
                    return Err(Error::Remote {
                        url: loc.url.clone(),
                        status: None,
                        code: None,
                        message: format!("no image files in it ({})", IMAGE_EXTENSIONS.join(", ")),
                    });
                }
                let report = fetch::fetch_all(&loc, &objects, &cache, obs, cancel).await?;
                (Some(cache.folder(&loc)), Some(report))
            }
        };
        Ok(LocalCopy { metadata: metadata_path, images_dir, metadata_report, images_report })
    })
}

fn has_extension(name: &str, exts: &[&str]) -> bool {
    name.rsplit_once('.').is_some_and(|(_, e)| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn is_image(name: &str) -> bool {
    has_extension(name, &IMAGE_EXTENSIONS)
}

/// A dataset folder URL (`gs://datachain-demo/newyorker_caption_contest/`) as metadata + images: the one metadata
/// file at its top level (parquet, CSV, TSV, JSON lines) and its `images/` folder when it has one.
pub fn resolve_folder(url: &str) -> Result<RemoteSource> {
    let loc = location::open(url)?;
    let rt = fetch::runtime(url)?;
    let listing = rt
        .block_on(loc.store.list_with_delimiter(Some(&loc.path)))
        .map_err(|e| location::store_error(&loc.url, e))?;
    let metadata: Vec<String> = listing
        .objects
        .iter()
        .filter(|m| m.location.filename().is_some_and(|n| has_extension(n, &METADATA_EXTENSIONS)))
        .map(|m| loc.url_of(&m.location))
        .collect();
    let [metadata] = metadata.as_slice() else {
        return Err(Error::Invalid(format!(
            "{}: expected one metadata file ({}) at its top level, found {}; import it with `cliplab dataset import \
             --metadata URL --images URL`",
            loc.url,
            METADATA_EXTENSIONS.join(", "),
            if metadata.is_empty() { "none".to_string() } else { metadata.join(", ") }
        )));
    };
    let images = listing
        .common_prefixes
        .iter()
        .find(|p| p.filename() == Some("images"))
        .map(|p| loc.url_of(p));
    Ok(RemoteSource { metadata: metadata.clone(), images })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_remote_halves_do_not_mix() {
        let opts = |m: &str, i: Option<&str>| ImportOptions {
            name: "d".into(),
            metadata: m.into(),
            images_dir: i.map(PathBuf::from),
            columns: Default::default(),
            on_error: Default::default(),
            extract_dir: None,
        };
        assert_eq!(remote_source(&opts("m.parquet", Some("imgs"))).expect("local"), None);
        let r = remote_source(&opts("gs://b/m.parquet", Some("gs://b/images"))).expect("remote").expect("some");
        assert_eq!(r.images.as_deref(), Some("gs://b/images"));
        assert!(remote_source(&opts("m.parquet", Some("s3://b/images"))).is_err());
        assert!(remote_source(&opts("https://h/m.parquet", Some("imgs"))).is_err());
    }
}
