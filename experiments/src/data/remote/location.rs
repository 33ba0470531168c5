//! A `gs://`, `s3://` or `http(s)://` URL as an `object_store` client and the object path under it, with the
//! credentials and endpoints the standard environment gives (see [`super`]'s docs).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::{Error, Result};

/// The URL schemes an import reads from.
pub const SCHEMES: [&str; 4] = ["gs://", "s3://", "https://", "http://"];

/// Whether `s` is a URL an import reads from (rather than a local path).
pub fn is_url(s: &str) -> bool {
    SCHEMES.iter().any(|p| s.len() > p.len() && s[..p.len()].eq_ignore_ascii_case(p))
}

/// One URL opened: the store (a bucket, or a web server) and the object path in it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The URL as given, without a trailing `/`: what messages name.
    pub url: String,
    /// `gs`, `s3`, `http` or `https`.
    pub scheme: String,
    /// The bucket, or the host (with port) of an `http(s)` URL.
    pub authority: String,
    pub store: Arc<dyn ObjectStore>,
    /// The object (or folder) path inside the store.
    pub path: ObjectPath,
}

impl Location {
    /// The URL of `path` (an object of this store).
    pub fn url_of(&self, path: &ObjectPath) -> String {
        format!("{}://{}/{}", self.scheme, self.authority, path)
    }
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// Opens `url` (see the module docs).
pub fn open(url: &str) -> Result<Location> {
    // reqwest is built without a default TLS crypto provider (see the workspace's Cargo.toml): use ring. An error
    // only says a provider is installed already (an earlier call, or the program's own), which serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let trimmed = url.trim().trim_end_matches('/');
    let invalid = |why: &str| Error::Invalid(format!("{url}: {why}"));
    let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| invalid("not a gs://, s3:// or https:// URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(invalid("no bucket or host in it"));
    }
    let store: Arc<dyn ObjectStore> = match scheme.as_str() {
        "gs" => Arc::new(gcs(authority).build().map_err(|e| store_error(url, e))?),
        "s3" => Arc::new(s3(authority).build().map_err(|e| store_error(url, e))?),
        "http" | "https" => Arc::new(
            HttpBuilder::new()
                .with_url(format!("{scheme}://{authority}"))
                .with_client_options(client_options(scheme == "http"))
                .with_retry(retry())
                .build()
                .map_err(|e| store_error(url, e))?,
        ),
        _ => return Err(invalid("not a gs://, s3:// or https:// URL")),
    };
    Ok(Location {
        url: trimmed.to_string(),
        scheme,
        authority: authority.to_string(),
        store,
        path: ObjectPath::from(path),
    })
}

fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new().with_allow_http(allow_http).with_connect_timeout(Duration::from_secs(10))
}

/// A few retries with backoff for transient failures (connection resets, 5xx), within a minute.
fn retry() -> RetryConfig {
    RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(60), ..Default::default() }
}

/// GCS: anonymous unless credentials are in the environment; `STORAGE_EMULATOR_HOST` (as Google's clients read it:
/// `host:port` or a URL) for an emulator.
fn gcs(bucket: &str) -> GoogleCloudStorageBuilder {
    let has_credentials = ["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_PATH", "GOOGLE_SERVICE_ACCOUNT_KEY"]
        .iter()
        .any(|k| env_nonempty(k).is_some());
    let emulator = env_nonempty("STORAGE_EMULATOR_HOST")
        .map(|h| if h.contains("://") { h } else { format!("http://{h}") });
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(client_options(emulator.as_deref().is_some_and(|e| e.starts_with("http://"))));
    if !has_credentials {
        b = b.with_skip_signature(true);
    }
    if let Some(base) = emulator {
        b = b.with_base_url(base.trim_end_matches('/'));
    }
    b
}

/// S3: anonymous unless `AWS_ACCESS_KEY_ID` (or a web identity / container credential) is set; the endpoint from
/// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or `AWS_ENDPOINT` (path-style requests, as S3 emulators want).
fn s3(bucket: &str) -> AmazonS3Builder {
    let has_credentials = ["AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        .iter()
        .any(|k| env_nonempty(k).is_some());
    let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"].iter().find_map(|k| env_nonempty(k));
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry())
        .with_client_options(client_options(endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))));
    if env_nonempty("AWS_REGION").is_none() && env_nonempty("AWS_DEFAULT_REGION").is_none() {
        b = b.with_region("us-east-1");
    }
    if let Some(endpoint) = endpoint {
        b = b.with_endpoint(endpoint.trim_end_matches('/'));
    }
    if !has_credentials {
        b = b.with_skip_signature(true);
    }
    b
}

/// An `object_store` error on `url` as one line that says what to do.
pub fn store_error(url: &str, e: object_store::Error) -> Error {
    use object_store::Error as E;
    let (status, message) = match &e {
        E::NotFound { .. } => (Some(404), "not found (HTTP 404)".to_string()),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => (
            Some(403),
            "access denied: this bucket needs credentials (set GOOGLE_APPLICATION_CREDENTIALS for gs://, \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://)"
                .to_string(),
        ),
        _ => (None, format!("cannot read it: {}", one_line(&e))),
    };
    Error::Remote { url: url.to_string(), status, code: None, message }
}

/// An error with its causes on one line (object_store's own messages nest their sources).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        for url in ["gs://b/p", "s3://b", "https://h/x.parquet", "HTTP://h/x"] {
            assert!(is_url(url), "{url}");
        }
        for path in ["data/meta.parquet", "/abs/gs://x", "gs://", "C:\\data"] {
            assert!(!is_url(path), "{path}");
        }
    }
}
