//! The checkpoint disk policy (issue 13, "Disk"), measured on real runs of the tiny experiment: a run that
//! freezes the vision tower stores only the text tower (its bytes on disk fall), unchanged files are shared by
//! content, the export is still the whole folder and reloads to the run's own scores, `keep_best` keeps the best
//! K checkpoints of a sweep, a checkpoint can be deleted while the records stay, and `gc` frees exactly the
//! bytes it said. Also: archived runs, and the images a deleted parquet import extracted into the home.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use experiments::events::{CancelToken, NullObserver, Observer, Phase};
use experiments::model::clip::params::read_safetensors;
use experiments::model::clip::FreezeSpec;
use experiments::model::engine::{ClipBundle, McqSample, TOKENIZER_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE};
use experiments::run::checkpoint::{self, CheckpointState, FROZEN_SHARD, TRAINED_SHARD};
use experiments::run::runner;
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::Store;
use experiments::run::sweep::{create_sweep, run_sweep, GridAxis};
use experiments::vocab::Stage;

#[path = "support/tiny.rs"]
mod tiny;

fn setup(home: &Path) -> (Store, ExperimentSpec) {
    tiny::shapes_home(home, "disk", "train = 8\nheldout = 6\nseed = 5", "epochs = 1\nbatch_size = 4\nlr = 1e-3")
}

/// Runs `spec` once as a new experiment; returns the run id.
fn run(store: &mut Store, home: &Path, spec: &ExperimentSpec) -> i64 {
    let exp = runner::create_experiment(store, spec).expect("experiment");
    runner::run_experiment(store, home, exp, &mut NullObserver, CancelToken::new()).expect("run").run_id
}

/// Bytes of the regular files under `dirs`, each file once however many links it has (what `du` counts).
fn du(dirs: &[&Path]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fn walk(d: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(d) else { return };
        for e in entries {
            let p = e.expect("entry").path();
            let m = std::fs::symlink_metadata(&p).expect("meta");
            if m.is_dir() {
                walk(&p, seen, total);
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                *total += m.len();
            }
        }
    }
    let (mut seen, mut total) = (HashSet::new(), 0);
    for d in dirs {
        walk(d, &mut seen, &mut total);
    }
    total
}

fn own_bytes(store: &Store, home: &Path, run: i64) -> u64 {
    let usage = checkpoint::disk_usage(store, home).expect("usage");
    usage.runs.iter().find(|r| r.run_id == run).expect("run measured").bytes
}

/// Scores `run`'s held-out samples with the model folder `dir`; by sample id.
fn rescore(store: &Store, run: i64, dir: &Path) -> HashMap<i64, Vec<f32>> {
    let d = store.run(run).expect("run");
    let bundle = ClipBundle::load(dir, &Device::Cpu, &FreezeSpec::default()).expect("the folder loads");
    let samples: HashMap<i64, _> =
        store.dataset_samples(d.info.dataset_id).expect("samples").into_iter().map(|s| (s.id, s)).collect();
    let set: Vec<McqSample> = d
        .heldout_ids
        .iter()
        .map(|id| {
            let s = &samples[id];
            let px = Arc::new(bundle.load_image(&s.image_path).expect("image"));
            McqSample::new(px, s.choices.clone(), s.label).expect("sample")
        })
        .collect();
    let scores = bundle.score(&set, d.spec.train.eval_batch_size, Phase::ScoreAfter, &mut NullObserver).expect("score");
    d.heldout_ids.iter().copied().zip(scores.into_iter().map(|s| s.probs)).collect()
}

#[test]
fn a_frozen_vision_run_stores_only_the_text_tower_shares_files_and_exports_the_whole_folder() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (mut store, spec) = setup(h);
    let full = run(&mut store, h, &spec);
    let mut frozen_spec = ExperimentSpec { name: "frozen".into(), ..spec.clone() };
    frozen_spec.freeze.vision = true;
    let frozen = run(&mut store, h, &frozen_spec);

    // The full run is a plain folder; the frozen one a sharded folder whose own file holds no vision tensor.
    let full_dir = store.run(full).expect("run").checkpoint.expect("checkpoint");
    let frozen_dir = store.run(frozen).expect("run").checkpoint.expect("checkpoint");
    assert!(full_dir.join(WEIGHTS_FILE).is_file());
    assert!(!frozen_dir.join(WEIGHTS_FILE).exists() && frozen_dir.join(WEIGHTS_INDEX_FILE).is_file());
    let trained = read_safetensors(&frozen_dir.join(TRAINED_SHARD)).expect("trained shard");
    assert!(!trained.is_empty());
    let vision = |n: &String| n.starts_with("vision_model.") || n.starts_with("visual_projection");
    assert!(!trained.keys().any(vision), "{:?}", trained.keys());
    let fixed = read_safetensors(&frozen_dir.join(FROZEN_SHARD)).expect("frozen shard");
    assert!(fixed.keys().all(vision));

    // Bytes on disk fall: the frozen run's own files are a fraction of the full run's.
    let (b_full, b_frozen) = (own_bytes(&store, h, full), own_bytes(&store, h, frozen));
    eprintln!("own bytes per run: everything trained {b_full}, vision frozen {b_frozen}");
    assert!(b_frozen < b_full, "{b_frozen} >= {b_full}");

    // A second frozen run shares the first one's frozen tensors and the unchanged files.
    let blobs_before = checkpoint::disk_usage(&store, h).expect("usage").blobs_bytes;
    frozen_spec.train.lr = 3e-3;
    let again = run(&mut store, h, &frozen_spec);
    let usage = checkpoint::disk_usage(&store, h).expect("usage");
    assert_eq!(usage.blobs_bytes, blobs_before, "no new shared file: the same frozen tensors and files");
    let again_dir = store.run(again).expect("run").checkpoint.expect("checkpoint");
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("meta"));
    assert_eq!(ino(&again_dir.join(FROZEN_SHARD)), ino(&frozen_dir.join(FROZEN_SHARD)), "one file on disk");
    assert_eq!(ino(&again_dir.join(TOKENIZER_FILE)), ino(&full_dir.join(TOKENIZER_FILE)));
    let counted = du(&[&h.join("runs"), &h.join(checkpoint::BLOBS_DIR)]);
    assert_eq!(usage.total_bytes, counted, "the total is what du counts");

    // The checkpoint folder loads as it is, and reproduces the scores the run recorded.
    let recorded: HashMap<i64, Vec<f32>> = store
        .run_scores(frozen)
        .expect("scores")
        .into_iter()
        .filter(|s| s.phase == Stage::After)
        .map(|s| (s.sample_id, s.probs))
        .collect();
    let from_folder = rescore(&store, frozen, &frozen_dir);
    // Exported: one model.safetensors with every tensor, each file its own, and the same scores.
    let out = h.join("exported");
    runner::export_checkpoint(&store, frozen, &out).expect("export");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let whole = ["cliplab.json", "config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"];
    assert_eq!(names, whole);
    assert_eq!(read_safetensors(&out.join(WEIGHTS_FILE)).expect("weights").len(), trained.len() + fixed.len());
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(out.join(TOKENIZER_FILE)).expect("m")), 1);
    let exported = rescore(&store, frozen, &out);
    for (id, p) in &recorded {
        if let Some(q) = from_folder.get(id) {
            let diff = p.iter().zip(q).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-5, "sample {id}: the folder scores {q:?}, the run recorded {p:?}");
            assert_eq!(exported[id], *q, "sample {id}: the export scores as the folder does");
        }
    }
    assert_eq!(from_folder.len(), 6);
}

#[test]
fn keep_best_keeps_the_best_checkpoints_of_a_sweep_and_deleting_one_keeps_its_records() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (mut store, mut spec) = setup(h);
    spec.keep_best = Some(1);
    let axes: Vec<GridAxis> = ["train.lr=1e-4,3e-2,1e-2"].iter().map(|a| GridAxis::parse(a).expect("axis")).collect();
    let created = create_sweep(&mut store, &spec, &axes, false).expect("sweep");
    let mut quiet = |_: i64| -> Box<dyn Observer> { Box::new(NullObserver) };
    let results = run_sweep(&mut store, h, &created.run_ids, &mut quiet, CancelToken::new()).expect("sweep runs");
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    let infos = store.runs().expect("runs");
    let metric = |id: i64| infos.iter().find(|r| r.id == id).and_then(checkpoint::ranking_metric).unwrap_or(-1.0);
    // The best by held-out accuracy, the earlier run among equals.
    let ids = &created.run_ids;
    let best = ids.iter().copied().fold(ids[0], |b, r| if metric(r) > metric(b) { r } else { b });
    for &r in &created.run_ids {
        let d = store.run(r).expect("run");
        assert_eq!(d.checkpoint.is_some(), r == best, "run {r} (metric {}), best {best}", metric(r));
        assert_eq!(store.run_scores(r).expect("scores").len(), 2 * 14, "run {r} keeps its records");
        assert!(d.info.metrics.heldout_after.is_some());
    }
    assert!(checkpoint::gc(&mut store, h, false).expect("gc").checkpoints.is_empty(), "already applied");
    // What the runs table and `runs list` show: the best kept, the others deleted by the policy.
    let states: HashMap<i64, CheckpointState> =
        store.run_folders().expect("folders").iter().map(|f| (f.run_id, checkpoint::checkpoint_state(f))).collect();
    for &r in &created.run_ids {
        let want = if r == best { CheckpointState::Kept } else { CheckpointState::Deleted };
        assert_eq!(states[&r], want, "run {r}");
        let disk = checkpoint::disk_usage(&store, h).expect("usage");
        assert_eq!(disk.runs.iter().find(|d| d.run_id == r).map(|d| d.checkpoint), Some(want));
    }
    assert_eq!(CheckpointState::Deleted.to_string(), "deleted");
    // A run that never wrote one (queued, not run) has none.
    let queued = store.create_run(infos[0].experiment_id).expect("run");
    let f = store.run_folders().expect("folders").into_iter().find(|f| f.run_id == queued).expect("folder");
    assert_eq!(checkpoint::checkpoint_state(&f), CheckpointState::None);

    // Deleting the kept one: the folder goes, the records stay, export says why it cannot.
    let dir = store.run(best).expect("run").checkpoint.expect("checkpoint");
    let freed = checkpoint::delete_checkpoint(&mut store, best).expect("delete checkpoint");
    assert!(freed.bytes > 0 && !dir.exists());
    assert!(store.run(best).expect("run").checkpoint.is_none());
    let f = store.run_folders().expect("folders").into_iter().find(|f| f.run_id == best).expect("folder");
    assert_eq!(checkpoint::checkpoint_state(&f), CheckpointState::Deleted);
    assert_eq!(store.run_scores(best).expect("scores").len(), 28);
    let e = runner::export_checkpoint(&store, best, &h.join("x")).expect_err("no checkpoint").to_string();
    assert!(e.contains("has no checkpoint") && e.contains("delete-checkpoint"), "{e}");
    let e = checkpoint::delete_checkpoint(&mut store, best).expect_err("twice").to_string();
    assert!(e.contains("has no checkpoint"), "{e}");
}

#[test]
fn gc_frees_exactly_the_bytes_it_said_and_only_then() {
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let (mut store, mut spec) = setup(h);
    spec.freeze.vision = true;
    let a = run(&mut store, h, &spec);
    // Two identical runs of one experiment (the same metric: the earlier one ranks first).
    let twice_spec = ExperimentSpec { name: "twice".into(), ..spec.clone() };
    let exp = runner::create_experiment(&mut store, &twice_spec).expect("experiment");
    let mut twice =
        || runner::run_experiment(&mut store, h, exp, &mut NullObserver, CancelToken::new()).expect("run").run_id;
    let (b, c) = (twice(), twice());
    let measured = || du(&[&h.join("runs"), &h.join(checkpoint::BLOBS_DIR)]);
    let plan = checkpoint::gc(&mut store, h, false).expect("gc");
    assert_eq!((plan.bytes, plan.checkpoints.len(), plan.blobs.len()), (0, 0, 0), "everything is in use");

    // A policy the runs were not recorded under (as for runs from before keep_best): gc applies it.
    let mut with_policy = store.experiment(exp).expect("experiment").spec;
    with_policy.keep_best = Some(1);
    let raw = rusqlite::Connection::open(h.join(experiments::run::store::DB_FILE)).expect("raw");
    let json = serde_json::to_string(&with_policy).expect("json");
    raw.execute("UPDATE experiments SET spec_json = ?1 WHERE id = ?2", rusqlite::params![json, exp]).expect("policy");
    let plan = checkpoint::gc(&mut store, h, false).expect("plan");
    assert_eq!(plan.checkpoints.iter().map(|c| c.run_id).collect::<Vec<_>>(), [c], "b ranks first, c goes");
    assert!(plan.blobs.is_empty(), "a and b still use the shared files");
    let before = measured();
    assert_eq!(measured(), before, "a plan frees nothing");
    let done = checkpoint::gc(&mut store, h, true).expect("gc --yes");
    assert_eq!((done.bytes, done.applied), (plan.bytes, true));
    assert_eq!(before - measured(), plan.bytes, "gc freed what it said");
    assert!(store.run(c).expect("c").checkpoint.is_none() && store.run(b).expect("b").checkpoint.is_some());

    // The last links to the shared files go: gc frees the blobs, and exactly their bytes.
    checkpoint::delete_checkpoint(&mut store, b).expect("b");
    assert_eq!(checkpoint::gc(&mut store, h, false).expect("gc").bytes, 0, "a's checkpoint still links to them");
    store.delete_runs(&[a], true).expect("delete run a");
    let plan = checkpoint::gc(&mut store, h, false).expect("plan");
    assert!(plan.blobs.len() >= 4 && plan.bytes > 0 && plan.checkpoints.is_empty(), "{plan:?}");
    let before = measured();
    checkpoint::gc(&mut store, h, true).expect("gc --yes");
    assert_eq!(before - measured(), plan.bytes, "gc freed what it said");
    assert_eq!(checkpoint::disk_usage(&store, h).expect("usage").blobs_bytes, 0);
}

#[test]
fn archived_runs_are_marked_and_unarchived_again_in_one_transaction() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let ds = store.dataset("shapes").expect("ds").id;
    let exp = store.create_experiment(&spec, ds).expect("experiment");
    let (a, b) = (store.create_run(exp).expect("a"), store.create_run(exp).expect("b"));
    store.set_archived(&[a], true).expect("archive");
    let e = store.set_archived(&[b, 999], true).expect_err("unknown run").to_string();
    assert!(e.contains("999"), "{e}");
    let labels = store.run_labels().expect("labels");
    assert!(labels[&a].archived && !labels[&b].archived, "an unknown run archives nothing");
    assert_eq!(store.archived_runs().expect("archived").into_iter().collect::<Vec<_>>(), [a]);
    store.set_archived(&[a], false).expect("unarchive");
    assert!(store.archived_runs().expect("archived").is_empty());
    assert!(!store.run_labels().expect("labels")[&a].pulled);
}

#[test]
fn deleting_a_parquet_import_removes_the_images_it_extracted_that_no_other_dataset_uses() {
    use experiments::data::{self, ColumnMap, ImportOptions, OnError};
    let home = tempfile::tempdir().expect("tempdir");
    let h = home.path();
    let mut store = Store::open(h).expect("store");
    let parquet = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf_embedded_mini.parquet");
    for name in ["first", "second"] {
        let opts = ImportOptions {
            name: name.into(),
            metadata: parquet.clone(),
            images_dir: None,
            columns: ColumnMap::default(),
            on_error: OnError::Reject,
            extract_dir: Some(h.join("images")),
        };
        let d = data::import(&opts, &mut NullObserver, CancelToken::new()).expect("import");
        store.insert_dataset(&d).expect("insert");
    }
    let first = store.dataset("first").expect("ds").id;
    let files: Vec<_> = store.dataset_images(first).expect("images").into_iter().map(|i| i.path).collect();
    assert_eq!(files.len(), 2);
    let mine = h.join("images").join("mine.png");
    std::fs::write(&mine, b"not the store's").expect("a user's file");

    let gone = store.delete_dataset("first", false, true).expect("delete first");
    assert!(gone.images.is_empty(), "the second dataset still uses them: {:?}", gone.images);
    assert!(files.iter().all(|f| f.is_file()));
    let plan = store.delete_dataset("second", false, false).expect("plan");
    assert_eq!(plan.images.len(), 2);
    assert!(files.iter().all(|f| f.is_file()), "a plan removes nothing");
    let gone = store.delete_dataset("second", false, true).expect("delete second");
    assert_eq!(gone.images.iter().collect::<HashSet<_>>(), files.iter().collect::<HashSet<_>>());
    assert!(files.iter().all(|f| !f.exists()), "the extracted images are gone");
    assert!(mine.is_file(), "a file the store does not own stays");
    assert!(gone.describe().contains("2 extracted images"), "{}", gone.describe());
}
