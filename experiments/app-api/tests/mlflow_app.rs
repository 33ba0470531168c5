//! The app's "Push to MLflow…" and "Pull from MLflow…" commands against a real MLflow tracking server on
//! 127.0.0.1 (the same server and virtual environment as the core's tests): progress reaches the page as `job`
//! events with the page's job number, the server is remembered for the next dialog, pushing again updates the
//! same MLflow run, a pulled run shows the same numbers in a fresh home, and a dead server is a clear error that
//! records nothing.

#[path = "../../tests/support/mlflow_server.rs"]
mod mlflow_server;

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;

use cliplab_api::app::{App, RecordingSink};
use cliplab_api::picker::ScriptedPicker;
use cliplab_api::views::{AppEvent, MlflowPullRequest, MlflowPushRequest};
use experiments::events::{CancelToken, NullObserver};
use experiments::model::device::DeviceChoice;
use experiments::run::demo::{self, DemoOptions};
use experiments::run::store::Store;
use mlflow_server::MlflowServer;

/// The demo's run, small (40 drawings, 2 epochs), recorded in `home`.
fn demo_run(home: &Path) -> i64 {
    let mut store = Store::open(home).expect("open");
    let opts = DemoOptions { images: 40, heldout: 10, epochs: 2, batch_size: 8, ..DemoOptions::default() };
    demo::run_demo(&mut store, home, &opts, DeviceChoice::Cpu, &mut NullObserver, CancelToken::new()).expect("demo run").run_id
}

fn open(home: &Path) -> (Arc<App>, Arc<RecordingSink>) {
    let sink = Arc::new(RecordingSink::default());
    let app = App::open(home, Box::new(ScriptedPicker::default()), sink.clone()).expect("open app");
    (app, sink)
}

fn push(runs: &[i64], uri: &str) -> MlflowPushRequest {
    MlflowPushRequest { run_ids: runs.to_vec(), tracking_uri: Some(uri.into()), experiment: Some("app-team".into()), with_checkpoint: false }
}

/// Job numbers of the `job` events the sink saw.
fn job_events(sink: &RecordingSink) -> Vec<u64> {
    cliplab_api::app::lock(&sink.events)
        .iter()
        .filter_map(|e| match e {
            AppEvent::Job { job, .. } => Some(*job),
            _ => None,
        })
        .collect()
}

#[test]
fn push_and_pull_through_the_app_commands() {
    let server = MlflowServer::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("origin");
    let run = demo_run(&home);
    let (app, sink) = open(&home);
    let env_uri = std::env::var("MLFLOW_TRACKING_URI").ok();
    if env_uri.is_none() {
        assert_eq!(app.mlflow_defaults().expect("defaults").tracking_uri, None, "nothing reached yet");
    }

    // A server that is not there: one clear line naming it, and nothing remembered.
    let dead = format!("http://127.0.0.1:{}", TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port());
    let err = app.mlflow_push(1, &push(&[run], &dead)).expect_err("no server").to_string();
    assert!(err.contains(dead.trim_start_matches("http://")), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    assert_eq!(app.mlflow_defaults().expect("defaults").tracking_uri, env_uri, "a failed push remembers nothing");

    // The push: progress as job 7's events only, the MLflow run created and readable through MLflow's API.
    let pushed = app.mlflow_push(7, &push(&[run], &server.uri)).expect("push");
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].run, run);
    assert!(pushed[0].created);
    assert!(pushed[0].metrics_logged > 0 && pushed[0].artifacts > 0, "{:?}", pushed[0]);
    let jobs = job_events(&sink);
    assert!(jobs.contains(&7), "the push reports progress");
    assert!(jobs.iter().all(|&j| j == 1 || j == 7), "{jobs:?}");
    let remote = server.get("runs/get", &[("run_id", &pushed[0].remote_run_id)]);
    let tags = remote["run"]["data"]["tags"].as_array().expect("tags");
    assert!(tags.iter().any(|t| t["key"] == "cliplab.run_id" && t["value"].as_str() == Some(run.to_string().as_str())), "{tags:?}");
    assert_eq!(app.mlflow_defaults().expect("defaults").tracking_uri.as_deref(), Some(server.uri.as_str()), "the next dialog starts here");

    // Again: the same MLflow run, updated.
    let again = app.mlflow_push(8, &push(&[run], &server.uri)).expect("push again");
    assert_eq!(again[0].remote_run_id, pushed[0].remote_run_id);
    assert!(!again[0].created);

    // Pulled into a fresh home through its app: the same headline numbers as the origin's run page.
    let (other, _) = open(&tmp.path().join("laptop"));
    let refused = other.mlflow_pull(9, &MlflowPullRequest { tracking_uri: Some(server.uri.clone()), experiment: " ".into(), remote_run_ids: vec![] });
    assert!(refused.expect_err("no experiment").to_string().contains("experiment"));
    let pulled = other
        .mlflow_pull(10, &MlflowPullRequest { tracking_uri: Some(server.uri.clone()), experiment: "app-team".into(), remote_run_ids: vec![] })
        .expect("pull");
    assert_eq!(pulled.runs.len(), 1, "{pulled:?}");
    let theirs = other.run_view(pulled.runs[0]).expect("pulled run page").summary.expect("summary");
    let ours = app.run_view(run).expect("run page").summary.expect("summary");
    for (a, b) in [(&theirs.train, &ours.train), (&theirs.heldout, &ours.heldout)] {
        assert_eq!(a.n, b.n);
        assert_eq!(a.accuracy_before, b.accuracy_before);
        assert_eq!(a.accuracy_after, b.accuracy_after);
        let close = |x: Option<f64>, y: Option<f64>| (x.expect("value") - y.expect("value")).abs() < 1e-9;
        assert!(close(a.mean_label_prob_before, b.mean_label_prob_before));
        assert!(close(a.mean_label_prob_after, b.mean_label_prob_after));
    }
    // An unknown job is nothing to cancel.
    other.cancel_job(12345);
}
