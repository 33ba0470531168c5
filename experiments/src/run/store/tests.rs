//! Unit tests of the store's internals (the public API is tested in `experiments/tests/store.rs`).

use std::path::{Path, PathBuf};

use super::owner::{
    hold_lock, lock_state, owner_gone, proc_state, release_lock, LockState, Owner, ProcState, Recorded, STALE_HEARTBEAT_S,
};
use super::*;
use crate::data::{ColumnMap, DatasetRow, ImageRecord, ImportedDataset};
use crate::validation::ValidationReport;
use crate::vocab::{Split, Stage};
use crate::run::spec::ExperimentSpec;

fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

#[test]
fn every_migration_file_is_embedded_in_order() {
    let mut files: Vec<String> = std::fs::read_dir(migrations_dir())
        .expect("migrations folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    files.sort();
    let embedded: Vec<&str> = MIGRATIONS.iter().map(|(n, _)| *n).collect();
    assert_eq!(files, embedded, "add each new migrations/NNNN_*.sql to MIGRATIONS");
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate() {
        assert!(name.starts_with(&format!("{:04}_", i + 1)), "{name} is not migration number {}", i + 1);
        let on_disk = std::fs::read_to_string(migrations_dir().join(name)).expect("read");
        assert_eq!(&on_disk, sql, "{name}");
    }
}

fn write_stat(root: &Path, pid: u32, state: &str, starttime: u64) {
    let dir = root.join(pid.to_string());
    std::fs::create_dir_all(&dir).expect("mkdir");
    // A comm with spaces and parentheses, as /proc allows.
    let mut fields = vec![state.to_string()];
    fields.extend((4..=21).map(|i| i.to_string()));
    fields.push(starttime.to_string());
    fields.extend((23..=52).map(|i| i.to_string()));
    std::fs::write(dir.join("stat"), format!("{pid} (my (odd) prog) {}\n", fields.join(" "))).expect("write");
}

fn fake_proc() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    write_stat(t.path(), 1, "S", 1);
    std::fs::create_dir_all(t.path().join("self")).expect("mkdir");
    std::fs::write(t.path().join("self/stat"), "1 (init) S 0").expect("write");
    std::fs::create_dir_all(t.path().join("sys/kernel/random")).expect("mkdir");
    std::fs::write(t.path().join("sys/kernel/random/boot_id"), "boot-a\n").expect("write");
    t
}

#[test]
fn proc_stat_is_parsed_after_the_last_parenthesis() {
    let root = fake_proc();
    write_stat(root.path(), 4242, "R", 987_654);
    write_stat(root.path(), 4243, "Z", 5);
    assert_eq!(proc_state(root.path(), 4242), ProcState::Alive("boot-a/987654".into()));
    assert_eq!(proc_state(root.path(), 4243), ProcState::Gone, "a zombie has exited");
    assert_eq!(proc_state(root.path(), 4244), ProcState::Gone);
    assert_eq!(proc_state(Path::new("/nonexistent-proc"), 4242), ProcState::Unknown);
}

#[cfg(target_os = "linux")]
#[test]
fn this_process_has_a_start_marker_on_linux() {
    let me = Owner::current();
    assert_eq!(me.pid, std::process::id());
    let marker = me.start.as_deref().expect("marker");
    assert_eq!(proc_state(Path::new("/proc"), me.pid), ProcState::Alive(marker.to_string()));
}

#[test]
fn owner_liveness_uses_the_start_marker_then_the_heartbeat() {
    let root = fake_proc();
    write_stat(root.path(), 700, "S", 1234);
    let rec = |pid: i64, host: &str, start: Option<&str>, age: f64| Recorded {
        pid,
        host: host.into(),
        start: start.map(String::from),
        heartbeat_age_s: age,
    };
    let gone = |r: &Recorded| owner_gone(r, LockState::Missing, "here", root.path());
    let old = STALE_HEARTBEAT_S * 10.0;
    // Alive with the same marker: not gone, however old the heartbeat.
    assert_eq!(gone(&rec(700, "here", Some("boot-a/1234"), old)), None);
    // Same pid, other start time (pid reuse) or other boot: gone.
    assert!(gone(&rec(700, "here", Some("boot-a/999"), 0.0)).is_some_and(|m| m.contains("another process")));
    assert!(gone(&rec(700, "here", Some("boot-b/1234"), 0.0)).is_some());
    // No such process: gone, even with a fresh heartbeat.
    assert!(gone(&rec(701, "here", Some("boot-a/1"), 0.0)).is_some_and(|m| m.contains("701")));
    // Another host, or no marker: the heartbeat decides.
    assert_eq!(gone(&rec(701, "elsewhere", Some("boot-a/1"), 10.0)), None);
    assert!(gone(&rec(701, "elsewhere", Some("boot-a/1"), old)).is_some_and(|m| m.contains("minutes")));
    assert_eq!(gone(&rec(700, "here", None, 10.0)), None);
    assert!(gone(&rec(700, "here", None, old)).is_some());
    // No /proc at all: the heartbeat decides.
    let no_proc = |r: &Recorded| owner_gone(r, LockState::Missing, "here", Path::new("/nonexistent-proc"));
    assert_eq!(no_proc(&rec(701, "here", Some("boot-a/1"), 10.0)), None);
    assert!(no_proc(&rec(701, "here", Some("boot-a/1"), old)).is_some());
}

#[test]
fn the_lock_decides_before_the_recorded_process() {
    let root = fake_proc();
    write_stat(root.path(), 700, "S", 1234);
    let dead_here = Recorded { pid: 701, host: "here".into(), start: Some("boot-a/1".into()), heartbeat_age_s: 1e9 };
    let alive_here = Recorded { pid: 700, host: "here".into(), start: Some("boot-a/1234".into()), heartbeat_age_s: 0.0 };
    let gone = |r: &Recorded, lock| owner_gone(r, lock, "here", root.path());
    assert_eq!(gone(&dead_here, LockState::Held), None, "a held lock means alive, whatever the pid says");
    assert!(gone(&alive_here, LockState::Free).is_some_and(|m| m.contains("ended before the run did")));
    assert!(gone(&dead_here, LockState::Missing).is_some(), "no lock file: the recorded process decides");
}

#[test]
fn a_lock_reads_held_while_any_handle_holds_it_and_free_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("locks").join("run-1.lock");
    assert_eq!(lock_state(&path), LockState::Missing);
    hold_lock(&path).expect("hold");
    assert_eq!(lock_state(&path), LockState::Held);
    release_lock(&path);
    assert_eq!(lock_state(&path), LockState::Missing, "released and removed");
    // Held through another open file (as another process would): the probe must not take it.
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    let other = std::fs::File::create(&path).expect("create");
    other.lock().expect("lock");
    assert_eq!(lock_state(&path), LockState::Held);
    assert!(hold_lock(&path).is_err_and(|e| e.to_string().contains("another running process")));
    drop(other);
    assert_eq!(lock_state(&path), LockState::Free);
}

fn tiny_dataset() -> ImportedDataset {
    ImportedDataset {
        name: "d".into(),
        metadata_path: "/data/m.jsonl".into(),
        images_dir: None,
        columns: ColumnMap::default(),
        rows: vec![DatasetRow {
            row: 1,
            filename: "a.png".into(),
            choices: vec!["x".into(), "y".into()],
            label: 1,
            extra: serde_json::Map::new(),
        }],
        images: vec![ImageRecord {
            filename: "a.png".into(),
            path: "/data/a.png".into(),
            sha256: "0".repeat(64),
            width: 1,
            height: 1,
            bytes: 1,
        }],
        report: ValidationReport { total_rows: 1, valid_rows: 1, problems: vec![] },
        content_hash: "1".repeat(64),
        extracted: Vec::new(),
    }
}

#[test]
fn without_proc_a_stale_heartbeat_marks_a_run_interrupted_and_a_fresh_one_does_not() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(home.path()).expect("open");
    let ds = store.insert_dataset(&tiny_dataset()).expect("dataset");
    let spec = ExperimentSpec::from_toml("name = \"e\"\ndataset = \"d\"\nmodel = \"/m\"\n[sample]\ntrain = 1\n", None)
        .expect("spec");
    let exp = store.create_experiment(&spec, ds).expect("experiment");
    let stale = store.create_run(exp).expect("run");
    let fresh = store.create_run(exp).expect("run");
    store.start_run(stale, "cpu").expect("start");
    store.start_run(fresh, "cpu").expect("start");
    store
        .conn
        .execute(
            "UPDATE runs SET heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-10 minutes') WHERE id = ?1",
            [stale],
        )
        .expect("age the heartbeat");
    // Runs without lock files (an older version's): the recorded process and heartbeat decide.
    for run in [stale, fresh] {
        std::fs::remove_file(super::owner::lock_path(&store.path, run)).expect("lock file");
    }
    let marked = store.recover_with(Path::new("/nonexistent-proc")).expect("recover");
    assert_eq!(marked, vec![stale]);
    assert_eq!(store.run(stale).expect("run").info.status, RunStatus::Interrupted);
    assert_eq!(store.run(fresh).expect("run").info.status, RunStatus::Running);
    // With /proc, this process owns `fresh`: it stays running.
    assert!(store.recover_interrupted().expect("recover").is_empty());
}

#[test]
fn datasets_refuse_updates() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(home.path()).expect("open");
    store.insert_dataset(&tiny_dataset()).expect("dataset");
    for sql in ["UPDATE datasets SET name = 'x'", "UPDATE images SET sha256 = 'x'", "UPDATE samples SET label = 0"] {
        let e = store.conn.execute(sql, []).expect_err(sql);
        assert!(e.to_string().contains("immutable"), "{sql}: {e}");
    }
}

#[test]
fn nan_losses_and_probabilities_read_back_as_nan() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(home.path()).expect("open");
    let ds = store.insert_dataset(&tiny_dataset()).expect("dataset");
    let sample = store.dataset_samples(ds).expect("samples")[0].id;
    let spec = ExperimentSpec::from_toml("name = \"e\"\ndataset = \"d\"\nmodel = \"/m\"\n[sample]\ntrain = 1\n", None)
        .expect("spec");
    let exp = store.create_experiment(&spec, ds).expect("experiment");
    let run = store.create_run(exp).expect("run");
    use crate::events::Event;
    store.record_event(run, &Event::Step { epoch: 1, step: 1, loss: f64::NAN }).expect("step");
    store
        .record_event(run, &Event::EpochEnded { epoch: 1, train_loss: f64::NAN, heldout_loss: Some(f64::NAN) })
        .expect("epoch");
    let score = crate::model::engine::SampleScore {
        probs: vec![f32::NAN, 0.5],
        logits: vec![f32::INFINITY, 1.0],
        label: 1,
        label_prob: f32::NAN,
        correct: false,
    };
    store.record_scores(run, Stage::Before, Split::Train, &[(sample, score)]).expect("scores");
    let d = store.run(run).expect("run");
    assert!(d.step_losses[0].loss.is_nan());
    assert!(d.epoch_losses[0].train_loss.is_nan());
    assert!(d.epoch_losses[0].heldout_loss.is_some_and(f64::is_nan));
    let s = &store.run_scores(run).expect("scores")[0];
    assert!(s.probs[0].is_nan() && s.probs[1] == 0.5 && s.label_prob.is_nan());
    assert!(s.logits[0].is_nan(), "JSON has no infinity: it reads back as NaN");
}
