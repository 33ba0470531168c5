//! Datasets from s3:// (and a metadata file over plain HTTP) against moto's S3 server on 127.0.0.1
//! (`support/buckets.rs`): a public bucket is read anonymously; a private one is refused with one line that says
//! it needs credentials, and read once `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` are set.
//!
//! One test function: the `AWS_*` variables are process-wide.

#[path = "support/buckets.rs"]
mod buckets;

use std::path::PathBuf;

use experiments::data::remote;
use experiments::data::{ColumnMap, ImportOptions, OnError};
use experiments::events::{CancelToken, NullObserver};
use experiments::Error;

fn options(metadata: &str, images: &str) -> ImportOptions {
    ImportOptions {
        name: "ny".into(),
        metadata: metadata.into(),
        images_dir: Some(PathBuf::from(images)),
        columns: ColumnMap::default(),
        on_error: OnError::Reject,
        extract_dir: None,
    }
}

#[test]
fn s3_buckets_are_read_anonymously_when_public_and_with_credentials_when_not() {
    let root = tempfile::tempdir().expect("tempdir");
    let folder = buckets::tutorial_bucket(&root.path().join("data"), "any");
    let moto = buckets::moto();
    buckets::s3_put(&moto.url(), "open", "ny", &folder, true);
    buckets::s3_put(&moto.url(), "closed", "ny", &folder, false);
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT"] {
        std::env::remove_var(k);
    }
    std::env::set_var("AWS_ENDPOINT_URL", moto.url());
    let home = root.path().join("home");

    // Public: anonymous; the metadata over plain HTTP (a GET of the public object), the images listed over S3.
    let meta_http = format!("{}/open/ny/new_yorker_meta.parquet", moto.url());
    let ds = remote::import_any(&options(&meta_http, "s3://open/ny/images"), &home, &mut NullObserver, CancelToken::new())
        .unwrap_or_else(|e| panic!("{e}\n{}", moto.log_text()));
    assert_eq!((ds.rows.len(), ds.images.len()), (4, 3));
    assert_eq!(ds.metadata_path, PathBuf::from(&meta_http));

    // Private, anonymous: refused in one line naming the object and saying what to set.
    let closed = options("s3://closed/ny/new_yorker_meta.parquet", "s3://closed/ny/images");
    let e = remote::import_any(&closed, &home, &mut NullObserver, CancelToken::new()).expect_err("private");
    assert!(matches!(e, Error::Remote { status: Some(403), .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("s3://closed/ny/new_yorker_meta.parquet") && msg.contains("AWS_ACCESS_KEY_ID"), "{msg}");

    // With credentials from the environment it reads, and hashes as the public copy.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let private = remote::import_any(&closed, &home, &mut NullObserver, CancelToken::new()).expect("with credentials");
    assert_eq!(private.content_hash, ds.content_hash);
}
