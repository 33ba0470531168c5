//! Model folders from the Hugging Face hub: `cliplab model pull`, `cliplab model list`, and hub ids
//! (`openai/clip-vit-base-patch32`, `owner/name@revision`) wherever a model folder is accepted.
//!
//! Downloads go through the hub's own Rust client (`hf-hub`, blocking) into the standard cache that `transformers`
//! and `huggingface_hub` use (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`:
//! `models--owner--name/{blobs,refs,snapshots}`), so a model Python downloaded is used as it is and one CLIP Lab
//! downloads loads in Python. `HF_ENDPOINT` (another hub or a mirror), `HF_TOKEN` (else the token file in
//! `$HF_HOME`) and `HF_HUB_OFFLINE` (the cache only, no request) are honoured as the Python client does.
//!
//! A pull asks the repository's file list with sizes and LFS hashes (`/api/models/REPO/revision/REV?blobs=true`),
//! refuses a repository that is not a CLIP model before downloading its weights (`config.json`'s `model_type`),
//! downloads only what is not in the snapshot yet, resumes a file a cut connection left half-way (the client's
//! `.part` file and a range request), and checks each file's size and, for LFS files, SHA-256 against the list:
//! a file that does not match is removed again and the pull fails naming its URL.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::events::{CancelToken, Event, NullObserver, Observer, Phase};
use crate::model::engine::{
    CONFIG_FILE, MERGES_FILE, PREPROCESSOR_FILE, PYTORCH_WEIGHTS_FILE, TOKENIZER_FILE, VOCAB_FILE, WEIGHTS_FILE,
};
use crate::{Error, Result};

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The prefix that marks a hub id where a bare `owner/name` would be a relative path (a spec's `model`).
pub const HF_PREFIX: &str = "hf://";

/// A model repository on the hub at a revision (a branch, tag or commit; `main` when not given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubId {
    pub repo: String,
    pub revision: String,
}

impl HubId {
    /// `owner/name`, `owner/name@revision`, each optionally after `hf://`; `None` for anything else. Owner and
    /// name are the hub's characters (letters, digits, `-`, `_`, `.`), so a path with more parts, a leading `.` or
    /// `/`, or a Windows drive is never taken for one.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.strip_prefix(HF_PREFIX).unwrap_or(s);
        let (repo, revision) = match s.split_once('@') {
            Some((r, v)) => (r, v),
            None => (s, "main"),
        };
        let (owner, name) = repo.split_once('/')?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && !p.starts_with(['.', '-'])
                && !p.contains("..")
                && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let rev_ok = !revision.is_empty()
            && !revision.contains("..")
            && revision.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        (part_ok(owner) && part_ok(name) && rev_ok).then(|| Self { repo: repo.to_string(), revision: revision.to_string() })
    }

    /// The hub id a model "folder" names: only when nothing exists at `path` and it reads as a hub id.
    pub fn from_model_path(path: &Path) -> Option<Self> {
        if path.exists() {
            return None;
        }
        path.to_str().and_then(Self::parse)
    }

    /// The repository's page on `endpoint` (used to name it in messages).
    pub fn url(&self, endpoint: &str) -> String {
        format!("{endpoint}/{}", self.repo)
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.revision == "main" {
            f.write_str(&self.repo)
        } else {
            write!(f, "{}@{}", self.repo, self.revision)
        }
    }
}

/// Where and how to reach the hub: [`HubConfig::from_env`] reads what the Python client reads.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The cache root (`…/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// The hub's base URL, without a trailing `/`.
    pub endpoint: String,
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE`: the cache only; a model not complete there is an error, nothing is requested.
    pub offline: bool,
    /// Further attempts at a download that broke off, each resuming where the last stopped.
    pub retries: usize,
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

impl HubConfig {
    /// `HF_HUB_CACHE` / `HF_HOME` / `XDG_CACHE_HOME`, `HF_ENDPOINT`, `HF_TOKEN` (else `$HF_HOME/token`),
    /// `HF_HUB_OFFLINE` (`1`, `true`, `yes`, `on`).
    pub fn from_env() -> Self {
        let hf_home = env_nonempty("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache = env_nonempty("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            cache.join("huggingface")
        });
        let cache_dir = env_nonempty("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| hf_home.join("hub"));
        let endpoint = env_nonempty("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let token = env_nonempty("HF_TOKEN").or_else(|| {
            let t = std::fs::read_to_string(hf_home.join("token")).ok()?;
            Some(t.trim().to_string()).filter(|t| !t.is_empty())
        });
        let offline = env_nonempty("HF_HUB_OFFLINE")
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        Self { cache_dir, endpoint: endpoint.trim_end_matches('/').to_string(), token, offline, retries: 3 }
    }

    fn repo_dir(&self, id: &HubId) -> PathBuf {
        self.cache_dir.join(Repo::model(id.repo.clone()).folder_name())
    }
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct PulledModel {
    pub id: HubId,
    /// The commit the revision resolved to.
    pub commit: String,
    /// The snapshot folder: a model folder every CLIP Lab command (and `transformers`) loads.
    pub folder: PathBuf,
    /// Files downloaded now, and bytes.
    pub downloaded: Vec<String>,
    pub downloaded_bytes: u64,
    /// Files already in the snapshot.
    pub cached: Vec<String>,
}

/// The repository listing the hub answers with `?blobs=true`.
#[derive(Debug, Deserialize)]
struct RepoListing {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Clone, Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Debug, Clone, Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

/// The model folder `path` names: `path` itself, unless nothing is there and it reads as a hub id; then the
/// cached snapshot of that model, pulled first (without progress) when the cache lacks it. Faces that show
/// progress pull with [`pull`] before they get here.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let Some(id) = HubId::from_model_path(path) else {
        return Ok(path.to_path_buf());
    };
    let cfg = HubConfig::from_env();
    if let Some(dir) = cached(&id, &cfg) {
        return Ok(dir);
    }
    Ok(pull(&id, &cfg, &mut NullObserver, &CancelToken::new())?.folder)
}

/// The snapshot folder of `id` when the cache holds a complete model folder for it (no request made).
pub fn cached(id: &HubId, cfg: &HubConfig) -> Option<PathBuf> {
    let repo = cfg.repo_dir(id);
    let commit = if is_commit(&id.revision) {
        id.revision.clone()
    } else {
        std::fs::read_to_string(repo.join("refs").join(&id.revision)).ok()?.trim().to_string()
    };
    let dir = repo.join("snapshots").join(commit);
    is_complete(&dir).then_some(dir)
}

fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit())
}

/// Whether `dir` holds every file a CLIP model folder needs (in either form).
fn is_complete(dir: &Path) -> bool {
    let has = |f: &str| dir.join(f).is_file();
    has(CONFIG_FILE)
        && has(PREPROCESSOR_FILE)
        && (has(TOKENIZER_FILE) || (has(VOCAB_FILE) && has(MERGES_FILE)))
        && (has(WEIGHTS_FILE) || has(PYTORCH_WEIGHTS_FILE))
}

/// Downloads what the cache lacks of model `id` (see the module docs) and returns its snapshot folder. Progress
/// goes to `obs` (phase `Load`, in bytes per file); `cancel` is honoured between files.
pub fn pull(id: &HubId, cfg: &HubConfig, obs: &mut dyn Observer, cancel: &CancelToken) -> Result<PulledModel> {
    let page = id.url(&cfg.endpoint);
    if cfg.offline {
        let folder = cached(id, cfg).ok_or_else(|| Error::Remote {
            url: page.clone(),
            status: None,
            code: None,
            message: format!(
                "HF_HUB_OFFLINE is set and the cache {} holds no complete copy of {id}",
                cfg.cache_dir.display()
            ),
        })?;
        let commit = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok(PulledModel { id: id.clone(), commit, folder, downloaded: vec![], downloaded_bytes: 0, cached: vec![] });
    }
    let api = ApiBuilder::from_cache(Cache::new(cfg.cache_dir.clone()))
        .with_endpoint(cfg.endpoint.clone())
        .with_token(cfg.token.clone())
        .with_progress(false)
        .with_retries(cfg.retries)
        .with_user_agent("cliplab", env!("CARGO_PKG_VERSION"))
        .build()
        .map_err(|e| api_error(&page, e))?;
    let repo = api.repo(Repo::with_revision(id.repo.clone(), RepoType::Model, id.revision.clone()));
    let listing = listing(&repo, id, cfg)?;
    let files = plan(&listing, id)?;
    let snapshot = cfg.repo_dir(id).join("snapshots").join(&listing.sha);
    obs.on_event(&Event::Info { message: format!("model {id}: commit {}", short(&listing.sha)) });
    let mut out = PulledModel {
        id: id.clone(),
        commit: listing.sha.clone(),
        folder: snapshot.clone(),
        downloaded: vec![],
        downloaded_bytes: 0,
        cached: vec![],
    };
    for (i, file) in files.iter().enumerate() {
        if cancel.is_cancelled() || obs.cancelled() {
            return Err(Error::Cancelled);
        }
        let url = repo.url(&file.rfilename);
        let target = snapshot.join(&file.rfilename);
        if target.is_file() && verify(&target, file, &url).is_ok() {
            out.cached.push(file.rfilename.clone());
        } else {
            // A snapshot entry that fails its check would stay as it is (the client keeps what is there).
            discard(&target);
            let path = download(&repo, file, &url, obs)?;
            if path.parent() != Some(snapshot.as_path()) {
                return Err(Error::Remote {
                    url,
                    status: None,
                    code: None,
                    message: format!("the revision `{}` moved during the pull; pull again", id.revision),
                });
            }
            out.downloaded_bytes += file_size(&path);
            out.downloaded.push(file.rfilename.clone());
        }
        if i == 0 {
            check_is_clip(&snapshot.join(CONFIG_FILE), id)?;
        }
    }
    write_ref(cfg, id, &listing.sha)?;
    Ok(out)
}

/// The repository's listing, with sizes and LFS hashes.
fn listing(repo: &ApiRepo, id: &HubId, cfg: &HubConfig) -> Result<RepoListing> {
    let url = format!("{}/api/models/{}/revision/{}", cfg.endpoint, id.repo, id.revision);
    match repo.info_request().query("blobs", "true").call() {
        Ok(resp) => resp.into_json::<RepoListing>().map_err(|e| Error::Remote {
            url,
            status: None,
            code: None,
            message: format!("not a model listing the hub would send: {e}"),
        }),
        Err(e) => {
            let text = e.to_string();
            let status = e.into_response().map(|r| r.status());
            Err(request_error(&url, status, &text, &format!("no model {id} on {}", cfg.endpoint)))
        }
    }
}

/// One line for a failed request: what the status means here.
fn request_error(url: &str, status: Option<u16>, text: &str, not_found: &str) -> Error {
    let message = match status {
        Some(404) => format!("{not_found} (HTTP 404)"),
        Some(401 | 403) => format!(
            "access denied (HTTP {}): the repository is private or gated; set HF_TOKEN to a token that may read it",
            status.unwrap_or_default()
        ),
        Some(s) => format!("the hub answered HTTP {s}"),
        None => format!("cannot reach the hub: {text}"),
    };
    Error::Remote { url: url.to_string(), status, code: None, message }
}

/// An `hf-hub` error on `url` as one line.
fn api_error(url: &str, e: ApiError) -> Error {
    match e {
        ApiError::RequestError(e) => {
            let text = e.to_string();
            let status = (*e).into_response().map(|r| r.status());
            request_error(url, status, &text, "no such file")
        }
        ApiError::TooManyRetries(inner) => api_error(url, *inner),
        ApiError::IoError(e) => Error::Remote {
            url: url.to_string(),
            status: None,
            code: None,
            message: format!("the download broke off: {e} (pull again: it resumes where it stopped)"),
        },
        ApiError::LockAcquisition(p) => Error::Remote {
            url: url.to_string(),
            status: None,
            code: None,
            message: format!("another process is downloading this file ({} is locked)", p.display()),
        },
        other => Error::Remote { url: url.to_string(), status: None, code: None, message: other.to_string() },
    }
}

/// The files to fetch, `config.json` first (checked before anything large comes): refuses repositories that lack
/// a file CLIP Lab needs in every form it reads.
fn plan(listing: &RepoListing, id: &HubId) -> Result<Vec<Sibling>> {
    let find = |name: &str| listing.siblings.iter().find(|s| s.rfilename == name).cloned();
    let not_clip = |message: String| Error::NotClip { repo: id.to_string(), message };
    let mut files = Vec::new();
    for name in [CONFIG_FILE, PREPROCESSOR_FILE] {
        files.push(find(name).ok_or_else(|| not_clip(format!("it has no {name}")))?);
    }
    match (find(TOKENIZER_FILE), find(VOCAB_FILE), find(MERGES_FILE)) {
        (Some(t), _, _) => files.push(t),
        (None, Some(v), Some(m)) => files.extend([v, m]),
        _ => return Err(not_clip(format!("it has neither {TOKENIZER_FILE} nor {VOCAB_FILE} + {MERGES_FILE}"))),
    }
    let weights = find(WEIGHTS_FILE).or_else(|| find(PYTORCH_WEIGHTS_FILE));
    files.push(weights.ok_or_else(|| not_clip(format!("it has neither {WEIGHTS_FILE} nor {PYTORCH_WEIGHTS_FILE}")))?);
    Ok(files)
}

/// Refuses a `config.json` that is not a CLIP model's (`model_type` must be `clip`).
fn check_is_clip(config: &Path, id: &HubId) -> Result<()> {
    let json: serde_json::Value = serde_json::from_slice(&crate::error::read_file(config)?)
        .map_err(|e| Error::NotClip { repo: id.to_string(), message: format!("its config.json is not JSON: {e}") })?;
    match json.get("model_type").and_then(|t| t.as_str()) {
        Some("clip") => Ok(()),
        other => Err(Error::NotClip {
            repo: id.to_string(),
            message: format!(
                "its config.json says model_type = {}, not \"clip\"",
                other.map_or_else(|| "nothing".to_string(), |t| format!("{t:?}"))
            ),
        }),
    }
}

/// Downloads one file into the cache with progress, and checks it.
fn download(repo: &ApiRepo, file: &Sibling, url: &str, obs: &mut dyn Observer) -> Result<PathBuf> {
    let size = expected_size(file);
    obs.on_event(&Event::Info {
        message: format!("downloading {} ({})", file.rfilename, size.map_or_else(|| "size unknown".into(), crate::fsio::human_bytes)),
    });
    let progress = BytesProgress::new(obs);
    let path = repo.download_with_progress(&file.rfilename, progress).map_err(|e| api_error(url, e))?;
    if let Err(e) = verify(&path, file, url) {
        discard(&path);
        return Err(e);
    }
    Ok(path)
}

fn expected_size(file: &Sibling) -> Option<u64> {
    file.lfs.as_ref().map(|l| l.size).or(file.size)
}

/// The file's size and, for an LFS file, SHA-256 against the listing.
fn verify(path: &Path, file: &Sibling, url: &str) -> Result<()> {
    let integrity = |message: String| Error::Integrity { url: url.to_string(), message };
    let got = file_size(path);
    if let Some(want) = expected_size(file) {
        if got != want {
            return Err(integrity(format!("downloaded {got} bytes but the hub lists {want}; the copy was removed")));
        }
    }
    if let Some(lfs) = &file.lfs {
        let hash = sha256_hex(path)?;
        if !hash.eq_ignore_ascii_case(&lfs.sha256) {
            return Err(integrity(format!(
                "SHA-256 {} but the hub lists {}; the copy was removed",
                short(&hash),
                short(&lfs.sha256)
            )));
        }
    }
    Ok(())
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn sha256_hex(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(h.finalize()))
}

/// Removes a snapshot entry that failed its check and the blob it points to, so nothing unverified stays.
fn discard(pointer: &Path) {
    let blob = std::fs::canonicalize(pointer).ok();
    for p in [Some(pointer.to_path_buf()), blob].into_iter().flatten() {
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %p.display(), "cannot remove a download that failed its check: {e}");
            }
        }
    }
}

/// Records `refs/REVISION` → `commit` (what the Python client writes), unless the revision is a commit.
fn write_ref(cfg: &HubConfig, id: &HubId, commit: &str) -> Result<()> {
    if is_commit(&id.revision) {
        return Ok(());
    }
    let path = cfg.repo_dir(id).join("refs").join(&id.revision);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(&path, commit).map_err(|e| Error::io(&path, e))
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// `hf-hub`'s progress callbacks as the core's events: one `Load` phase per file, counted in bytes, at most ten
/// progress events a second and always the last.
struct BytesProgress<'a> {
    obs: &'a mut dyn Observer,
    total: usize,
    done: usize,
    started: Option<Instant>,
    last: Option<Instant>,
}

impl<'a> BytesProgress<'a> {
    fn new(obs: &'a mut dyn Observer) -> Self {
        Self { obs, total: 0, done: 0, started: None, last: None }
    }

    fn report(&mut self, force: bool) {
        let now = Instant::now();
        if !force && self.last.is_some_and(|t| now.duration_since(t).as_millis() < 100) {
            return;
        }
        self.last = Some(now);
        let elapsed_s = self.started.map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        let rate = if elapsed_s > 0.0 { self.done as f64 / elapsed_s } else { 0.0 };
        let eta_s = if rate > 0.0 { self.total.saturating_sub(self.done) as f64 / rate } else { 0.0 };
        self.obs.on_event(&Event::Progress { phase: Phase::Load, done: self.done, total: self.total, elapsed_s, eta_s });
    }
}

impl hf_hub::api::Progress for BytesProgress<'_> {
    /// Called when a download starts and again when it resumes (then `update` gives the bytes already there).
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size;
        self.done = 0;
        if self.started.is_none() {
            self.started = Some(Instant::now());
            self.obs.on_event(&Event::PhaseStarted { phase: Phase::Load, total: size });
        }
    }

    fn update(&mut self, size: usize) {
        self.done = (self.done + size).min(self.total);
        self.report(false);
    }

    fn finish(&mut self) {
        self.report(true);
    }
}

/// A CLIP model in the hub cache.
#[derive(Debug, Clone, Serialize)]
pub struct CachedModel {
    /// `owner/name`.
    pub repo: String,
    pub commit: String,
    /// The branches and tags (`refs/`) that point at this commit.
    pub revisions: Vec<String>,
    pub folder: PathBuf,
    /// Bytes of its files.
    pub bytes: u64,
}

/// The complete CLIP model folders in the cache (`config.json` with `model_type` `clip`), by repository.
pub fn list_cached(cfg: &HubConfig) -> Result<Vec<CachedModel>> {
    let entries = match std::fs::read_dir(&cfg.cache_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&cfg.cache_dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(repo) = name.strip_prefix("models--").map(|r| r.replace("--", "/")) else { continue };
        let refs = read_refs(&entry.path().join("refs"));
        let Ok(snapshots) = std::fs::read_dir(entry.path().join("snapshots")) else { continue };
        for snap in snapshots.flatten() {
            let folder = snap.path();
            let id = HubId { repo: repo.clone(), revision: "main".into() };
            if !is_complete(&folder) || check_is_clip(&folder.join(CONFIG_FILE), &id).is_err() {
                continue;
            }
            let commit = snap.file_name().to_string_lossy().into_owned();
            let revisions = refs.iter().filter(|(_, c)| *c == commit).map(|(r, _)| r.clone()).collect();
            let bytes = std::fs::read_dir(&folder)
                .map(|d| d.flatten().map(|f| file_size(&f.path())).sum())
                .unwrap_or(0);
            out.push(CachedModel { repo: repo.clone(), commit, revisions, folder, bytes });
        }
    }
    out.sort_by(|a, b| (&a.repo, &a.commit).cmp(&(&b.repo, &b.commit)));
    Ok(out)
}

/// `refs/NAME` → commit (one level: branch names with `/` are left out of the listing).
fn read_refs(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let commit = std::fs::read_to_string(e.path()).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), commit.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_told_from_paths() {
        let id = HubId::parse("openai/clip-vit-base-patch32").expect("an id");
        assert_eq!((id.repo.as_str(), id.revision.as_str()), ("openai/clip-vit-base-patch32", "main"));
        let id = HubId::parse("hf://openai/clip-vit-base-patch32@v1.0").expect("an id with a revision");
        assert_eq!((id.repo.as_str(), id.revision.as_str()), ("openai/clip-vit-base-patch32", "v1.0"));
        assert_eq!(id.to_string(), "openai/clip-vit-base-patch32@v1.0");
        for path in ["models/clip/base", "./openai/clip", "/openai/clip", "../a/b", "clip", "C:\\a\\b", "a/b@", "a/ b"] {
            assert_eq!(HubId::parse(path), None, "{path}");
        }
    }

}
