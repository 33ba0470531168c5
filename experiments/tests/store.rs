//! The experiment store: migrations and settings, datasets (field for field, duplicates, atomic inserts),
//! the run lifecycle, concurrent writers and foreign keys. Recovery of interrupted runs and a busy store:
//! `store_recovery.rs`.

use std::path::PathBuf;

use experiments::model::engine::{SampleScore, Summary};
use experiments::events::{Event, Phase};
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::{
    EpochLoss, RunMetrics, RunStatus, StepLoss, Store, StoredScore, DB_FILE, MIGRATIONS, SCHEMA_VERSION,
};
use experiments::vocab::{Split, Stage};

#[path = "support/store.rs"]
mod support;
use support::*;

const EXPECTED_TABLES: [&str; 19] = [
    "archived_runs",
    "datasets",
    "epoch_losses",
    "experiment_tags",
    "experiments",
    "images",
    "pulled_runs",
    "remote_pushes",
    "run_log",
    "run_queue",
    "run_splits",
    "run_system",
    "run_tags",
    "runs",
    "samples",
    "scores",
    "settings",
    "step_losses",
    "sweeps",
];

// ------------------------------------------------------------------------------------------ schema and settings

#[test]
fn migrations_apply_on_a_fresh_store_and_reopening_is_idempotent() {
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path().join("nested").join("home");
    let store = Store::open(&home).expect("open creates the folder and the database");
    assert_eq!(store.path(), home.join(DB_FILE));
    assert!(store.path().is_file());
    let files = migration_files();
    assert!(!files.is_empty());
    assert_eq!(SCHEMA_VERSION as usize, files.len());
    assert_eq!(MIGRATIONS.len(), files.len());
    assert_eq!(store.schema_version().expect("version"), files.len() as i64);
    assert_eq!(tables(&raw(&home)), EXPECTED_TABLES);
    drop(store);

    // Reopening applies nothing twice and keeps the data.
    let mut store = Store::open(&home).expect("reopen");
    store.insert_dataset(&dataset("d", 1, 1)).expect("insert");
    drop(store);
    let store = Store::open(&home).expect("reopen again");
    assert_eq!(store.schema_version().expect("version"), files.len() as i64);
    let user_version: i64 = raw(&home).query_row("PRAGMA user_version", [], |r| r.get(0)).expect("user_version");
    assert_eq!(user_version, files.len() as i64);
    assert_eq!(store.datasets().expect("datasets").len(), 1);
    assert_eq!(tables(&raw(&home)), EXPECTED_TABLES);
}

#[test]
fn handles_opening_a_fresh_store_at_once_migrate_it_once() {
    let home = tempfile::tempdir().expect("tempdir");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let home = home.path().to_path_buf();
            std::thread::spawn(move || Store::open(&home).and_then(|s| s.schema_version()))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread").expect("open"), SCHEMA_VERSION);
    }
    assert_eq!(tables(&raw(home.path())), EXPECTED_TABLES);
}

#[test]
fn a_store_from_a_newer_version_is_refused_readably() {
    let home = tempfile::tempdir().expect("tempdir");
    drop(Store::open(home.path()).expect("open"));
    raw(home.path()).pragma_update(None, "user_version", SCHEMA_VERSION + 1).expect("bump");
    let e = Store::open(home.path()).expect_err("newer schema").to_string();
    assert!(e.contains(DB_FILE) && e.contains("newer"), "{e}");
}

#[test]
fn a_store_with_a_negative_schema_version_is_refused_and_left_as_it_was() {
    let home = tempfile::tempdir().expect("tempdir");
    let (store, ..) = setup(home.path());
    drop(store);
    raw(home.path()).pragma_update(None, "user_version", -3).expect("corrupt the version");
    for _ in 0..2 {
        let e = Store::open(home.path()).expect_err("negative schema version").to_string();
        assert!(e.contains(DB_FILE) && e.contains("-3"), "{e}");
        assert!(!e.contains("CREATE TABLE") && !e.contains('\n'), "one line, no SQL: {e}");
    }
    // Untouched: setting the version back makes it usable with its data.
    raw(home.path()).pragma_update(None, "user_version", SCHEMA_VERSION).expect("repair");
    assert_eq!(Store::open(home.path()).expect("repaired").datasets().expect("datasets").len(), 1);
}

#[test]
fn a_failing_migration_names_its_file_without_printing_its_sql() {
    let home = tempfile::tempdir().expect("tempdir");
    let (store, ..) = setup(home.path());
    drop(store);
    // The tables exist but the version says none was applied: migration 0001 fails half-way.
    raw(home.path()).pragma_update(None, "user_version", 0).expect("reset the version");
    let e = Store::open(home.path()).expect_err("tables already there").to_string();
    assert!(e.contains(MIGRATIONS[0].0) && e.contains("already exists"), "{e}");
    assert!(!e.contains("CREATE TABLE") && !e.contains('\n'), "one line, no SQL: {e}");
    assert_eq!(count(home.path(), "datasets"), 1, "nothing was lost");
}

#[test]
fn every_connection_uses_wal_foreign_keys_a_busy_timeout_and_normal_sync() {
    let home = tempfile::tempdir().expect("tempdir");
    for _ in 0..2 {
        let store = Store::open(home.path()).expect("open");
        let p = store.pragmas().expect("pragmas");
        assert_eq!(p.journal_mode, "wal");
        assert!(p.foreign_keys);
        assert_eq!(p.busy_timeout_ms, 5000);
        assert_eq!(p.synchronous, 1, "NORMAL");
        assert_eq!(p.user_version, SCHEMA_VERSION);
    }
    // WAL is a property of the file: a plain connection sees it too.
    let mode: String = raw(home.path()).query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("journal_mode");
    assert_eq!(mode, "wal");
}

#[test]
fn every_migration_file_is_valid_sql_and_the_final_schema_has_the_expected_tables() {
    let conn = rusqlite::Connection::open_in_memory().expect("memory db");
    conn.pragma_update(None, "foreign_keys", true).expect("fk");
    for f in migration_files() {
        let sql = std::fs::read_to_string(&f).expect("read");
        assert!(!sql.trim().is_empty(), "{} is empty", f.display());
        conn.execute_batch(&sql).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    assert_eq!(tables(&conn), EXPECTED_TABLES);
    let fk_problems: i64 =
        conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).expect("fk check");
    assert_eq!(fk_problems, 0);
    // The runs table has what recovery needs.
    let mut st = conn.prepare("SELECT name FROM pragma_table_info('runs')").expect("prepare");
    let cols: Vec<String> =
        st.query_map([], |r| r.get(0)).expect("query").collect::<rusqlite::Result<_>>().expect("cols");
    for c in ["owner_pid", "owner_host", "owner_start", "heartbeat_at", "status", "phase", "checkpoint_path"] {
        assert!(cols.iter().any(|x| x == c), "runs lacks {c}");
    }
}

#[test]
fn default_home_honours_cliplab_home() {
    std::env::set_var("CLIPLAB_HOME", "/somewhere/else");
    assert_eq!(Store::default_home(), PathBuf::from("/somewhere/else"));
    std::env::remove_var("CLIPLAB_HOME");
    let h = Store::default_home();
    assert!(h.ends_with("cliplab") || h.ends_with("CLIP Lab") || h.ends_with(".cliplab"), "{}", h.display());
}

// ------------------------------------------------------------------------------------------ datasets

#[test]
fn a_dataset_reads_back_field_for_field() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(home.path()).expect("open");
    let d = dataset("newyorker", 4, 3);
    let id = store.insert_dataset(&d).expect("insert");

    let list = store.datasets().expect("datasets");
    assert_eq!(list.len(), 1);
    let info = &list[0];
    assert_eq!(info.id, id);
    assert_eq!(info.name, "newyorker");
    assert_eq!(info.metadata_path, d.metadata_path);
    assert_eq!(info.images_dir, d.images_dir);
    assert_eq!(info.columns, d.columns);
    assert_eq!((info.n_samples, info.n_images, info.n_skipped), (12, 4, 1));
    assert_eq!(info.content_hash, d.content_hash);
    assert!(info.created_at.len() >= 20 && info.created_at.ends_with('Z'), "{}", info.created_at);
    assert_eq!(&store.dataset("newyorker").expect("by name"), info);
    assert_eq!(&store.dataset(&id.to_string()).expect("by id"), info);

    let samples = store.dataset_samples(id).expect("samples");
    assert_eq!(samples.len(), d.rows.len());
    let images = store.dataset_images(id).expect("images");
    assert_eq!(images, d.images, "every image field, in file-name order");
    for (s, r) in samples.iter().zip(&d.rows) {
        assert_eq!(s.row, r.row);
        assert_eq!(s.filename, r.filename);
        assert_eq!(s.choices, r.choices);
        assert_eq!(s.label, r.label);
        assert_eq!(s.extra, serde_json::Value::Object(r.extra.clone()));
        let im = d.images.iter().find(|i| i.filename == r.filename).expect("image");
        assert_eq!(s.image_path, im.path);
        assert_eq!(s.image_sha256, im.sha256);
    }
    // Rows of one image share its id; different images have different ids.
    let ids: std::collections::BTreeSet<i64> = samples.iter().map(|s| s.image_id).collect();
    assert_eq!(ids.len(), 4);
    assert!(samples.chunks(3).all(|g| g.iter().all(|s| s.image_id == g[0].image_id)));
    assert_eq!(store.dataset_report(id).expect("report"), d.report);

    // A second dataset keeps its own rows.
    let id2 = store.insert_dataset(&dataset("other", 1, 1)).expect("insert");
    assert_eq!(store.dataset_samples(id2).expect("samples").len(), 1);
    assert_eq!(store.dataset_samples(id).expect("samples").len(), 12);
    assert_eq!(
        store.datasets().expect("datasets").iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["newyorker", "other"]
    );
}

#[test]
fn an_unknown_dataset_is_a_readable_error_naming_the_known_ones() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(home.path()).expect("open");
    let e = store.dataset("nope").expect_err("empty store").to_string();
    assert!(e.contains("nope"), "{e}");
    store.insert_dataset(&dataset("alpha", 1, 1)).expect("insert");
    store.insert_dataset(&dataset("beta", 1, 1)).expect("insert");
    let e = store.dataset("nope").expect_err("unknown").to_string();
    assert!(e.contains("no dataset named `nope`") && e.contains("alpha, beta"), "{e}");
    assert!(store.dataset_samples(999).is_err());
    assert!(store.dataset_report(999).is_err());
}

#[test]
fn a_duplicate_dataset_name_is_refused_readably_and_changes_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(home.path()).expect("open");
    let first = dataset("shapes", 2, 2);
    let id = store.insert_dataset(&first).expect("insert");
    let before = (count(home.path(), "datasets"), count(home.path(), "images"), count(home.path(), "samples"));

    let mut second = dataset("shapes", 5, 1);
    second.content_hash = "cd".repeat(32);
    let e = store.insert_dataset(&second).expect_err("duplicate").to_string();
    assert!(e.contains("a dataset named `shapes` already exists"), "{e}");

    let after = (count(home.path(), "datasets"), count(home.path(), "images"), count(home.path(), "samples"));
    assert_eq!(before, after);
    let info = store.dataset("shapes").expect("still there");
    assert_eq!((info.id, info.n_images, info.content_hash.as_str()), (id, 2, first.content_hash.as_str()));
    assert_eq!(store.dataset_images(id).expect("images"), first.images);
}

#[test]
fn a_failing_insert_leaves_no_partial_rows() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(home.path()).expect("open");
    // The last row refers to an image that is not among the dataset's images: images and earlier rows are
    // written before the error is found, and must all be rolled back.
    let mut d = dataset("broken", 3, 2);
    let mut bad = d.rows[0].clone();
    bad.row = 99;
    bad.filename = "missing.png".into();
    d.rows.push(bad);
    let e = store.insert_dataset(&d).expect_err("missing image").to_string();
    assert!(e.contains("missing.png") && e.contains("row 99"), "{e}");
    for t in ["datasets", "images", "samples"] {
        assert_eq!(count(home.path(), t), 0, "{t} has leftovers");
    }
    assert!(store.datasets().expect("datasets").is_empty());

    // Two rows with the same row number fail in SQLite itself (UNIQUE), also atomically.
    let mut d = dataset("broken", 2, 2);
    d.rows[1].row = d.rows[0].row;
    assert!(store.insert_dataset(&d).is_err());
    for t in ["datasets", "images", "samples"] {
        assert_eq!(count(home.path(), t), 0, "{t} has leftovers");
    }

    // The name is still free.
    store.insert_dataset(&dataset("broken", 3, 2)).expect("a good insert under the same name");
    assert_eq!(count(home.path(), "samples"), 6);
}

// ------------------------------------------------------------------------------------------ runs

#[test]
fn a_run_goes_queued_running_completed_and_reads_back_exactly() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, ds, exp, samples) = setup(home.path());

    let e = store.experiment(exp).expect("experiment");
    assert_eq!(e.spec, spec("exp", "shapes"));
    assert_eq!(ExperimentSpec::from_toml(&e.spec_toml, None).expect("toml"), e.spec);
    assert_eq!((e.name.as_str(), e.dataset_id, e.dataset_name.as_str(), e.n_runs), ("exp", ds, "shapes", 0));
    assert_eq!(store.experiments().expect("experiments"), vec![e]);

    let run = store.create_run(exp).expect("run");
    let info = &store.runs().expect("runs")[0];
    assert_eq!((info.id, info.status, info.device.as_deref()), (run, RunStatus::Queued, None));
    assert_eq!(info.owner_pid, std::process::id());
    assert!(info.started_at.is_none() && info.ended_at.is_none());
    assert_eq!((info.lr, info.epochs, info.batch_size, info.optimizer.as_str()), (1e-3, 3, 2, "adamw"));
    assert_eq!((info.weight_decay, info.train_samples, info.heldout_samples), (0.01, 4, 2));
    assert_eq!((info.experiment_name.as_str(), info.dataset_name.as_str()), ("exp", "shapes"));

    store.start_run(run, "cpu").expect("start");
    let (train, held) = (vec![samples[4], samples[0], samples[5], samples[1]], vec![samples[3], samples[2]]);
    store.record_split(run, Split::Train, &train).expect("split");
    store.record_split(run, Split::Heldout, &held).expect("split");
    store.record_event(run, &Event::Info { message: "device: cpu".into() }).expect("info");
    store.record_event(run, &Event::PhaseStarted { phase: Phase::Train, total: 6 }).expect("phase");
    let mut steps = Vec::new();
    let mut epochs = Vec::new();
    for epoch in 1..=3 {
        for k in 1..=2 {
            let step = (epoch - 1) * 2 + k;
            let loss = 1.0 / (step as f64) + 0.123_456_789_012_345;
            store.record_event(run, &Event::Step { epoch, step, loss }).expect("step");
            let p = Event::Progress { phase: Phase::Train, done: step, total: 6, elapsed_s: 1.5, eta_s: 0.25 };
            store.record_event(run, &p).expect("progress");
            steps.push(StepLoss { step, epoch, loss });
        }
        let heldout_loss = (epoch != 2).then_some(0.5 / epoch as f64);
        store
            .record_event(run, &Event::EpochEnded { epoch, train_loss: 0.1 * epoch as f64, heldout_loss })
            .expect("epoch");
        epochs.push(EpochLoss { epoch, train_loss: 0.1 * epoch as f64, heldout_loss });
    }
    // Progress updates the run in place.
    let info = &store.runs().expect("runs")[0];
    assert_eq!((info.status, info.device.as_deref()), (RunStatus::Running, Some("cpu")));
    assert!(info.started_at.is_some());
    assert_eq!(
        (info.phase, info.phase_done, info.phase_total, info.phase_eta_s),
        (Some(Phase::Train), Some(6), Some(6), Some(0.25))
    );

    let mut recorded = Vec::new();
    for (phase, split, ids) in [
        (Stage::Before, Split::Train, &train),
        (Stage::Before, Split::Heldout, &held),
        (Stage::After, Split::Train, &train),
        (Stage::After, Split::Heldout, &held),
    ] {
        let rows: Vec<(i64, SampleScore)> =
            ids.iter().enumerate().map(|(i, &id)| (id, score(i + recorded.len()))).collect();
        store.record_scores(run, phase, split, &rows).expect("scores");
        for (id, s) in rows {
            recorded.push(StoredScore {
                sample_id: id,
                split,
                phase,
                probs: s.probs,
                logits: s.logits,
                label: s.label,
                label_prob: s.label_prob,
                correct: s.correct,
            });
        }
    }
    let metrics = RunMetrics {
        train_before: Some(Summary { n: 4, mean_label_prob: 0.2, accuracy: 0.25 }),
        train_after: Some(Summary { n: 4, mean_label_prob: 0.61, accuracy: 0.75 }),
        heldout_before: Some(Summary { n: 2, mean_label_prob: 1.0 / 3.0, accuracy: 0.0 }),
        heldout_after: None,
    };
    store.record_summary(run, &metrics).expect("summary");
    let ckpt = home.path().join("runs").join(run.to_string()).join("checkpoint");
    store.set_checkpoint(run, &ckpt).expect("checkpoint");
    store.finish_run(run, RunStatus::Completed, None).expect("finish");

    let d = store.run(run).expect("detail");
    assert_eq!(d.info.status, RunStatus::Completed);
    assert!(d.info.ended_at.is_some() && d.info.error.is_none());
    assert_eq!(d.info.metrics, metrics);
    assert_eq!(d.spec, spec("exp", "shapes"));
    assert_eq!((&d.train_ids, &d.heldout_ids), (&train, &held));
    assert_eq!(d.step_losses, steps);
    assert_eq!(d.epoch_losses, epochs);
    assert_eq!(d.log.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["device: cpu"]);
    assert_eq!(d.checkpoint.as_deref(), Some(ckpt.as_path()));
    assert_eq!(store.run_scores(run).expect("scores"), recorded, "every score, bit for bit, in order");
    assert_eq!(store.runs().expect("runs")[0], d.info);
    assert_eq!(store.experiment(exp).expect("experiment").n_runs, 1);

    // What `cliplab runs show --json` prints.
    let v = serde_json::to_value(&d).expect("json");
    assert_eq!(v["info"]["status"], "completed");
    assert_eq!(v["info"]["device"], "cpu");
    assert_eq!(v["step_losses"].as_array().map(Vec::len), Some(6));
    assert!(v["epoch_losses"][0]["heldout_loss"].as_f64().is_some());
    assert_eq!(v["train_ids"].as_array().map(Vec::len), Some(4));

    // Recording a split again replaces it.
    store.record_split(run, Split::Heldout, &held[..1]).expect("split");
    assert_eq!(store.run(run).expect("detail").heldout_ids, &held[..1]);
}

#[test]
fn failed_and_cancelled_runs_keep_their_error_and_statuses_parse() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, _, exp, _) = setup(home.path());
    let a = store.create_run(exp).expect("run");
    let b = store.create_run(exp).expect("run");
    store.start_run(a, "cpu").expect("start");
    store.finish_run(a, RunStatus::Failed, Some("img001.png changed since import")).expect("fail");
    store.finish_run(b, RunStatus::Cancelled, None).expect("cancel");
    let e = store.finish_run(b, RunStatus::Running, None).expect_err("not an end state").to_string();
    assert!(e.contains("running"), "{e}");
    let runs = store.runs().expect("runs");
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [b, a], "newest first");
    assert_eq!((runs[0].status, runs[1].status), (RunStatus::Cancelled, RunStatus::Failed));
    assert_eq!(runs[1].error.as_deref(), Some("img001.png changed since import"));
    assert!(store.run(12345).expect_err("no run").to_string().contains("12345"));
    assert!(store.start_run(12345, "cpu").is_err());
    assert!(store.create_run(999).is_err());

    for &s in RunStatus::ALL {
        assert_eq!(s.to_string().parse::<RunStatus>().expect("parse"), s);
        assert_eq!(serde_json::to_value(s).expect("json"), serde_json::Value::String(s.to_string()));
    }
    assert!("done".parse::<RunStatus>().is_err());
}

// ------------------------------------------------------------------------------------------ concurrency, keys

#[test]
fn two_handles_write_concurrently_without_lock_errors() {
    let home = tempfile::tempdir().expect("tempdir");
    let (store, _, exp, samples) = setup(home.path());
    drop(store);
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let home = home.path().to_path_buf();
            let samples = samples.clone();
            std::thread::spawn(move || -> experiments::Result<i64> {
                let mut store = Store::open(&home)?;
                let run = store.create_run(exp)?;
                store.start_run(run, &format!("thread {t}"))?;
                store.record_split(run, Split::Train, &samples)?;
                for step in 1..=150 {
                    store.record_event(run, &Event::Step { epoch: 1, step, loss: step as f64 + t as f64 })?;
                    store.record_event(
                        run,
                        &Event::Progress { phase: Phase::Train, done: step, total: 150, elapsed_s: 0.0, eta_s: 0.0 },
                    )?;
                    if step % 10 == 0 {
                        let rows: Vec<(i64, SampleScore)> = samples.iter().map(|&s| (s, score(step))).collect();
                        let phase = if step % 20 == 0 { Stage::After } else { Stage::Before };
                        if step <= 20 {
                            store.record_scores(run, phase, Split::Train, &rows)?;
                        }
                        store.heartbeat(run)?;
                        // Readers interleave with the other thread's writes.
                        store.runs()?;
                        store.run(run)?;
                    }
                }
                store.finish_run(run, RunStatus::Completed, None)?;
                Ok(run)
            })
        })
        .collect();
    let runs: Vec<i64> = threads.into_iter().map(|h| h.join().expect("thread").expect("no store error")).collect();
    let store = Store::open(home.path()).expect("open");
    for run in runs {
        let d = store.run(run).expect("run");
        assert_eq!(d.info.status, RunStatus::Completed);
        assert_eq!(d.step_losses.len(), 150);
        assert_eq!(store.run_scores(run).expect("scores").len(), 2 * samples.len());
    }
}

#[test]
fn foreign_keys_reject_rows_for_a_nonexistent_run_or_sample() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, _, exp, samples) = setup(home.path());
    let e = store
        .record_scores(4242, Stage::Before, Split::Train, &[(samples[0], score(0))])
        .expect_err("no such run")
        .to_string();
    assert!(e.contains("FOREIGN KEY"), "{e}");
    assert_eq!(count(home.path(), "scores"), 0);
    assert!(store.record_event(4242, &Event::Step { epoch: 1, step: 1, loss: 1.0 }).is_err());
    assert!(store.record_split(4242, Split::Train, &samples).is_err());
    assert_eq!(count(home.path(), "step_losses") + count(home.path(), "run_splits"), 0);

    let run = store.create_run(exp).expect("run");
    // A sample that does not exist, after valid ones: nothing of the batch stays.
    let rows = vec![(samples[0], score(0)), (samples[1], score(1)), (999_999, score(2))];
    assert!(store.record_scores(run, Stage::Before, Split::Train, &rows).is_err());
    assert_eq!(count(home.path(), "scores"), 0);
    assert!(store.record_split(run, Split::Train, &[samples[0], 999_999]).is_err());
    assert_eq!(count(home.path(), "run_splits"), 0);
    assert!(store.create_experiment(&spec("x", "shapes"), 777).is_err());
}
