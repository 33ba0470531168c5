//! Sweeps, the run queue, tags and deletion through the library API, on generated data and a tiny CLIP (each run
//! takes about a second): a grid expands to its runs and records nothing when a point is bad; the queue is worked
//! in its order after cancels and moves and survives a reopen; two workers never take the same run; a killed
//! worker's run ends interrupted and the rest stay queued; tags filter; deleting removes records and the run's
//! folder, never a folder the store did not claim, and never a running run.

use std::path::Path;

use experiments::data::synth;
use experiments::events::{CancelToken, NullObserver, Observer};
use experiments::report::sweep::compare_sweep;
use experiments::run::queue::{work_queue, WorkerOptions};
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::{Labelled, RunStatus, Store};
use experiments::run::sweep::{create_sweep, run_sweep, GridAxis};
use experiments::run::runner;

#[path = "support/store.rs"]
mod support;
use support::{count, raw};

#[path = "support/tiny.rs"]
mod tiny;

#[path = "support/child.rs"]
mod child;
use child::{child_home, publish_run, ChildTest};

/// A store with the generated dataset `shapes` and a tiny model; the spec of a short run on it.
fn setup(home: &Path) -> (Store, ExperimentSpec) {
    tiny::shapes_home(home, "sweep", "train = 8\nheldout = 6\nseed = 5", "epochs = 1\nbatch_size = 4")
}

fn grid(args: &[&str]) -> Vec<GridAxis> {
    args.iter().map(|a| GridAxis::parse(a).expect("axis")).collect()
}

fn quiet(_run: i64) -> Box<dyn Observer> {
    Box::new(NullObserver)
}

fn queue_ids(store: &Store) -> Vec<i64> {
    store.queue().expect("queue").iter().map(|q| q.run_id).collect()
}

#[test]
fn a_grid_sweep_runs_each_point_in_the_foreground_and_its_chart_marks_the_best() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let axes = grid(&["train.lr=1e-4,1e-2", "train.epochs=1,2"]);
    let created = create_sweep(&mut store, &spec, &axes, false).expect("sweep");
    assert_eq!(created.run_ids.len(), 4);
    assert!(store.queue().expect("queue").is_empty(), "foreground runs are not queued");
    let sweep = store.sweep(created.sweep_id).expect("sweep record");
    assert_eq!(sweep.run_ids, created.run_ids);
    assert_eq!(sweep.grid, serde_json::to_value(&axes).expect("grid json"));

    let results = run_sweep(&mut store, home.path(), &created.run_ids, &mut quiet, CancelToken::new()).expect("run");
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    let want = [(1e-4, 1), (1e-4, 2), (1e-2, 1), (1e-2, 2)];
    for (&run, (lr, epochs)) in created.run_ids.iter().zip(want) {
        let d = store.run(run).expect("run");
        assert_eq!(d.info.status, RunStatus::Completed);
        assert_eq!((d.spec.train.lr, d.spec.train.epochs), (lr, epochs));
        assert_eq!(d.epoch_losses.len(), epochs, "run {run} trained its own number of epochs");
    }

    let out = home.path().join("sweep-report");
    let report = compare_sweep(&store, created.sweep_id, &out).expect("compare --sweep");
    assert_eq!(report.data.axes, ["train.lr", "train.epochs"]);
    assert_eq!(report.data.runs.iter().map(|r| r.values.clone()).collect::<Vec<_>>(), [
        ["1e-4", "1"],
        ["1e-4", "2"],
        ["1e-2", "1"],
        ["1e-2", "2"]
    ]);
    let infos = store.runs().expect("runs");
    let acc = |id: i64| infos.iter().find(|r| r.id == id).and_then(|r| r.metrics.heldout_after).map(|s| s.accuracy);
    for p in &report.data.runs {
        assert_eq!(p.metric, acc(p.run_id), "the chart shows the store's held-out accuracy");
    }
    let best = report.best_run.expect("a best run");
    assert!(report.data.runs.iter().all(|p| p.metric <= acc(best)), "the best is the highest");
    let svg = std::fs::read_to_string(out.join("sweep.svg")).expect("sweep.svg");
    assert!(svg.contains(&format!("best: run {best}")), "the best run is named on the chart");
    for name in ["sweep.png", "loss_steps.svg", "loss_epochs.svg"] {
        assert!(out.join(name).is_file(), "{name}");
    }
}

#[test]
fn a_bad_grid_point_is_one_error_naming_the_key_and_records_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    for (args, want) in [
        (&["train.lr=1e-4,-1"][..], "--grid `train.lr=-1`"),
        (&["train.nope=1"][..], "--grid `train.nope`: no such key"),
        // Valid on its own, but the split no longer fits the dataset: checked before anything is recorded.
        (&["train.lr=1e-4", "sample.train=8,1000"][..], "does not fit"),
    ] {
        let e = create_sweep(&mut store, &spec, &grid(args), true).expect_err("refused").to_string();
        assert!(e.contains(want), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    for table in ["sweeps", "experiments", "runs", "run_queue"] {
        assert_eq!(count(home.path(), table), 0, "{table}");
    }
}

#[test]
fn the_queue_survives_a_reopen_and_is_worked_in_order_after_a_cancel_and_a_move() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let created = create_sweep(&mut store, &spec, &grid(&["train.seed=1,2,3,4"]), true).expect("sweep");
    let [a, b, c, d] = created.run_ids[..] else { panic!("four runs") };
    assert_eq!(queue_ids(&store), [a, b, c, d]);
    store.cancel_queued(b).expect("cancel");
    store.move_queued(d, 1).expect("move");
    assert_eq!(queue_ids(&store), [d, a, c]);
    assert!(store.move_queued(b, 1).expect_err("not queued").to_string().contains("not in the queue"));
    assert_eq!(store.run(b).expect("run").info.status, RunStatus::Cancelled);
    let positions: Vec<usize> = store.queue().expect("queue").iter().map(|q| q.position).collect();
    assert_eq!(positions, [1, 2, 3]);
    assert_eq!(store.run_labels().expect("labels")[&a].queue_position, Some(2));
    drop(store);

    // A restart: queued runs have no process, and are not taken for interrupted ones.
    let store = Store::open(home.path()).expect("reopen");
    assert!(store.recovered_runs().is_empty());
    assert_eq!(queue_ids(&store), [d, a, c]);
    drop(store);

    let worked = work_queue(home.path(), WorkerOptions::default(), &quiet, &|_| {}, CancelToken::new()).expect("work");
    assert_eq!(worked.iter().map(|w| w.run_id).collect::<Vec<_>>(), [d, a, c], "in queue order");
    let store = Store::open(home.path()).expect("open");
    assert!(store.queue().expect("queue").is_empty());
    let started = |id: i64| store.run(id).expect("run").info.started_at.expect("started");
    assert!(started(d) < started(a) && started(a) < started(c));
    for id in [a, c, d] {
        assert_eq!(store.run(id).expect("run").info.status, RunStatus::Completed, "run {id}");
    }
    assert_eq!(store.run(b).expect("run").info.status, RunStatus::Cancelled);
}

#[test]
fn two_workers_never_take_the_same_run() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let seeds = (1..=40).map(|s| s.to_string()).collect::<Vec<_>>().join(",");
    let created = create_sweep(&mut store, &spec, &grid(&[&format!("train.seed={seeds}")]), true).expect("sweep");
    drop(store);
    let claim_all = || {
        let mut s = Store::open(home.path()).expect("open");
        let mut mine = Vec::new();
        while let Some(run) = s.claim_next_queued().expect("claim") {
            mine.push(run);
        }
        for &run in &mine {
            s.finish_run(run, RunStatus::Cancelled, None).expect("release");
        }
        mine
    };
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(claim_all);
        let y = s.spawn(claim_all);
        (x.join().expect("worker"), y.join().expect("worker"))
    });
    let mut all: Vec<i64> = x.iter().chain(&y).copied().collect();
    all.sort_unstable();
    assert_eq!(all, created.run_ids, "every run claimed exactly once (worker 1: {}, worker 2: {})", x.len(), y.len());

    // And through the worker itself, two runs at a time.
    let mut store = Store::open(home.path()).expect("open");
    let more = create_sweep(&mut store, &spec, &grid(&["train.seed=1,2,3"]), true).expect("sweep");
    let options = WorkerOptions { concurrency: 2, device: None };
    let worked = work_queue(home.path(), options, &quiet, &|_| {}, CancelToken::new()).expect("work");
    let mut ran: Vec<i64> = worked.iter().map(|w| w.run_id).collect();
    ran.sort_unstable();
    assert_eq!(ran, more.run_ids);
    assert!(worked.iter().all(|w| w.result.is_ok()));
}

/// Not a test: the child process of the killed-worker test (this test binary run with `--ignored --exact`). It
/// claims the next queued run of the store in `$CLIPLAB_TEST_CHILD_HOME`, starts it, writes its id to
/// `child-run` there and waits (at most a minute) to be killed.
#[test]
#[ignore = "the child process of the killed-worker test"]
fn child_claims_a_queued_run_until_killed() {
    let Some(home) = child_home() else { return };
    let mut store = Store::open(&home).expect("open");
    let run = store.claim_next_queued().expect("claim").expect("a queued run");
    store.start_run(run, "cpu").expect("start");
    publish_run(&home, run);
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn a_killed_workers_run_ends_interrupted_and_the_rest_stay_queued() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let created = create_sweep(&mut store, &spec, &grid(&["train.seed=1,2,3"]), true).expect("sweep");
    drop(store);
    let (worker, run) = ChildTest::spawn("child_claims_a_queued_run_until_killed", home.path(), &[]);
    assert_eq!(run, created.run_ids[0], "the first queued run");
    let store = Store::open(home.path()).expect("open while the worker lives");
    assert_eq!(store.run(run).expect("run").info.status, RunStatus::Running);
    assert_eq!(queue_ids(&store), &created.run_ids[1..]);
    drop(store);

    worker.kill();
    let store = Store::open(home.path()).expect("open after the kill");
    assert_eq!(store.recovered_runs(), &[run]);
    assert_eq!(store.run(run).expect("run").info.status, RunStatus::Interrupted);
    assert_eq!(queue_ids(&store), &created.run_ids[1..], "nothing half-claimed: the others wait as before");
    for &id in &created.run_ids[1..] {
        assert_eq!(store.run(id).expect("run").info.status, RunStatus::Queued);
    }
}

#[test]
fn tags_and_notes_find_runs_by_run_or_experiment() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let created = create_sweep(&mut store, &spec, &grid(&["train.seed=1,2,3"]), true).expect("sweep");
    let [a, b, c] = created.run_ids[..] else { panic!("three runs") };
    store.set_tag(Labelled::Run(a), " baseline ", true).expect("tag");
    store.set_tag(Labelled::Run(a), "baseline", true).expect("tag twice: no change");
    store.set_tag(Labelled::Run(b), "lr-scan", true).expect("tag");
    let exp_c = store.run(c).expect("run").info.experiment_id;
    store.set_tag(Labelled::Experiment(exp_c), "baseline", true).expect("tag experiment");
    assert_eq!(store.runs_tagged("baseline").expect("find"), [c, a]);
    store.set_tag(Labelled::Run(a), "baseline", false).expect("untag");
    assert_eq!(store.runs_tagged("baseline").expect("find"), [c]);
    assert!(store.runs_tagged("nothing").expect("find").is_empty());
    store.set_note(Labelled::Run(b), "diverged after epoch 1").expect("note");
    let labels = store.run_labels().expect("labels");
    assert_eq!(labels[&b].tags, ["lr-scan"]);
    assert_eq!(labels[&b].note, "diverged after epoch 1");
    assert_eq!(labels[&b].sweep_id, Some(created.sweep_id));
    assert!(store.set_tag(Labelled::Run(a), "  ", true).is_err() && store.set_tag(Labelled::Run(a), "two\nlines", true).is_err());
    assert!(store.set_tag(Labelled::Run(9999), "x", true).expect_err("no run").to_string().contains("9999"));
}

#[test]
fn deleting_a_run_removes_its_records_and_folder_only_and_refuses_a_running_run() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let exp = runner::create_experiment(&mut store, &spec).expect("experiment");
    let done = runner::run_experiment(&mut store, home.path(), exp, &mut NullObserver, CancelToken::new()).expect("run");
    let run = done.run_id;
    let folder = home.path().join("runs").join(run.to_string());
    assert!(folder.join("checkpoint").is_dir());
    // A folder the store did not claim, and a run whose recorded folder is outside the store.
    let foreign = home.path().join("runs").join("999");
    std::fs::create_dir_all(&foreign).expect("foreign");
    std::fs::write(foreign.join("keep.txt"), "mine").expect("file");
    let other = runner::run_experiment(&mut store, home.path(), exp, &mut NullObserver, CancelToken::new()).expect("run");
    let outside = home.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    raw(home.path())
        .execute("UPDATE runs SET run_dir = ?2, checkpoint_path = NULL WHERE id = ?1", rusqlite::params![other.run_id, outside.to_str()])
        .expect("point elsewhere");

    let plan = store.delete_runs(&[run, other.run_id], false).expect("plan");
    assert!(!plan.applied);
    assert_eq!(plan.folders, std::slice::from_ref(&folder), "only the folder the store claimed");
    assert!(folder.is_dir(), "a plan deletes nothing");
    let gone = store.delete_runs(&[run, other.run_id], true).expect("delete");
    assert!(gone.applied);
    assert!(!folder.exists(), "the run's folder is gone");
    assert!(foreign.join("keep.txt").is_file() && outside.is_dir(), "folders the store did not claim are kept");
    for table in ["runs", "scores", "step_losses", "epoch_losses", "run_splits", "run_log"] {
        assert_eq!(count(home.path(), table), 0, "{table}");
    }
    assert_eq!(count(home.path(), "experiments"), 1, "deleting runs keeps their experiment");

    // A running run (this process holds its lock) is refused, and nothing is deleted.
    let live = store.create_run(exp).expect("run");
    store.start_run(live, "cpu").expect("start");
    let e = store.delete_runs(&[live], true).expect_err("running").to_string();
    assert!(e.contains(&format!("run {live} is running")) && e.contains("nothing was deleted"), "{e}");
    assert_eq!(store.run(live).expect("still there").info.status, RunStatus::Running);
    store.finish_run(live, RunStatus::Cancelled, None).expect("finish");
    let gone = store.delete_experiment(exp, true).expect("delete experiment");
    assert_eq!((gone.runs, gone.experiments), (vec![live], vec![exp]));
    assert_eq!(count(home.path(), "experiments"), 0);
}

#[test]
fn a_dataset_in_use_is_kept_unless_its_runs_go_too_and_its_files_always_stay() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let created = create_sweep(&mut store, &spec, &grid(&["train.seed=1,2"]), true).expect("sweep");
    let e = store.delete_dataset("shapes", false, true).expect_err("in use").to_string();
    assert!(e.contains("dataset `shapes` is used by 2 experiment(s) with 2 run(s)") && e.contains("--with-runs"), "{e}");
    assert_eq!(count(home.path(), "datasets"), 1);
    let plan = store.delete_dataset("shapes", true, false).expect("plan");
    assert_eq!(plan.runs, created.run_ids);
    assert_eq!(count(home.path(), "runs"), 2, "a plan deletes nothing");
    store.delete_dataset("shapes", true, true).expect("delete");
    for table in ["datasets", "samples", "images", "experiments", "runs", "run_queue"] {
        assert_eq!(count(home.path(), table), 0, "{table}");
    }
    assert_eq!(count(home.path(), "sweeps"), 1, "the sweep record stays, with no runs");
    let images = home.path().join("data").join(synth::IMAGES_DIR);
    assert!(std::fs::read_dir(&images).expect("images").count() > 0, "the dataset's files are not the store's");
}
