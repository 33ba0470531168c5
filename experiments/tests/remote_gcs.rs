//! Datasets from gs:// against fake-gcs-server on 127.0.0.1 (`support/buckets.rs`), loaded with the tutorial's
//! layout in miniature under its bucket path: the import reads the parquet metadata and the images from the bucket,
//! records the URLs, and hashes as a local import of the same files does; a second fetch downloads nothing; an
//! interrupted fetch (cancelled half-way) and one whose cached files were removed download only what is missing;
//! the spec's folder URL is imported once by `run::inputs::prepare`; a missing object and a refused connection are
//! one-line errors naming the URL, with nothing stored.
//!
//! One test function: `STORAGE_EMULATOR_HOST` is process-wide.

#[path = "support/buckets.rs"]
mod buckets;

use std::path::{Path, PathBuf};

use experiments::data::remote::{self, RemoteSource};
use experiments::data::{self, ColumnMap, ImportOptions, OnError};
use experiments::events::{CancelToken, Event, NullObserver, Observer};
use experiments::run::inputs;
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::Store;
use experiments::Error;

const FOLDER: &str = "gs://datachain-demo/newyorker_caption_contest";

fn options(name: &str, metadata: &str, images: Option<&str>) -> ImportOptions {
    ImportOptions {
        name: name.into(),
        metadata: metadata.into(),
        images_dir: images.map(PathBuf::from),
        columns: ColumnMap::default(),
        on_error: OnError::Reject,
        extract_dir: None,
    }
}

/// Cancels once `after` images have been downloaded (the metadata file, a phase of one, comes first).
struct CancelAfter {
    after: usize,
    done: usize,
    total: usize,
}

impl Observer for CancelAfter {
    fn on_event(&mut self, event: &Event) {
        if let Event::Progress { done, total, .. } = event {
            (self.done, self.total) = (*done, *total);
        }
    }
    fn cancelled(&self) -> bool {
        self.total > 1 && self.done >= self.after
    }
}

fn tiny_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny_clip")
}

#[test]
fn a_gcs_dataset_imports_from_the_bucket_resumes_and_fails_clearly() {
    let root = tempfile::tempdir().expect("tempdir");
    let local = buckets::tutorial_bucket(&root.path().join("data"), "datachain-demo");
    let gcs = buckets::fake_gcs(&root.path().join("data"));
    std::env::set_var("STORAGE_EMULATOR_HOST", format!("127.0.0.1:{}", gcs.port));
    for k in ["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH", "GOOGLE_SERVICE_ACCOUNT_KEY"] {
        std::env::remove_var(k);
    }
    let home = root.path().join("home");
    let (meta_url, images_url) = (format!("{FOLDER}/new_yorker_meta.parquet"), format!("{FOLDER}/images"));

    // The import, from the bucket, is the local import of the same files plus where they came from.
    let opts = options("ny", &meta_url, Some(&images_url));
    let ds = remote::import_any(&opts, &home, &mut NullObserver, CancelToken::new()).unwrap_or_else(|e| panic!("{e}\n{}", gcs.log_text()));
    assert_eq!((ds.rows.len(), ds.images.len()), (4, 3));
    assert_eq!(ds.metadata_path, PathBuf::from(&meta_url));
    assert_eq!(ds.images_dir, Some(PathBuf::from(&images_url)));
    let cache = remote::cache_dir(&home);
    assert!(ds.images.iter().all(|i| i.path.starts_with(&cache)), "{:?}", ds.images);
    let here = data::import(
        &options("ny", local.join("new_yorker_meta.parquet").to_str().expect("utf-8"), local.join("images").to_str()),
        &mut NullObserver,
        CancelToken::new(),
    )
    .expect("local import");
    assert_eq!(ds.content_hash, here.content_hash, "the same data hashes the same, wherever it came from");

    // Again: every image is in the cache.
    let source = RemoteSource { metadata: meta_url.clone(), images: Some(images_url.clone()) };
    let fetch = |obs: &mut dyn Observer| remote::fetch_source(&source, &cache, obs, &CancelToken::new());
    let again = fetch(&mut NullObserver).expect("again").images_report.expect("images");
    assert_eq!((again.files, again.downloaded, again.reused), (3, 0, 3));

    // Interrupted: two cached files gone, or the fetch cancelled after one: only the missing ones come again.
    let view = cache.join("files/gs/datachain-demo/newyorker_caption_contest/images");
    std::fs::remove_file(view.join("527.png")).expect("rm");
    std::fs::remove_file(view.join("sub/612.png")).expect("rm");
    let r = fetch(&mut NullObserver).expect("refetch").images_report.expect("images");
    assert_eq!((r.downloaded, r.reused), (2, 1));
    std::fs::remove_dir_all(cache.join("files")).expect("rm cache view");
    let e = fetch(&mut CancelAfter { after: 1, done: 0, total: 0 }).expect_err("cancelled");
    assert!(matches!(e, Error::Cancelled), "{e:?}");
    let r = fetch(&mut NullObserver).expect("after the interruption").images_report.expect("images");
    assert_eq!(r.downloaded + r.reused, 3);
    assert!(r.reused >= 1 && r.downloaded <= 2, "{r:?}");

    // The spec's folder URL: found, imported once under its URL, then found in the store.
    let mut store = Store::open(&home).expect("store");
    let text = format!(
        "name = \"t\"\ndataset = \"{FOLDER}/\"\nmodel = {:?}\n[sample]\ntrain = 2\n",
        tiny_clip().display().to_string()
    );
    let spec = ExperimentSpec::from_toml(&text, None).expect("spec");
    let prepared = inputs::prepare(&mut store, &home, &spec, &mut NullObserver, &CancelToken::new()).expect("prepare");
    let id = prepared.dataset_id.expect("imported");
    let stored = store.dataset(&format!("{FOLDER}/")).expect("named by its URL");
    assert_eq!((stored.id, stored.n_samples), (id, 4));
    assert_eq!(stored.metadata_path, PathBuf::from(&meta_url));
    let second = inputs::prepare(&mut store, &home, &spec, &mut NullObserver, &CancelToken::new()).expect("again");
    assert!(second.dataset_id.is_none() && second.model.is_none());

    // Faults: one line naming the URL, nothing stored.
    let missing = format!("{FOLDER}/nothing.parquet");
    let e = remote::import_any(&options("x", &missing, Some(&images_url)), &home, &mut NullObserver, CancelToken::new())
        .expect_err("404");
    assert!(matches!(e, Error::Remote { status: Some(404), .. }), "{e:?}");
    assert!(e.to_string().starts_with(&missing) && !e.to_string().contains('\n'), "{e}");
    let closed = buckets::free_port();
    std::env::set_var("STORAGE_EMULATOR_HOST", format!("127.0.0.1:{closed}"));
    let e = remote::import_any(&opts, &home, &mut NullObserver, CancelToken::new()).expect_err("refused");
    assert!(e.to_string().starts_with(&meta_url) && !e.to_string().contains('\n'), "{e}");
    assert_eq!(store.datasets().expect("datasets").len(), 1, "no dataset from the failed imports");
}
