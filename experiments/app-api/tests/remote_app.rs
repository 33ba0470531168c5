//! The app's "Download model…" and "Import from URL…" against real servers on 127.0.0.1 (the core's fake hub and
//! fake-gcs-server): a hub model lands in the Hugging Face cache, reports progress as the page's job, becomes a
//! model an experiment may name, and is found again by a new app from the cache alone; a bucket folder URL becomes
//! a draft whose preview downloads and validates, and the stored dataset says where it came from. One test: it
//! sets the process's environment (HF_*, STORAGE_EMULATOR_HOST).

#[path = "../../tests/support/buckets.rs"]
mod buckets;
#[path = "../../tests/support/fake_hub.rs"]
mod fake_hub;

use std::path::Path;
use std::sync::Arc;

use cliplab_api::app::{App, RecordingSink};
use cliplab_api::picker::ScriptedPicker;
use cliplab_api::views::AppEvent;
use experiments::data::ColumnMap;
use fake_hub::{repo_files, FakeHub};

const FILES: [&str; 4] = ["config.json", "preprocessor_config.json", "tokenizer.json", "model.safetensors"];

fn open(home: &Path) -> (Arc<App>, Arc<RecordingSink>) {
    let sink = Arc::new(RecordingSink::default());
    (App::open(home, Box::new(ScriptedPicker::default()), sink.clone()).expect("open app"), sink)
}

#[test]
fn hub_models_and_bucket_datasets_through_the_app_commands() {
    let root = tempfile::tempdir().expect("tempdir");
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/tiny_clip");
    let hub = FakeHub::start();
    hub.add_repo("tiny/clip", repo_files(&tiny, &FILES));
    let hf_cache = root.path().join("hf/hub");
    std::env::set_var("HF_ENDPOINT", &hub.endpoint);
    std::env::set_var("HF_HUB_CACHE", &hf_cache);
    std::env::remove_var("HF_HUB_OFFLINE");
    let home = root.path().join("home");
    let (app, sink) = open(&home);

    // "Download model…": refused ids are one line; the pull reports as job 5 and offers the model.
    let bad = app.pull_model(4, "not a repo id").expect_err("bad id").to_string();
    assert!(bad.contains("not a hub model id"), "{bad}");
    let model = app.pull_model(5, "tiny/clip").expect("pull");
    assert_eq!((model.name.as_str(), model.source.as_str()), ("tiny/clip", "hub"));
    assert!(model.path.starts_with(&hf_cache), "{model:?}");
    let jobs: Vec<u64> = cliplab_api::app::lock(&sink.events)
        .iter()
        .filter_map(|e| if let AppEvent::Job { job, .. } = e { Some(*job) } else { None })
        .collect();
    assert!(!jobs.is_empty() && jobs.iter().all(|&j| j == 5), "{jobs:?}");
    assert!(app.models().expect("models").iter().any(|m| m.path == model.path));
    // A missing repository: one line naming it; nothing offered.
    let missing = app.pull_model(6, "tiny/none").expect_err("missing").to_string();
    assert!(missing.contains("tiny/none") && !missing.contains('\n'), "{missing}");
    // A new app (a restart) finds the model in the cache, without the hub.
    let requests = hub.log().len();
    let (again, _) = open(&root.path().join("other-home"));
    assert!(again.models().expect("models").iter().any(|m| m.path == model.path && m.name == "tiny/clip"));
    assert_eq!(hub.log().len(), requests, "listing the cache asks the hub nothing");

    // "Import from URL…": the tutorial's bucket folder (metadata + images/) from fake-gcs-server.
    let data = root.path().join("data");
    buckets::tutorial_bucket(&data, "datachain-demo");
    let gcs = buckets::fake_gcs(&data);
    std::env::set_var("STORAGE_EMULATOR_HOST", format!("127.0.0.1:{}", gcs.port));
    let not_url = app.import_url("/tmp/x.parquet", None).expect_err("not a URL").to_string();
    assert!(not_url.contains("not a gs://"), "{not_url}");
    let folder = "gs://datachain-demo/newyorker_caption_contest/";
    let draft = app.import_url(folder, None).unwrap_or_else(|e| panic!("{e}\n{}", gcs.log_text()));
    assert_eq!(draft.name, "new_yorker_meta");
    let preview = app.preview_import(draft.token, "ny", ColumnMap::default()).expect("preview");
    assert!(preview.importable, "{preview:?}");
    assert_eq!(preview.report.valid_rows, 4);
    let ds = app.confirm_import(draft.token, false).expect("import");
    assert_eq!(ds.n_samples, 4);
    assert_eq!(ds.metadata_path.to_string_lossy(), format!("{folder}new_yorker_meta.parquet"));

    // The downloaded model and the bucket dataset make a valid experiment.
    let mut spec = app.default_spec().expect("spec");
    spec.name = "from the hub".into();
    spec.dataset = ds.name.clone();
    spec.model = model.path.clone();
    spec.sample.train = 2;
    spec.sample.heldout = 1;
    let problems = app.check_spec(&spec).expect("check");
    assert!(problems.is_empty(), "{problems:?}");
}
