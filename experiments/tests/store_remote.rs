//! The store's side of MLflow (no server needed): where runs were pushed, and pulled runs — stored whole in one
//! transaction, read-only, replaced (same id) when pulled again, never "recovered" as interrupted.

#[path = "support/store.rs"]
mod support;

use experiments::model::engine::Summary;
use experiments::run::store::{EpochLoss, PulledRun, RunLifecycle, RunMetrics, RunStatus, StepLoss, StoredScore};
use experiments::vocab::{Split, Stage};
use support::{count, setup};

fn pulled(dataset_id: i64, samples: &[i64], status: RunStatus, loss: f64) -> PulledRun {
    let s = support::score(1);
    PulledRun {
        tracking_uri: "http://mlflow.example:5000".into(),
        remote_run_id: "abc123".into(),
        origin: "gpu-box:/home/a/cliplab.sqlite3#7".into(),
        dataset_id,
        spec: support::spec("exp on the gpu box", "shapes"),
        lifecycle: RunLifecycle {
            status,
            device: Some("cuda:0".into()),
            created_at: "2026-01-02T03:04:05.000Z".into(),
            started_at: Some("2026-01-02T03:04:06.000Z".into()),
            ended_at: None,
            error: None,
        },
        metrics: RunMetrics {
            train_before: Some(Summary { n: 4, mean_label_prob: 0.25, accuracy: 0.5 }),
            ..RunMetrics::default()
        },
        train_ids: samples[..4].to_vec(),
        heldout_ids: samples[4..].to_vec(),
        step_losses: vec![StepLoss { step: 1, epoch: 1, loss }, StepLoss { step: 2, epoch: 1, loss: f64::NAN }],
        epoch_losses: vec![EpochLoss { epoch: 1, train_loss: loss, heldout_loss: Some(0.75) }],
        scores: vec![StoredScore {
            sample_id: samples[0],
            split: Split::Train,
            phase: Stage::Before,
            probs: s.probs.clone(),
            logits: s.logits.clone(),
            label: s.label,
            label_prob: s.label_prob,
            correct: s.correct,
        }],
    }
}

#[test]
fn a_pulled_run_is_stored_whole_read_only_and_replaced_when_pulled_again() {
    let home = tempfile::tempdir().expect("home");
    let (mut store, ds, _exp, samples) = setup(home.path());
    let p = pulled(ds, &samples, RunStatus::Running, 1.5);
    let id = store.insert_pulled_run(&p).expect("insert");
    let d = store.run(id).expect("run");
    assert_eq!((d.info.status, d.info.device.as_deref()), (RunStatus::Running, Some("cuda:0")));
    assert_eq!(d.info.metrics, p.metrics);
    assert_eq!((d.train_ids.clone(), d.heldout_ids.clone()), (p.train_ids.clone(), p.heldout_ids.clone()));
    assert_eq!(d.step_losses[0], p.step_losses[0]);
    assert!(d.step_losses[1].loss.is_nan());
    assert_eq!(d.epoch_losses, p.epoch_losses);
    assert_eq!(store.run_scores(id).expect("scores"), p.scores);
    let from = store.pulled_from(id).expect("lookup").expect("pulled");
    assert_eq!((from.remote_run_id.as_str(), from.origin.as_str()), ("abc123", p.origin.as_str()));
    assert_eq!(store.pulled_run_id(&p.tracking_uri, "abc123").expect("lookup"), Some(id));

    // Read-only: the store refuses changes; recovery leaves a run that is still training elsewhere alone.
    let e = store.finish_run(id, RunStatus::Failed, Some("no")).expect_err("read-only");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(store.check_not_pulled(id).is_err());
    assert!(store.recover_interrupted().expect("recover").is_empty());
    drop(store);
    let mut store = experiments::run::store::Store::open(home.path()).expect("reopen");
    assert!(store.recovered_runs().is_empty());
    assert_eq!(store.run(id).expect("run").info.status, RunStatus::Running);

    // Pulled again (it finished meanwhile): the same id, its rows replaced, nothing duplicated.
    let (runs, experiments, steps) =
        (count(home.path(), "runs"), count(home.path(), "experiments"), count(home.path(), "step_losses"));
    let mut again = pulled(ds, &samples, RunStatus::Completed, 0.5);
    again.lifecycle.ended_at = Some("2026-01-02T04:00:00.000Z".into());
    assert_eq!(store.insert_pulled_run(&again).expect("again"), id);
    assert_eq!(
        (count(home.path(), "runs"), count(home.path(), "experiments"), count(home.path(), "step_losses")),
        (runs, experiments, steps)
    );
    let d = store.run(id).expect("run");
    assert_eq!((d.info.status, d.step_losses[0].loss), (RunStatus::Completed, 0.5));
    assert_eq!(count(home.path(), "pulled_runs"), 1);
}

#[test]
fn a_completed_push_is_remembered_per_tracking_server() {
    let home = tempfile::tempdir().expect("home");
    let (mut store, _ds, exp, _samples) = setup(home.path());
    let run = store.create_run(exp).expect("run");
    assert_eq!(store.remote_push(run, "http://a").expect("lookup"), None);
    store.remember_push(run, "http://a", "1", "r1").expect("remember");
    store.remember_push(run, "http://b", "4", "r9").expect("remember");
    store.remember_push(run, "http://a", "2", "r2").expect("remember again");
    let a = store.remote_push(run, "http://a").expect("lookup").expect("remembered");
    assert_eq!((a.experiment_id.as_str(), a.remote_run_id.as_str()), ("2", "r2"));
    assert_eq!(store.remote_push(run, "http://b").expect("lookup").expect("b").remote_run_id, "r9");
    assert!(store.remember_push(run + 100, "http://a", "1", "r").is_err(), "no such run");
    assert!(store.check_not_pulled(run).is_ok());
}
