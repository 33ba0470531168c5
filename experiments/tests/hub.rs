//! Models from the Hugging Face hub, against a fake hub on 127.0.0.1 (`support/fake_hub.rs`) serving the tiny
//! reference CLIP: the pull lands in the standard cache layout and loads; a second pull downloads nothing; offline
//! mode reads the cache only; and the faults, each one line naming the URL with nothing unverified left behind:
//! 404, connection refused, a download cut half-way (then resumed by a range request), a hash mismatch, a size
//! mismatch, a repository that is not CLIP.

#[path = "support/fake_hub.rs"]
mod fake_hub;

use std::path::{Path, PathBuf};

use candle_core::Device;
use experiments::events::{CancelToken, NullObserver, Recorder};
use experiments::model::clip::FreezeSpec;
use experiments::model::engine::{self, ClipBundle};
use experiments::model::hub::{self, HubConfig, HubId};
use experiments::Error;
use fake_hub::{repo_files, FakeHub, Faults, RepoFile, COMMIT};

const FILES: [&str; 4] = ["config.json", "preprocessor_config.json", "tokenizer.json", "model.safetensors"];

fn tiny_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny_clip")
}

/// A hub serving `tiny/clip`, and a config pointing at it with an empty cache in `dir`.
fn hub_with_tiny(dir: &Path) -> (FakeHub, HubConfig) {
    let hub = FakeHub::start();
    hub.add_repo("tiny/clip", repo_files(&tiny_clip(), &FILES));
    let cfg = HubConfig { cache_dir: dir.join("hub"), endpoint: hub.endpoint.clone(), token: None, offline: false, retries: 0 };
    (hub, cfg)
}

fn id(s: &str) -> HubId {
    HubId::parse(s).expect("hub id")
}

fn pull(cfg: &HubConfig, repo: &str) -> experiments::Result<hub::PulledModel> {
    hub::pull(&id(repo), cfg, &mut NullObserver, &CancelToken::new())
}

/// A pull of `tiny/clip` from a hub with `faults`, which must fail: the hub, the config and the error.
fn failed_pull(dir: &Path, faults: Faults) -> (FakeHub, HubConfig, Error) {
    let (hub, cfg) = hub_with_tiny(dir);
    hub.set_faults(faults);
    let e = pull(&cfg, "tiny/clip").expect_err("the faulty pull fails");
    (hub, cfg, e)
}

/// After a failed pull: `file` is not in the snapshot and the model does not count as cached.
fn assert_not_kept(cfg: &HubConfig, file: &str) {
    let snapshot = cfg.cache_dir.join("models--tiny--clip/snapshots").join(COMMIT);
    assert!(!snapshot.join(file).exists(), "no {file} in the snapshot");
    assert!(hub::cached(&id("tiny/clip"), cfg).is_none());
}

/// How many blobs of the cache are `len` bytes long.
fn blobs_of_len(cfg: &HubConfig, len: u64) -> usize {
    std::fs::read_dir(cfg.cache_dir.join("models--tiny--clip/blobs"))
        .expect("blobs")
        .flatten()
        .filter(|b| b.metadata().map(|m| m.len()).unwrap_or(0) == len)
        .count()
}

#[test]
fn a_pull_fills_the_standard_cache_loads_and_is_not_repeated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, cfg) = hub_with_tiny(dir.path());
    let mut events = Recorder::default();
    let pulled = hub::pull(&id("tiny/clip"), &cfg, &mut events, &CancelToken::new()).expect("pull");
    let repo = cfg.cache_dir.join("models--tiny--clip");
    assert_eq!(pulled.folder, repo.join("snapshots").join(COMMIT));
    assert_eq!(std::fs::read_to_string(repo.join("refs/main")).expect("ref"), COMMIT);
    for f in FILES {
        assert_eq!(std::fs::read(pulled.folder.join(f)).expect(f), std::fs::read(tiny_clip().join(f)).expect(f), "{f}");
    }
    assert_eq!(pulled.downloaded.len(), 4);
    assert!(events.events.iter().any(|e| matches!(e, experiments::events::Event::Progress { done, total, .. } if done == total && *total > 1000)));

    // It loads, and is the reference model.
    let loaded = ClipBundle::load(&pulled.folder, &Device::Cpu, &FreezeSpec::default()).expect("load");
    let reference = ClipBundle::load(&tiny_clip(), &Device::Cpu, &FreezeSpec::default()).expect("load reference");
    assert_eq!(loaded.config, reference.config);
    let listed = hub::list_cached(&cfg).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].repo.as_str(), listed[0].revisions.clone()), ("tiny/clip", vec!["main".to_string()]));

    // Again: the listing is asked, nothing is downloaded.
    let before = hub.log().len();
    let again = pull(&cfg, "tiny/clip").expect("second pull");
    assert!(again.downloaded.is_empty() && again.cached.len() == 4, "{again:?}");
    let new: Vec<String> = hub.log()[before..].to_vec();
    assert!(new.iter().all(|r| r.starts_with("GET /api/models/")), "{new:?}");

    // Offline: the cache only, no request at all.
    let offline = HubConfig { offline: true, ..cfg.clone() };
    let before = hub.log().len();
    assert_eq!(pull(&offline, "tiny/clip").expect("offline").folder, pulled.folder);
    assert_eq!(hub.log().len(), before);
    let e = pull(&offline, "tiny/other").expect_err("not cached").to_string();
    assert!(e.contains("HF_HUB_OFFLINE") && e.contains("tiny/other"), "{e}");
}

#[test]
fn a_download_cut_half_way_fails_clearly_and_the_next_pull_resumes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, cfg, e) =
        failed_pull(dir.path(), Faults { cut_once: Some("model.safetensors".into()), ..Default::default() });
    let msg = e.to_string();
    assert!(msg.contains("/tiny/clip/resolve/main/model.safetensors") && msg.contains("broke off"), "{msg}");
    assert_not_kept(&cfg, "model.safetensors");

    let pulled = pull(&cfg, "tiny/clip").expect("resumed");
    let size = std::fs::metadata(tiny_clip().join("model.safetensors")).expect("size").len();
    let resumed = hub.log().iter().any(|r| {
        r.contains("model.safetensors [bytes=")
            && r.trim_end_matches("-]").rsplit('=').next().and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > 0 && n < size)
    });
    assert!(resumed, "a range request from the half already there: {:?}", hub.log());
    assert_eq!(
        std::fs::read(pulled.folder.join("model.safetensors")).expect("weights"),
        std::fs::read(tiny_clip().join("model.safetensors")).expect("reference")
    );
    engine::check_model_folder(&pulled.folder).expect("a complete model");
}

#[test]
fn a_file_whose_hash_differs_from_the_listing_is_refused_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_hub, cfg, e) =
        failed_pull(dir.path(), Faults { corrupt: Some("model.safetensors".into()), ..Default::default() });
    assert!(matches!(e, Error::Integrity { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("/tiny/clip/resolve/main/model.safetensors") && msg.contains("SHA-256"), "{msg}");
    let weights_len = std::fs::metadata(tiny_clip().join("model.safetensors")).expect("len").len();
    assert_eq!(blobs_of_len(&cfg, weights_len), 0, "the bad weights are not kept as a blob");
    assert_not_kept(&cfg, "model.safetensors");
}

/// `tokenizer.json` is not an LFS file: the listing gives its size only, and that is what catches a short copy.
#[test]
fn a_file_shorter_than_the_listing_is_refused_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, cfg, e) = failed_pull(dir.path(), Faults { short: Some("tokenizer.json".into()), ..Default::default() });
    assert!(matches!(e, Error::Integrity { .. }), "{e:?}");
    let msg = e.to_string();
    let want = std::fs::metadata(tiny_clip().join("tokenizer.json")).expect("len").len();
    assert!(
        msg.contains("/tiny/clip/resolve/main/tokenizer.json")
            && msg.contains(&format!("downloaded {} bytes but the hub lists {want}", want - 10))
            && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(blobs_of_len(&cfg, want - 10), 0, "the short copy is not kept as a blob");
    assert_not_kept(&cfg, "tokenizer.json");

    // The hub fixed: the next pull fetches the file again and completes.
    hub.set_faults(Faults::default());
    let pulled = pull(&cfg, "tiny/clip").expect("pull after the fix");
    assert!(pulled.downloaded.contains(&"tokenizer.json".to_string()), "{pulled:?}");
    engine::check_model_folder(&pulled.folder).expect("a complete model");
}

#[test]
fn missing_repositories_refused_connections_and_non_clip_repositories_are_one_line_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, cfg) = hub_with_tiny(dir.path());

    let e = pull(&cfg, "nobody/nothing").expect_err("404");
    assert!(matches!(e, Error::Remote { status: Some(404), .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("{}/api/models/nobody/nothing/revision/main", hub.endpoint)) && msg.contains("404"), "{msg}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    let refused = HubConfig { endpoint: format!("http://{closed}"), ..cfg.clone() };
    let msg = pull(&refused, "tiny/clip").expect_err("refused").to_string();
    assert!(msg.contains(&closed.to_string()) && msg.contains("cannot reach the hub"), "{msg}");

    // A BERT repository: refused from its config.json, before any weights are fetched.
    let mut bert = repo_files(&tiny_clip(), &FILES);
    bert[0] = RepoFile { name: "config.json".into(), bytes: br#"{"model_type": "bert"}"#.to_vec(), lfs: false };
    hub.add_repo("google/bert-tiny", bert);
    let e = pull(&cfg, "google/bert-tiny").expect_err("not CLIP");
    assert!(matches!(e, Error::NotClip { .. }), "{e:?}");
    assert!(e.to_string().contains("google/bert-tiny") && e.to_string().contains("\"bert\""), "{e}");
    assert!(!hub.log().iter().any(|r| r.contains("bert-tiny/resolve/main/model.safetensors")), "no weights fetched");

    // A repository without weights in a form CLIP Lab reads.
    hub.add_repo("tiny/no-weights", repo_files(&tiny_clip(), &FILES[..3]));
    let msg = pull(&cfg, "tiny/no-weights").expect_err("no weights").to_string();
    assert!(msg.contains("tiny/no-weights") && msg.contains("model.safetensors nor pytorch_model.bin"), "{msg}");
}

/// `hf://owner/name` where a model folder goes: resolved through the environment (`HF_HUB_CACHE`, `HF_ENDPOINT`)
/// and pulled on first use. The only test here that reads the environment.
#[test]
fn a_hub_id_is_a_model_folder_pulled_on_first_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_hub, cfg) = hub_with_tiny(dir.path());
    std::env::set_var("HF_HUB_CACHE", &cfg.cache_dir);
    std::env::set_var("HF_ENDPOINT", &cfg.endpoint);
    std::env::remove_var("HF_HUB_OFFLINE");
    let config = engine::check_model_folder(Path::new("hf://tiny/clip")).expect("resolved and pulled");
    assert_eq!(config, engine::check_model_folder(&tiny_clip()).expect("reference"));
    assert!(hub::cached(&id("tiny/clip"), &cfg).is_some());
    // A folder that exists wins over a hub id of the same spelling.
    assert_eq!(hub::resolve(&tiny_clip()).expect("a folder"), tiny_clip());
}
