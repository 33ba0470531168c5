//! Faults a new user met around runs: a huge sample count, a spec that cannot run, a `runs/` folder left by a
//! deleted store, a demo killed while it wrote its files, an export into a folder holding the user's files. Each
//! is refused before anything is recorded or allocated, or handled without losing anyone's files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use experiments::events::{CancelToken, Event, NullObserver, Recorder};
use experiments::model::engine::ClipBundle;
use experiments::run::demo::{self, DemoOptions};
use experiments::run::runner::{self, RunOutcome};
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::Store;

#[path = "support/tiny.rs"]
mod tiny;

/// A store with the dataset `shapes` (30 images, 2 rows each) and a tiny model folder, under `home`.
fn setup(home: &Path) -> (Store, ExperimentSpec) {
    tiny::shapes_home(home, "faults", "train = 20\nheldout = 10", "epochs = 1\nbatch_size = 8")
}

/// Nothing recorded: no experiment, no run.
fn assert_nothing_recorded(store: &Store) {
    assert!(store.experiments().expect("experiments").is_empty(), "an experiment was recorded");
    assert!(store.runs().expect("runs").is_empty(), "a run was recorded");
}

#[test]
fn a_huge_sample_count_is_refused_before_anything_is_allocated() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, mut spec) = setup(home.path());
    let ds = store.dataset("shapes").expect("dataset");
    let samples = store.dataset_samples(ds.id).expect("samples");
    // The app's form runs this on every keystroke: it must neither abort nor allocate by the count.
    for (train, heldout) in [(1_000_000_000_000, 0), (usize::MAX, 1), (1, 1_000_000_000_000)] {
        let e = runner::draw_splits(&samples, train, heldout, 1).expect_err("cannot fit").to_string();
        assert!(e.contains("60 samples") && e.contains("does not fit"), "{e}");
    }
    spec.sample.train = 1_000_000_000_000;
    let e = runner::create_experiment(&mut store, &spec).expect_err("refused").to_string();
    assert!(e.contains("shapes") && e.contains("does not fit"), "{e}");
    assert_nothing_recorded(&store);
    // The demo's image count too: refused before a single image is drawn.
    let opts = DemoOptions { images: 1_000_000_000_000, heldout: 1, ..DemoOptions::default() };
    let e = demo::prepare(home.path(), &opts, &mut NullObserver).expect_err("too many").to_string();
    assert!(e.contains("at most"), "{e}");
    assert!(!home.path().join("demo").exists());
}

#[test]
fn a_spec_that_cannot_run_records_nothing() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut store, spec) = setup(home.path());
    let model = spec.model.clone();
    let try_create = |store: &mut Store, spec: &ExperimentSpec| {
        let e = runner::create_experiment(store, spec).expect_err("must refuse").to_string();
        assert!(!e.contains('\n'), "one line: {e}");
        assert_nothing_recorded(store);
        e
    };

    // A held-out split that does not fit (60 samples in 30 images).
    let mut s = spec.clone();
    s.sample.heldout = 50;
    let e = try_create(&mut store, &s);
    assert!(e.contains("does not fit"), "{e}");

    // A device this build cannot use.
    if !candle_core::utils::cuda_is_available() {
        let mut s = spec.clone();
        s.device = experiments::model::device::DeviceChoice::Cuda;
        assert!(try_create(&mut store, &s).contains("CUDA"));
    }

    // Broken model folders: each named in the error.
    let backup = home.path().join("backup");
    std::fs::create_dir(&backup).expect("mkdir");
    for f in ["config.json", "model.safetensors", "preprocessor_config.json"] {
        std::fs::copy(model.join(f), backup.join(f)).expect("backup");
    }
    let restore = |f: &str| std::fs::copy(backup.join(f), model.join(f)).map(drop).expect("restore");

    std::fs::write(model.join("config.json"), b"garbage").expect("write");
    assert!(try_create(&mut store, &spec).contains("config.json"));
    restore("config.json");

    let weights = model.join("model.safetensors");
    let len = std::fs::metadata(&weights).expect("meta").len();
    std::fs::OpenOptions::new().write(true).open(&weights).and_then(|f| f.set_len(len - 100)).expect("truncate");
    assert!(try_create(&mut store, &spec).contains("model.safetensors"));
    restore("model.safetensors");

    std::fs::remove_file(model.join("preprocessor_config.json")).expect("rm");
    assert!(try_create(&mut store, &spec).contains("preprocessor_config.json"));
    restore("preprocessor_config.json");

    let mut tensors = experiments::model::clip::params::read_safetensors(&weights).expect("read");
    let name = "vision_model.embeddings.class_embedding";
    let wrong = candle_core::Tensor::zeros(31, candle_core::DType::F32, &candle_core::Device::Cpu).expect("zeros");
    tensors.insert(name.into(), wrong);
    candle_core::safetensors::save(&tensors, &weights).expect("save");
    let e = try_create(&mut store, &spec);
    assert!(e.contains("model.safetensors") && e.contains(name), "{e}");
    restore("model.safetensors");

    runner::create_experiment(&mut store, &spec).expect("the restored folder is fine");
}

/// Creates and runs the experiment `spec` in `home`; returns the outcome and the events it reported.
fn run(home: &Path, store: &mut Store, spec: &ExperimentSpec) -> (RunOutcome, Vec<Event>) {
    let exp = runner::create_experiment(store, spec).expect("experiment");
    let mut rec = Recorder::default();
    let out = runner::run_experiment(store, home, exp, &mut rec, CancelToken::new()).expect("the run completes");
    (out, rec.events)
}

/// One completed run, shared by the export tests below: its home and outcome.
fn completed_run() -> &'static (PathBuf, RunOutcome) {
    static RUN: OnceLock<(PathBuf, RunOutcome)> = OnceLock::new();
    RUN.get_or_init(|| {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("run_faults-completed-run");
        if home.exists() {
            std::fs::remove_dir_all(&home).expect("clean the last test's home");
        }
        let (mut store, spec) = setup(&home);
        let (out, _) = run(&home, &mut store, &spec);
        (home, out)
    })
}

#[test]
fn a_runs_folder_left_by_a_deleted_store_is_kept_and_the_run_completes_elsewhere() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path();
    std::fs::create_dir_all(home.join("runs/1/checkpoint")).expect("mkdir");
    std::fs::write(home.join("runs/1/checkpoint/model.safetensors"), b"an older store's run").expect("write");
    let (mut store, spec) = setup(home);
    let (out, events) = run(home, &mut store, &spec);
    assert_eq!(out.run_id, 1);
    let foreign = home.join("runs/1/checkpoint/model.safetensors");
    assert_eq!(std::fs::read(&foreign).expect("kept"), b"an older store's run", "the old folder is untouched");
    let ckpt = out.checkpoint.clone().expect("checkpoint");
    assert!(ckpt.starts_with(home.join("runs")) && !ckpt.starts_with(home.join("runs/1/")), "{}", ckpt.display());
    ClipBundle::load(&ckpt, &candle_core::Device::Cpu, &Default::default()).expect("the run's own checkpoint loads");
    let said = events.iter().any(|e| matches!(e, Event::Info { message } if message.contains("runs/1")));
    assert!(said, "the run says where it writes instead: {events:?}");
    assert_eq!(store.run(1).expect("run").checkpoint.as_deref(), Some(ckpt.as_path()));
}

#[test]
fn an_export_never_overwrites_a_users_file() {
    let (home, out) = completed_run();
    let store = Store::open(home).expect("store");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("charts");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("samples.csv"), b"the user's own table").expect("write");
    let e = experiments::report::compare::compare_runs(&store, &[out.run_id], &dir).expect_err("refused").to_string();
    assert!(e.contains("samples.csv"), "{e}");
    assert_eq!(std::fs::read(dir.join("samples.csv")).expect("read"), b"the user's own table");
    // A new folder works, and so does exporting again over that export.
    let fresh = tmp.path().join("fresh");
    for _ in 0..2 {
        let r = experiments::report::compare::compare_runs(&store, &[out.run_id], &fresh).expect("export");
        assert!(r.files.iter().all(|f| f.starts_with(&fresh) && f.is_file()), "{:?}", r.files);
        assert!(r.files.iter().any(|f| f.ends_with("samples.csv")));
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).expect("ls").flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary folder left: {leftovers:?}");
}

#[cfg(unix)]
#[test]
fn a_checkpoint_export_gets_the_users_normal_mode() {
    use std::os::unix::fs::PermissionsExt;
    let (home, out) = completed_run();
    let store = Store::open(home).expect("store");
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("probe"), b"x").expect("probe");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    let want = mode(&tmp.path().join("probe"));
    let dest = tmp.path().join("shared");
    runner::export_checkpoint(&store, out.run_id, &dest).expect("export");
    let ckpt = out.checkpoint.clone().expect("checkpoint");
    for f in ["model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json", "cliplab.json"] {
        assert_eq!(mode(&dest.join(f)), want, "exported {f}");
        assert_eq!(mode(&ckpt.join(f)), want, "run's {f}");
    }
}

#[test]
fn a_demo_killed_while_writing_does_not_break_the_next_one() {
    let opts = DemoOptions { images: 20, heldout: 4, epochs: 1, ..DemoOptions::default() };
    // Where the demo keeps its files, relative to the home.
    let probe = tempfile::tempdir().expect("tempdir");
    let files = demo::prepare(probe.path(), &opts, &mut NullObserver).expect("prepare");
    let rel = |p: &Path| p.strip_prefix(probe.path()).expect("under home").to_path_buf();
    let full = std::fs::read_to_string(&files.metadata).expect("metadata");

    // What a kill leaves: the images written, metadata.jsonl cut mid-line, the model folder half there.
    let home = tempfile::tempdir().expect("tempdir");
    let meta = home.path().join(rel(&files.metadata));
    std::fs::create_dir_all(home.path().join(rel(&files.images_dir))).expect("mkdir");
    std::fs::write(&meta, &full[..full.len() / 2]).expect("half the metadata");
    let model = home.path().join(rel(&files.model));
    std::fs::create_dir_all(&model).expect("mkdir");
    std::fs::write(model.join("config.json"), b"{").expect("half a config");

    let mut store = Store::open(home.path()).expect("store");
    let out = demo::run_demo(&mut store, home.path(), &opts, Default::default(), &mut NullObserver, CancelToken::new())
        .expect("the next demo runs");
    assert!(out.checkpoint.is_some());
    assert_eq!(std::fs::read_to_string(&meta).expect("metadata"), full, "the metadata was written again, whole");
    let hidden: Vec<_> = std::fs::read_dir(home.path().join("demo"))
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.file_name())
        .collect();
    assert!(hidden.is_empty(), "temporary folders left: {hidden:?}");
}
