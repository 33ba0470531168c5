//! Push and pull against a real MLflow tracking server on 127.0.0.1, started from the virtual environment
//! `scripts/setup.sh` installs (`~/.cache/cliplab-mlflow-venv`, or `$CLIPLAB_MLFLOW_VENV`): the demo's run is
//! pushed, read back through MLflow's own REST API, pushed again (no duplicate), pulled into a fresh home and
//! compared number for number; a run of 2,500 steps goes in batches; a push that fails half-way (the server
//! answers 500, then is gone) records nothing locally and a later push completes the same MLflow run.

#[path = "support/store.rs"]
mod support;
#[path = "support/mlflow_server.rs"]
mod mlflow_server;

use mlflow_server::MlflowServer;

use std::path::Path;
use std::time::Instant;

use experiments::events::{CancelToken, Event, NullObserver};
use experiments::model::device::DeviceChoice;
use experiments::remote::mlflow::{self, PullOptions, PushOptions, MAX_METRICS_PER_BATCH};
use experiments::report::{analysis, compare};
use experiments::run::demo::{self, DemoOptions};
use experiments::run::store::{RunMetrics, RunStatus, Store, SETTING_TRACKING_URI};
use experiments::vocab::{Split, Stage};
use experiments::Error;
use serde_json::Value;

/// The demo's run, small: 40 drawings, 2 epochs.
fn demo_run(home: &Path) -> (Store, i64) {
    let mut store = Store::open(home).expect("open");
    let opts = DemoOptions { images: 40, heldout: 10, epochs: 2, batch_size: 8, ..DemoOptions::default() };
    let out = demo::run_demo(&mut store, home, &opts, DeviceChoice::Cpu, &mut NullObserver, CancelToken::new())
        .expect("demo run");
    (store, out.run_id)
}

fn push_opts(experiment: &str) -> PushOptions {
    PushOptions { experiment: Some(experiment.into()), with_checkpoint: false }
}

fn experiment_runs(server: &MlflowServer, experiment: &str) -> Vec<Value> {
    let exp = server.get("experiments/get-by-name", &[("experiment_name", experiment)]);
    let id = exp["experiment"]["experiment_id"].as_str().expect("experiment id").to_string();
    let body = serde_json::json!({ "experiment_ids": [id], "max_results": 1000 });
    let v = server.client().post("runs/search", &body).expect("search");
    v["runs"].as_array().cloned().unwrap_or_default()
}

fn history(server: &MlflowServer, run: &str, key: &str) -> Vec<(i64, f64)> {
    let v = server.get("metrics/get-history", &[("run_id", run), ("metric_key", key), ("max_results", "25000")]);
    let mut h: Vec<(i64, f64)> = v["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| (m["step"].as_i64().unwrap_or(0), m["value"].as_f64().expect("value")))
        .collect();
    h.sort_by_key(|p| p.0);
    h
}

/// Equal series, value by value to MLflow's precision (its JSON keeps 15 to 16 significant digits).
#[track_caller]
fn assert_series(got: &[(i64, f64)], want: &[(i64, f64)]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.0 == w.0 && (g.1 - w.1).abs() <= 1e-13 * w.1.abs().max(1e-300), "{g:?} vs {w:?}");
    }
}

fn artifact_list(server: &MlflowServer, run: &str, path: &str) -> Vec<String> {
    let v = server.get("artifacts/list", &[("run_id", run), ("path", path)]);
    v["files"].as_array().into_iter().flatten().filter_map(|f| f["path"].as_str().map(str::to_string)).collect()
}

/// The numbers `compare` shows for a run, without its (store-specific) ids.
fn comparable(store: &Store, run: i64) -> Value {
    let data = compare::load_run_data(store, run).expect("run data");
    let samples: Vec<Value> = data
        .samples
        .iter()
        .map(|s| serde_json::json!([s.split, s.label, s.choices, s.filename, s.before, s.after]))
        .collect();
    let summary = format!("{:?}", analysis::summarize(&data));
    serde_json::json!([data.hyperparameters, data.step_losses, data.epoch_losses, samples, summary])
}

#[test]
fn a_demo_run_is_pushed_read_back_pushed_again_and_pulled_into_a_fresh_home() {
    let server = MlflowServer::start();
    let home = tempfile::tempdir().expect("home");
    let (mut store, run) = demo_run(home.path());
    let client = server.client();

    let started = Instant::now();
    let mut events = experiments::events::Recorder::default();
    let first = mlflow::push_run(&mut store, &client, run, &push_opts("team"), &mut events).expect("push");
    eprintln!("push of the demo run: {:.2} s", started.elapsed().as_secs_f64());
    assert!(first.created && first.warnings.is_empty(), "{first:?}");
    let remembered = store.setting(SETTING_TRACKING_URI).expect("setting");
    assert_eq!(remembered.as_deref(), Some(server.uri.as_str()), "the home remembers the server a push reached");
    assert!(events.events.iter().any(|e| matches!(e, Event::Info { message } if message.contains("pushing"))));

    // Read back through MLflow's REST API: params, tags, every metric point, the artifacts.
    let detail = store.run(run).expect("run");
    let remote = server.get("runs/get", &[("run_id", &first.remote_run_id)]);
    let data = &remote["run"]["data"];
    let param =
        |k: &str| data["params"].as_array().expect("params").iter().find(|p| p["key"] == k).map(|p| p["value"].clone());
    assert_eq!(param("train.lr"), Some(Value::from(detail.spec.train.lr.to_string())));
    assert_eq!(param("train.epochs"), Some(Value::from("2")));
    assert_eq!(param("sample.heldout"), Some(Value::from("10")));
    let tag =
        |k: &str| data["tags"].as_array().expect("tags").iter().find(|t| t["key"] == k).map(|t| t["value"].clone());
    assert_eq!(tag("cliplab.run_id"), Some(Value::from(run.to_string())));
    assert_eq!(tag("cliplab.status"), Some(Value::from("completed")));
    assert_eq!(tag("cliplab.device"), Some(Value::from("cpu")));
    let dataset = store.dataset(&detail.info.dataset_id.to_string()).expect("dataset");
    assert_eq!(tag("cliplab.dataset_hash"), Some(Value::from(dataset.content_hash.clone())));
    assert_eq!(remote["run"]["info"]["status"], "FINISHED");

    let steps: Vec<(i64, f64)> = detail.step_losses.iter().map(|s| (s.step as i64, s.loss)).collect();
    assert_eq!(steps.len(), 8, "30 train samples, batch 8, 2 epochs");
    assert_series(&history(&server, &first.remote_run_id, "train_loss"), &steps);
    let epochs: Vec<(i64, f64)> = detail.epoch_losses.iter().map(|e| (e.epoch as i64, e.train_loss)).collect();
    assert_series(&history(&server, &first.remote_run_id, "epoch_train_loss"), &epochs);
    let held: Vec<(i64, f64)> =
        detail.epoch_losses.iter().map(|e| (e.epoch as i64, e.heldout_loss.expect("held-out loss"))).collect();
    assert_series(&history(&server, &first.remote_run_id, "epoch_heldout_loss"), &held);
    let m: RunMetrics = detail.info.metrics;
    let after = m.heldout_after.expect("held-out after");
    assert_series(&history(&server, &first.remote_run_id, "heldout_after_accuracy"), &[(0, after.accuracy)]);
    assert_series(
        &history(&server, &first.remote_run_id, "heldout_after_mean_label_prob"),
        &[(0, after.mean_label_prob)],
    );
    assert_series(&history(&server, &first.remote_run_id, "train_before_n"), &[(0, 30.0)]);

    let top = artifact_list(&server, &first.remote_run_id, "");
    for f in ["spec.toml", "samples.csv", "charts", "cliplab"] {
        assert!(top.contains(&f.to_string()), "{f} not among {top:?}");
    }
    assert!(artifact_list(&server, &first.remote_run_id, "charts").iter().any(|f| f.ends_with(".svg")));
    let root = format!("{}/{}/artifacts", first.experiment_id, first.remote_run_id);
    let spec = client.get_artifact(&root, "spec.toml").expect("spec artifact");
    assert_eq!(String::from_utf8(spec).expect("utf-8"), detail.spec.to_toml().expect("toml"));
    let charts = artifact_list(&server, &first.remote_run_id, "charts").len();
    assert_eq!(first.artifacts, 2 + 2 + charts, "spec, CSV, the two records, {charts} charts");

    // Pushing again: the same MLflow run, nothing new to log, no error, no duplicate.
    let again = mlflow::push_run(&mut store, &client, run, &push_opts("team"), &mut NullObserver).expect("push again");
    assert_eq!(again.remote_run_id, first.remote_run_id);
    assert!(!again.created && again.params_logged == 0 && again.metrics_logged == 0, "{again:?}");
    assert_eq!(experiment_runs(&server, "team").len(), 1);
    assert_series(&history(&server, &first.remote_run_id, "train_loss"), &steps);
    assert_eq!(
        store.remote_push(run, &server.uri).expect("push row").expect("remembered").remote_run_id,
        first.remote_run_id
    );

    // Pulling into the store that pushed it brings nothing back.
    let own = mlflow::pull_runs(&mut store, &client, &pull("team"), &mut NullObserver).expect("pull own");
    assert!(own.pulled.is_empty() && own.skipped.len() == 1, "{own:?}");

    // Pulled into a fresh home: compare sees the same numbers.
    let other = tempfile::tempdir().expect("other home");
    let mut theirs = Store::open(other.path()).expect("open other");
    let out = mlflow::pull_runs(&mut theirs, &client, &pull("team"), &mut NullObserver).expect("pull");
    assert_eq!(out.pulled.len(), 1, "{out:?}");
    let copy = out.pulled[0].run;
    assert_eq!(theirs.setting(SETTING_TRACKING_URI).expect("setting").as_deref(), Some(server.uri.as_str()));
    let labels = theirs.run_labels().expect("labels");
    assert!(labels[&copy].pulled, "a pulled run is marked so");
    assert_eq!(comparable(&theirs, copy), comparable(&store, run));
    let info = theirs.run(copy).expect("pulled run").info;
    assert_eq!((info.status, info.metrics), (RunStatus::Completed, detail.info.metrics));
    let from = theirs.pulled_from(copy).expect("lookup").expect("marked as pulled");
    assert_eq!(from.remote_run_id, first.remote_run_id);
    let report = compare::compare_runs(&theirs, &[copy], &other.path().join("charts")).expect("compare pulled");
    assert!(report.summary.contains(&format!("run {copy}")), "{}", report.summary);
    assert!(report.system.contains("not measured"), "a pulled run carries no system metrics: {}", report.system);

    // Read-only, and pulling again replaces the copy (same id) instead of adding one.
    let e = theirs.finish_run(copy, RunStatus::Failed, Some("x")).expect_err("read-only");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(matches!(
        mlflow::push_run(&mut theirs, &client, copy, &push_opts("team"), &mut NullObserver),
        Err(Error::Invalid(_))
    ));
    let twice = mlflow::pull_runs(&mut theirs, &client, &pull("team"), &mut NullObserver).expect("pull again");
    assert_eq!((twice.pulled[0].run, twice.pulled[0].replaced), (copy, true));
    assert_eq!(theirs.runs().expect("runs").len(), 1);
    assert_eq!(theirs.datasets().expect("datasets").len(), 1);
    assert_eq!(comparable(&theirs, copy), comparable(&store, run));
    // A local run next to the pulled one: compare takes both.
    let (_, local) = demo_run(other.path());
    let mut theirs = Store::open(other.path()).expect("reopen");
    assert_eq!(theirs.runs().expect("runs").len(), 2);
    let names: Vec<String> = theirs.datasets().expect("datasets").into_iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            dataset.name.clone(),
            format!("{} (from 127.0.0.1:{})", dataset.name, server.uri.rsplit(':').next().unwrap_or(""))
        ]
    );
    compare::compare_runs(&theirs, &[copy, local], &other.path().join("both")).expect("compare local and pulled");
    assert!(theirs.recover_interrupted().expect("recover").is_empty());
}

fn pull(experiment: &str) -> PullOptions {
    PullOptions { experiment: experiment.into(), runs: Vec::new() }
}

#[test]
fn a_run_of_thousands_of_steps_goes_in_batches_within_mlflows_limits() {
    let server = MlflowServer::start();
    let home = tempfile::tempdir().expect("home");
    let (mut store, _ds, exp, samples) = support::setup(home.path());
    let run = store.create_run(exp).expect("run");
    store.start_run(run, "cpu").expect("start");
    let n = 2500;
    for step in 1..=n {
        let ev = Event::Step { epoch: 1 + step / 1000, step, loss: 1.0 / step as f64 };
        store.record_event(run, &ev).expect("step");
    }
    let rows: Vec<_> = samples.iter().enumerate().map(|(i, &id)| (id, support::score(i))).collect();
    store.record_scores(run, Stage::Before, Split::Train, &rows).expect("scores");
    // A run still training is pushed, then pushed again once it is done.
    let client = server.client();
    let out = mlflow::push_run(&mut store, &client, run, &push_opts("many"), &mut NullObserver).expect("push");
    assert!(out.batches >= n.div_ceil(MAX_METRICS_PER_BATCH), "{out:?}");
    assert_eq!(out.metrics_logged, n);
    let h = history(&server, &out.remote_run_id, "train_loss");
    assert_eq!(h.len(), n);
    assert_eq!(h[n - 1], (n as i64, 1.0 / n as f64));
    let remote = server.get("runs/get", &[("run_id", &out.remote_run_id)]);
    assert_eq!(remote["run"]["info"]["status"], "RUNNING");

    store.finish_run(run, RunStatus::Completed, None).expect("finish");
    let again = mlflow::push_run(&mut store, &client, run, &push_opts("many"), &mut NullObserver).expect("push again");
    assert_eq!((again.remote_run_id.as_str(), again.metrics_logged), (out.remote_run_id.as_str(), 0));
    let remote = server.get("runs/get", &[("run_id", &out.remote_run_id)]);
    assert_eq!(remote["run"]["info"]["status"], "FINISHED");
    assert_eq!(history(&server, &out.remote_run_id, "train_loss").len(), n);
}

#[test]
fn a_push_that_fails_half_way_records_nothing_locally_and_a_later_push_completes() {
    let mut server = MlflowServer::start();
    let home = tempfile::tempdir().expect("home");
    let (mut store, _ds, exp, samples) = support::setup(home.path());
    let run = store.create_run(exp).expect("run");
    store.start_run(run, "cpu").expect("start");
    store.record_event(run, &Event::Step { epoch: 1, step: 1, loss: 0.5 }).expect("step");
    let rows: Vec<_> = samples.iter().enumerate().map(|(i, &id)| (id, support::score(i))).collect();
    store.record_scores(run, Stage::Before, Split::Train, &rows).expect("scores");
    store.finish_run(run, RunStatus::Completed, None).expect("finish");
    let client = server.client();

    // The experiment's artifact folder is a file: the server answers 500 to the first upload, after the run was
    // created and its metrics logged.
    let exp_id = client.post("experiments/create", &serde_json::json!({"name": "faulty"})).expect("create")
        ["experiment_id"]
        .as_str()
        .expect("id")
        .to_string();
    std::fs::create_dir_all(server.artifacts()).expect("artifacts");
    let blocker = server.artifacts().join(&exp_id);
    std::fs::write(&blocker, b"not a folder").expect("blocker");
    let e = mlflow::push_run(&mut store, &client, run, &push_opts("faulty"), &mut NullObserver).expect_err("500");
    let msg = e.to_string();
    assert!(msg.starts_with(&server.uri) && msg.contains("HTTP 500") && !msg.contains('\n'), "{msg}");
    assert!(store.remote_push(run, &server.uri).expect("lookup").is_none(), "a failed push remembers nothing");
    assert_eq!(experiment_runs(&server, "faulty").len(), 1);

    // The next push completes the same MLflow run.
    std::fs::remove_file(&blocker).expect("unblock");
    let out = mlflow::push_run(&mut store, &client, run, &push_opts("faulty"), &mut NullObserver).expect("resume");
    assert!(!out.created, "{out:?}");
    assert_eq!(experiment_runs(&server, "faulty").len(), 1);
    assert!(artifact_list(&server, &out.remote_run_id, "").contains(&"spec.toml".to_string()));

    // A server that is gone: one line naming the URL; the store is as it was.
    let before = support::count(home.path(), "remote_pushes");
    server.stop();
    let e = mlflow::push_run(&mut store, &client, run, &push_opts("faulty"), &mut NullObserver).expect_err("down");
    let msg = e.to_string();
    assert!(msg.starts_with(&server.uri) && msg.contains("cannot reach the tracking server"), "{msg}");
    assert_eq!(support::count(home.path(), "remote_pushes"), before);
    let e = mlflow::pull_runs(&mut store, &client, &pull("faulty"), &mut NullObserver).expect_err("down");
    assert!(matches!(e, Error::Remote { status: None, .. }), "{e}");
}

#[test]
fn mlflow_error_codes_reach_the_message() {
    let server = MlflowServer::start();
    let client = server.client();
    let e = client.get("runs/get", &[("run_id", "0123456789abcdef")]).expect_err("no such run");
    let msg = e.to_string();
    assert!(msg.contains("RESOURCE_DOES_NOT_EXIST") && msg.contains(&server.uri), "{msg}");
    assert!(mlflow::is_not_found(&e));
    let home = tempfile::tempdir().expect("home");
    let mut store = Store::open(home.path()).expect("open");
    let e = mlflow::pull_runs(&mut store, &client, &pull("nobody"), &mut NullObserver).expect_err("no experiment");
    assert!(e.to_string().contains("no MLflow experiment named `nobody`"), "{e}");
}
