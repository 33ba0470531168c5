//! Runs whose process is gone: the OS lock each running process holds on its runs decides (a killed child
//! process, a pid that means nothing here), with the recorded pid, start marker and heartbeat as the fallback for
//! runs without a lock file; and a run that waits out a busy store.

use std::path::Path;

use experiments::events::Event;
use experiments::run::store::{RunRecorder, RunStatus, Store, LOCKS_DIR};
use experiments::vocab::{Split, Stage};

#[path = "support/store.rs"]
mod support;
use support::*;

#[path = "support/child.rs"]
mod child;
use child::{child_home, publish_run, ChildTest};

/// The lock file of run `run` in `home`.
fn lock_file(home: &Path, run: i64) -> std::path::PathBuf {
    home.join(LOCKS_DIR).join(format!("run-{run}.lock"))
}


/// The pid of a process that has exited (and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--list")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

#[test]
fn a_run_without_a_lock_whose_process_is_gone_is_marked_interrupted_on_reopen_and_keeps_its_records() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, _, exp, samples) = setup(home.path());
    let running = store.create_run(exp).expect("run");
    let queued = store.create_run(exp).expect("run");
    let mine = store.create_run(exp).expect("run");
    store.start_run(running, "cpu").expect("start");
    store.start_run(mine, "cpu").expect("start");
    store.record_split(running, Split::Train, &samples[..2]).expect("split");
    for step in 1..=5 {
        store.record_event(running, &Event::Step { epoch: 1, step, loss: step as f64 }).expect("step");
    }
    store
        .record_scores(running, Stage::Before, Split::Train, &[(samples[0], score(0)), (samples[1], score(1))])
        .expect("scores");
    drop(store);

    // Runs without a lock file (as an older version recorded them): the recorded process decides.
    for run in [running, queued] {
        std::fs::remove_file(lock_file(home.path(), run)).expect("lock file");
    }
    let pid = dead_pid();
    let conn = raw(home.path());
    conn.execute("UPDATE runs SET owner_pid = ?1 WHERE id IN (?2, ?3)", rusqlite::params![pid, running, queued])
        .expect("owner");
    if !cfg!(target_os = "linux") {
        // Without /proc only the heartbeat can tell.
        conn.execute(
            "UPDATE runs SET heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour') WHERE id IN (?1, ?2)",
            [running, queued],
        )
        .expect("heartbeat");
    }
    drop(conn);

    let store = Store::open(home.path()).expect("reopen");
    let d = store.run(running).expect("run");
    assert_eq!(d.info.status, RunStatus::Interrupted);
    assert!(d.info.ended_at.is_some());
    assert!(d.info.error.as_deref().is_some_and(|e| e.contains("interrupted")), "{:?}", d.info.error);
    assert_eq!(d.info.device.as_deref(), Some("cpu"));
    assert_eq!(d.step_losses.len(), 5, "recorded steps are kept");
    assert_eq!(d.train_ids, &samples[..2]);
    assert_eq!(store.run_scores(running).expect("scores").len(), 2, "recorded scores are kept");
    assert_eq!(store.run(queued).expect("run").info.status, RunStatus::Interrupted);
    assert_eq!(store.run(mine).expect("run").info.status, RunStatus::Running, "this process still owns it");
    drop(store);
    // Finished runs are never touched again.
    let store = Store::open(home.path()).expect("reopen");
    assert_eq!(store.run(running).expect("run").info.error, d.info.error);
}

#[test]
fn the_store_remembers_which_runs_it_found_interrupted_when_it_opened() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, _, exp, _) = setup(home.path());
    let dead = store.create_run(exp).expect("run");
    let mine = store.create_run(exp).expect("run");
    store.start_run(dead, "cpu").expect("start");
    assert!(store.recovered_runs().is_empty(), "a fresh store recovers nothing");
    drop(store);
    std::fs::remove_file(lock_file(home.path(), dead)).expect("lock file");
    // Forge a dead owner (and, without /proc, an old heartbeat).
    raw(home.path())
        .execute(
            "UPDATE runs SET owner_pid = ?1, heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour') \
             WHERE id = ?2",
            rusqlite::params![dead_pid(), dead],
        )
        .expect("owner");

    let mut store = Store::open(home.path()).expect("reopen");
    assert_eq!(store.recovered_runs(), &[dead], "the ids recovered on open are kept for the app");
    assert_eq!(store.run(dead).expect("run").info.status, RunStatus::Interrupted);
    // A later recovery finds nothing new and keeps what open found.
    assert!(store.recover_interrupted().expect("recover").is_empty());
    assert_eq!(store.recovered_runs(), &[dead]);
    assert_eq!(store.run(mine).expect("run").info.status, RunStatus::Queued, "this process still owns it");
    // The next handle has nothing left to recover.
    assert!(Store::open(home.path()).expect("reopen").recovered_runs().is_empty());
}

#[test]
fn a_run_owned_by_this_process_stays_running_on_reopen() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, _, exp, _) = setup(home.path());
    let run = store.create_run(exp).expect("run");
    store.start_run(run, "cpu").expect("start");
    store.record_event(run, &Event::Step { epoch: 1, step: 1, loss: 0.5 }).expect("step");
    // Other handles open (and recover) while the run is live.
    for _ in 0..2 {
        let other = Store::open(home.path()).expect("reopen");
        assert_eq!(other.run(run).expect("run").info.status, RunStatus::Running);
    }
    store.heartbeat(run).expect("heartbeat");
    store.finish_run(run, RunStatus::Completed, None).expect("finish");
    assert_eq!(Store::open(home.path()).expect("reopen").run(run).expect("run").info.status, RunStatus::Completed);
}

#[cfg(target_os = "linux")]
#[test]
fn without_a_lock_a_reused_pid_is_told_apart_by_the_process_start_marker() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, _, exp, _) = setup(home.path());
    let run = store.create_run(exp).expect("run");
    store.start_run(run, "cpu").expect("start");
    drop(store);
    std::fs::remove_file(lock_file(home.path(), run)).expect("lock file");
    // Same pid as this (live) process, but another process start: the recorded owner is gone.
    raw(home.path()).execute("UPDATE runs SET owner_start = 'another-boot/1' WHERE id = ?1", [run]).expect("marker");
    let store = Store::open(home.path()).expect("reopen");
    let info = store.run(run).expect("run").info;
    assert_eq!(info.status, RunStatus::Interrupted);
    assert!(info.error.as_deref().is_some_and(|e| e.contains("another process")), "{:?}", info.error);
}
// ------------------------------------------------------------------------------------------ the run lock

const CHILD_EXP: &str = "CLIPLAB_TEST_CHILD_EXP";

/// Not a test: the child process of the lock tests, which run this test binary with `--ignored --exact`. It opens
/// the store in `$CLIPLAB_TEST_CHILD_HOME`, creates and starts a run of experiment `$CLIPLAB_TEST_CHILD_EXP`,
/// records three steps, writes the run id to `child-run` in that folder and waits (at most a minute) to be killed.
#[test]
#[ignore = "the child process of the run lock tests"]
fn child_owns_a_run_until_killed() {
    let (Some(home), Some(exp)) = (child_home(), std::env::var(CHILD_EXP).ok()) else { return };
    let mut store = Store::open(&home).expect("open");
    let run = store.create_run(exp.parse().expect("experiment id")).expect("run");
    store.start_run(run, "cpu").expect("start");
    for step in 1..=3 {
        store.record_event(run, &Event::Step { epoch: 1, step, loss: 1.0 / step as f64 }).expect("step");
    }
    publish_run(&home, run);
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// A child process that owns a run of `exp` in `home` (see [`child_owns_a_run_until_killed`]); killed on drop.
fn spawn_owner(home: &Path, exp: i64) -> (ChildTest, i64) {
    ChildTest::spawn("child_owns_a_run_until_killed", home, &[(CHILD_EXP, exp.to_string())])
}

#[test]
fn a_run_of_a_killed_process_is_interrupted_and_keeps_its_steps() {
    let home = tempfile::tempdir().expect("tempdir");
    let (store, _, exp, _) = setup(home.path());
    drop(store);
    let (owner, run) = spawn_owner(home.path(), exp);
    assert!(lock_file(home.path(), run).is_file(), "the owner holds a lock file");
    let store = Store::open(home.path()).expect("open while the owner lives");
    assert_eq!(store.run(run).expect("run").info.status, RunStatus::Running);
    assert!(store.recovered_runs().is_empty());
    drop(store);

    owner.kill();
    let store = Store::open(home.path()).expect("open after the kill");
    assert_eq!(store.recovered_runs(), &[run]);
    let d = store.run(run).expect("run");
    assert_eq!(d.info.status, RunStatus::Interrupted);
    assert!(d.info.error.as_deref().is_some_and(|e| e.contains("ended before the run did")), "{:?}", d.info.error);
    assert_eq!(d.step_losses.len(), 3, "its steps are kept");
    assert!(!lock_file(home.path(), run).exists(), "the stale lock file is removed");
}

#[test]
fn a_live_run_whose_pid_means_nothing_here_is_not_taken_for_dead() {
    let home = tempfile::tempdir().expect("tempdir");
    let (store, _, exp, _) = setup(home.path());
    drop(store);
    let (owner, run) = spawn_owner(home.path(), exp);
    // What a process in another pid namespace (Flatpak, Docker) records: a pid and a start marker that do not
    // exist here.
    raw(home.path())
        .execute(
            "UPDATE runs SET owner_pid = ?1, owner_start = 'another-namespace/1', \
             heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour') WHERE id = ?2",
            rusqlite::params![dead_pid(), run],
        )
        .expect("forge");
    for _ in 0..2 {
        let store = Store::open(home.path()).expect("open");
        assert_eq!(store.run(run).expect("run").info.status, RunStatus::Running, "its lock is held");
        assert!(store.recovered_runs().is_empty());
    }
    owner.kill();
    let store = Store::open(home.path()).expect("open after the kill");
    assert_eq!(store.run(run).expect("run").info.status, RunStatus::Interrupted);
}

#[test]
fn a_finished_run_releases_its_lock() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, _, exp, _) = setup(home.path());
    let run = store.create_run(exp).expect("run");
    assert!(lock_file(home.path(), run).is_file());
    store.finish_run(run, RunStatus::Cancelled, None).expect("finish");
    assert!(!lock_file(home.path(), run).exists());
}

// ------------------------------------------------------------------------------------------ a busy store

#[test]
fn a_recorder_queues_through_a_busy_store_then_gives_up_after_its_patience_naming_the_store() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, _, exp, _) = setup(home.path());
    let run = store.create_run(exp).expect("run");
    let other = raw(home.path());
    other.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");

    let mut rec = RunRecorder::with_patience(run, std::time::Duration::from_millis(300));
    let step = |n: usize| Event::Step { epoch: 1, step: n, loss: 1.0 };
    let started = std::time::Instant::now();
    for n in 1..=3 {
        rec.record(&mut store, &step(n)).expect("queued, not failed");
    }
    assert!(started.elapsed() < std::time::Duration::from_millis(250), "recording does not wait for the lock");
    assert_eq!(rec.pending(), 3);
    let e = rec.flush(&mut store).expect_err("still locked after the patience").to_string();
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert!(e.contains(&store.path().display().to_string()) && e.contains("locked"), "{e}");
    assert!(e.contains("3 event(s) not recorded"), "{e}");

    // Once the other writer is done, the queue goes in, in order, in one go.
    other.execute_batch("COMMIT").expect("release");
    rec.record(&mut store, &step(4)).expect("written");
    assert_eq!(rec.pending(), 0);
    let steps: Vec<usize> = store.run(run).expect("run").step_losses.iter().map(|s| s.step).collect();
    assert_eq!(steps, [1, 2, 3, 4]);
}
