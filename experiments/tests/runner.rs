//! The runner through the library API: a cancelled run stops between steps, is recorded as cancelled and keeps
//! what it recorded; splits are seeded and never share an image.


use experiments::events::{CancelToken, Event, Observer};
use experiments::run::runner;
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::{RunStatus, Store};
use experiments::Error;

#[path = "support/tiny.rs"]
mod tiny;

/// Cancels after `after` step events, as the GUI's cancel button or Ctrl-C would.
struct CancelAfter {
    steps: usize,
    after: usize,
    flag: CancelToken,
}

impl Observer for CancelAfter {
    fn on_event(&mut self, e: &Event) {
        if matches!(e, Event::Step { .. }) {
            self.steps += 1;
            if self.steps >= self.after {
                self.flag.cancel();
            }
        }
    }
}

fn setup(home: &std::path::Path) -> (Store, ExperimentSpec) {
    tiny::shapes_home(home, "cancel", "train = 20\nheldout = 10\nseed = 5", "epochs = 50\nbatch_size = 4")
}

#[test]
fn a_cancelled_run_stops_between_steps_and_keeps_its_record() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let exp = runner::create_experiment(&mut store, &spec).expect("experiment");
    let flag = CancelToken::new();
    let mut obs = CancelAfter { steps: 0, after: 7, flag: flag.clone() };
    let err = runner::run_experiment(&mut store, home.path(), exp, &mut obs, flag).expect_err("cancelled");
    assert!(matches!(err, Error::Cancelled), "{err}");
    let runs = store.runs().expect("runs");
    assert_eq!(runs[0].status, RunStatus::Cancelled);
    let d = store.run(runs[0].id).expect("run");
    assert_eq!(d.step_losses.len(), 7, "stops right after the step that asked to cancel");
    assert_eq!((d.train_ids.len(), d.heldout_ids.len()), (20, 10));
    assert!(d.checkpoint.is_none());
    // The before-scores were kept.
    assert_eq!(store.run_scores(runs[0].id).expect("scores").len(), 30);
}

#[test]
fn splits_are_seeded_and_grouped_by_image() {
    let home = tempfile::tempdir().expect("tempdir");
    let (store, _) = setup(home.path());
    let ds = store.dataset("shapes").expect("dataset");
    let samples = store.dataset_samples(ds.id).expect("samples");
    let a = runner::draw_splits(&samples, 20, 10, 1).expect("split");
    let b = runner::draw_splits(&samples, 20, 10, 1).expect("split");
    let c = runner::draw_splits(&samples, 20, 10, 2).expect("split");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let image = |id: &i64| samples.iter().find(|s| s.id == *id).map(|s| s.image_id).expect("sample");
    let train_images: std::collections::HashSet<i64> = a.train.iter().map(image).collect();
    assert!(a.heldout.iter().all(|id| !train_images.contains(&image(id))));
    // 60 samples in 30 images: 50 + 20 cannot be drawn without sharing.
    let e = runner::draw_splits(&samples, 50, 20, 1).expect_err("too big");
    assert!(e.to_string().contains("share no image"), "{e}");
}

/// Takes the store's write lock from another connection (as a long import in another process would) at the
/// `at`-th step event and holds it for `hold`.
struct LockStoreAt {
    db: std::path::PathBuf,
    at: usize,
    hold: std::time::Duration,
    steps: usize,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl Observer for LockStoreAt {
    fn on_event(&mut self, e: &Event) {
        if !matches!(e, Event::Step { .. }) {
            return;
        }
        self.steps += 1;
        if self.steps != self.at {
            return;
        }
        let (db, hold) = (self.db.clone(), self.hold);
        let (taken_tx, taken) = std::sync::mpsc::channel();
        self.holder = Some(std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(db).expect("other connection");
            conn.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
            taken_tx.send(()).expect("signal");
            std::thread::sleep(hold);
            conn.execute_batch("COMMIT").expect("release");
        }));
        taken.recv().expect("the lock is taken");
    }
}

#[test]
fn a_run_waits_out_a_store_locked_by_another_process_and_loses_no_step() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, mut spec) = setup(home.path());
    spec.train.epochs = 2;
    let exp = runner::create_experiment(&mut store, &spec).expect("experiment");
    // Longer than a connection's busy timeout (5 s): this failed with "database is locked" before.
    let hold = std::time::Duration::from_secs(8);
    let mut obs = LockStoreAt { db: store.path().to_path_buf(), at: 2, hold, steps: 0, holder: None };
    let started = std::time::Instant::now();
    let outcome = runner::run_experiment(&mut store, home.path(), exp, &mut obs, CancelToken::new()).expect("run");
    obs.holder.take().expect("the lock was taken").join().expect("holder");
    assert!(started.elapsed() >= hold, "the run's end waited for the lock");
    let d = store.run(outcome.run_id).expect("run");
    assert_eq!(d.info.status, RunStatus::Completed);
    assert_eq!(d.step_losses.len(), obs.steps, "every step is recorded");
    assert_eq!(d.step_losses.iter().map(|s| s.step).collect::<Vec<_>>(), (1..=obs.steps).collect::<Vec<_>>());
    assert_eq!(store.run_scores(outcome.run_id).expect("scores").len(), 2 * 30, "before and after scores");
}
