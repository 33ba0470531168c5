//! The command layer against a temporary store: what each command returns is checked against what the store
//! holds, with a scripted picker standing in for the dialogs and a recording sink for the window.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cliplab_api::app::{App, RecordingSink};
use cliplab_api::picker::ScriptedPicker;
use cliplab_api::views::*;
use experiments::data::ColumnMap;
use experiments::events::Event;
use experiments::run::checkpoint::CheckpointState;
use experiments::run::spec::{ExperimentSpec, FieldProblem};
use experiments::run::store::{RunStatus, Store};

#[path = "../../tests/support/rows.rs"]
mod rows;

struct Fixture {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    out: PathBuf,
    picker: Arc<ScriptedPicker>,
    sink: Arc<RecordingSink>,
    app: Arc<App>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    let picker = Arc::new(ScriptedPicker::default());
    let sink = Arc::new(RecordingSink::default());
    let app = App::open(&home, Box::new(picker.clone()), sink.clone()).expect("open app");
    Fixture { _tmp: tmp, home, out, picker, sink, app }
}

/// Imports the demo data (small) and returns the dataset's id and name.
fn import_demo(f: &Fixture, images: usize) -> (i64, String) {
    let draft = f.app.demo_import(images).expect("demo files");
    let preview = f.app.preview_import(draft.token, &draft.name, ColumnMap::default()).expect("preview");
    assert!(preview.importable, "{preview:?}");
    assert_eq!(preview.report.problems.len(), 0, "{:?}", preview.report.problems);
    assert_eq!(preview.report.valid_rows, images);
    let ds = f.app.confirm_import(draft.token, false).expect("import");
    (ds.id, ds.name)
}

fn tiny_spec(f: &Fixture, name: &str, lr: f64, epochs: usize) -> ExperimentSpec {
    let mut spec = f.app.default_spec().expect("default spec");
    spec.name = name.into();
    spec.sample.train = 40;
    spec.sample.heldout = 12;
    spec.train.epochs = epochs;
    spec.train.batch_size = 8;
    spec.train.lr = lr;
    spec.train.eval_batch_size = 32;
    spec.device = experiments::model::device::DeviceChoice::Cpu;
    spec
}

/// Waits (generously: a hang must fail, not block CI) until the sink has seen run `run_id` finish.
fn wait_finished(f: &Fixture, run_id: i64) -> (RunStatus, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let found = f.sink.events.lock().expect("sink").iter().find_map(|e| match e {
            AppEvent::RunFinished { run_id: r, status, error } if *r == run_id => Some((*status, error.clone())),
            _ => None,
        });
        if let Some(done) = found {
            return done;
        }
        assert!(Instant::now() < deadline, "run {run_id} did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_events(f: &Fixture, run_id: i64) -> Vec<Event> {
    f.sink
        .events
        .lock()
        .expect("sink")
        .iter()
        .filter_map(|e| match e {
            AppEvent::Run { run_id: r, event } if *r == run_id => Some(event.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn bindings_are_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/bindings.ts");
    let want = cliplab_api::bindings::typescript();
    if std::env::var_os("CLIPLAB_UPDATE_BINDINGS").is_some() {
        std::fs::write(&path, &want).expect("write bindings");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: run `CLIPLAB_UPDATE_BINDINGS=1 cargo test -p cliplab-api --test commands bindings` and commit it",
        path.display()
    );
}

/// `(name, [(argument, TypeScript type)], TypeScript return type)` of every command, straight from the Rust types in
/// the command list (expanded here, not through `bindings::COMMANDS`).
macro_rules! ts_of_commands {
    ($( $(#[$doc:meta])* fn $name:ident($app:ident $(, $arg:ident: $ty:ty)*) -> $ret:ty $body:block )*) => {{
        let cfg = cliplab_api::bindings::config();
        vec![$((
            stringify!($name),
            vec![$((stringify!($arg), <$ty as ts_rs::TS>::name(&cfg))),*],
            <$ret as ts_rs::TS>::name(&cfg),
        )),*]
    }};
}

#[test]
fn bindings_give_each_command_its_argument_types() {
    use experiments::run::store::{DatasetInfo, ExperimentInfo, QueuedRun, RunInfo, SweepInfo};
    use experiments::run::sweep::GridAxis;
    use heck::ToLowerCamelCase;

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/bindings.ts");
    let ts = std::fs::read_to_string(&path).expect("bindings.ts");
    let api = &ts[ts.find("export const api = {").expect("the api object")..];
    let commands = cliplab_api::with_commands!(ts_of_commands);
    assert_eq!(api.lines().filter(|l| l.contains("=> invoke(")).count(), commands.len(), "one wrapper per command");
    for (name, args, ret) in commands {
        let js = name.to_lower_camel_case();
        let line = api.lines().find(|l| l.trim_start().starts_with(&format!("{js}: ("))).unwrap_or_else(|| panic!("no `{js}` in {}", path.display()));
        let params: Vec<String> = args.iter().map(|(a, t)| format!("{}: {t}", a.to_lower_camel_case())).collect();
        let ret = if ret == "null" { "void".to_string() } else { ret };
        let signature = format!("{js}: ({}): Promise<{ret}> => invoke(\"{name}\"", params.join(", "));
        assert!(line.trim_start().starts_with(&signature), "`{name}`: want `{signature}…`, bindings.ts has `{}`", line.trim());
        let keys: Vec<String> = args.iter().map(|(a, _)| a.to_lower_camel_case()).collect();
        if !keys.is_empty() {
            assert!(line.contains(&format!("{{ {} }}", keys.join(", "))), "`{name}` passes its arguments by name: {line}");
        }
    }
    // The types themselves: an id is a number, a query its ts-rs interface, a list of ids an array.
    assert!(api.contains("datasetSamples: (datasetId: number, query: SampleQuery): Promise<SamplePage>"), "{api}");
    assert!(api.contains("compareRuns: (runIds: Array<number>): Promise<CompareView>"), "{api}");
    assert!(api.contains("cancelImport: (token: number): Promise<void>"), "{api}");
}

#[test]
fn import_run_view_compare_and_export_through_the_commands() {
    let f = fixture();
    let (ds_id, ds_name) = import_demo(&f, 60);

    // Datasets: listed as stored; pages and filters over the samples.
    let stored = Store::open(&f.home).expect("store");
    let listed = f.app.datasets().expect("datasets");
    assert_eq!(listed, stored.datasets().expect("stored datasets"));
    let all = stored.dataset_samples(ds_id).expect("samples");
    let page = f.app.samples(ds_id, &SampleQuery { limit: 25, offset: 50, ..Default::default() }).expect("page");
    assert_eq!(page.total, 60);
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.items[0], all[50]);
    let label_c = f.app.samples(ds_id, &SampleQuery { label: Some(2), limit: 500, ..Default::default() }).expect("label C");
    assert_eq!(label_c.total, all.iter().filter(|s| s.label == 2).count());
    assert!(label_c.items.iter().all(|s| s.label == 2));
    let word = all[0].choices[all[0].label].split_whitespace().last().expect("a word").to_lowercase();
    let by_text = f.app.samples(ds_id, &SampleQuery { text: word.to_uppercase(), limit: 500, ..Default::default() }).expect("text");
    assert!(by_text.total >= 1 && by_text.total < 60 || by_text.total == 60);
    assert!(by_text.items.iter().all(|s| s.choices.iter().any(|c| c.to_lowercase().contains(&word))));

    // Thumbnails are JPEGs of the stored image.
    let jpeg = f.app.thumbnail(all[0].image_id, 96).expect("thumbnail");
    let img = image::load_from_memory(&jpeg).expect("decodes");
    assert!(img.width() <= 96 && img.height() <= 96 && img.width().max(img.height()) == 96);

    // The form's validation names the field at fault.
    let mut bad = tiny_spec(&f, "", -1.0, 0);
    bad.sample.heldout = 1000;
    bad.model = f.out.clone();
    let errs = f.app.check_spec(&bad).expect("check");
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for field in ["name", "train.lr", "train.epochs", "model", "sample.heldout"] {
        assert!(fields.contains(&field), "no error for {field}: {errs:?}");
    }
    assert!(f.app.create_experiment(&bad).is_err());
    assert!(f.app.experiments().expect("experiments").is_empty(), "a rejected spec stores nothing");

    // Two runs that differ in lr.
    let spec = tiny_spec(&f, "gui lr 3e-3", 3e-3, 3);
    assert_eq!(spec.dataset, ds_name);
    assert!(f.app.check_spec(&spec).expect("check").is_empty());
    let e1 = f.app.create_experiment(&spec).expect("create");
    let e2 = f.app.create_experiment(&ExperimentSpec { name: "gui lr 1e-4".into(), ..tiny_spec(&f, "x", 1e-4, 3) }).expect("create");
    let r1 = f.app.start_run(e1.id).expect("start");
    assert!(matches!(r1.status, RunStatus::Queued | RunStatus::Running));
    assert_eq!(wait_finished(&f, r1.id), (RunStatus::Completed, None));
    let r2 = f.app.start_run(e2.id).expect("start");
    assert_eq!(wait_finished(&f, r2.id), (RunStatus::Completed, None));
    assert!(f.app.active_runs().is_empty());

    // The window got the runner's events, and they are what the store recorded.
    let detail = stored.run(r1.id).expect("run");
    let steps: Vec<f64> = run_events(&f, r1.id).iter().filter_map(|e| if let Event::Step { loss, .. } = e { Some(*loss) } else { None }).collect();
    assert_eq!(steps, detail.step_losses.iter().map(|s| s.loss).collect::<Vec<_>>());
    assert_eq!(steps.len(), 3 * 5, "3 epochs of 40 samples in batches of 8");
    let epochs = &detail.epoch_losses;
    assert!(epochs.last().expect("epochs").train_loss < epochs[0].train_loss, "loss decreases: {epochs:?}");

    // Runs table = store.
    let runs = f.app.runs().expect("runs");
    assert_eq!(runs, stored.runs().expect("stored runs"));

    // Run detail: summary from the scores, equal to the store's metrics; the charts are drawn.
    let view = f.app.run_view(r1.id).expect("view");
    let summary = view.summary.as_ref().expect("summary");
    let m = detail.info.metrics;
    let close = |a: Option<f64>, b: f64| (a.expect("metric") - b).abs() < 1e-6;
    assert!(close(summary.heldout.accuracy_after, m.heldout_after.expect("after").accuracy));
    assert!(close(summary.train.mean_label_prob_before, m.train_before.expect("before").mean_label_prob));
    let names: Vec<&str> = view.charts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["loss_steps", "loss_epochs", "label_prob_slope", "label_prob_hist", "metrics", "calibration", "letters"]);
    assert!(view.charts.iter().all(|c| c.svg.starts_with("<svg")));
    assert!(view.charts[0].svg.contains(&view.colour), "the loss curve is drawn in the run's colour");

    // Sample cards: every scored sample once, probabilities sum to 1, sorted by gain.
    let cards = f.app.run_samples(r1.id, &RunSampleQuery { limit: 500, ..Default::default() }).expect("cards");
    assert_eq!(cards.total, 52);
    for c in &cards.items {
        for p in [c.before.as_ref().expect("before"), c.after.as_ref().expect("after")] {
            assert_eq!(p.len(), c.head.choices.len());
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        assert!(c.head.image_id > 0);
    }
    let deltas: Vec<f64> = cards.items.iter().map(|c| c.delta.expect("delta")).collect();
    assert!(deltas.windows(2).all(|w| w[0] >= w[1]), "sorted by gain");
    let losses = f.app.run_samples(r1.id, &RunSampleQuery { sort: SampleSort::Loss, limit: 5, ..Default::default() }).expect("loss");
    assert_eq!(losses.items[0].head.sample_id, cards.items.last().expect("last").head.sample_id);
    let held = f
        .app
        .run_samples(r1.id, &RunSampleQuery { split: Some(experiments::vocab::Split::Heldout), limit: 500, ..Default::default() })
        .expect("held-out");
    assert_eq!(held.total, 12);
    let flipped = f.app.run_samples(r1.id, &RunSampleQuery { flipped_only: true, limit: 500, ..Default::default() }).expect("flipped");
    assert!(flipped.items.iter().all(|c| {
        let right = |p: &Vec<f32>| p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i) == Some(c.head.label);
        right(c.before.as_ref().expect("b")) != right(c.after.as_ref().expect("a"))
    }));

    // Compare: one colour per run, the differing hyperparameter, flips between them.
    let cmp = f.app.compare(&[r1.id, r2.id]).expect("compare");
    assert_eq!(cmp.runs.len(), 2);
    assert_ne!(cmp.runs[0].colour, cmp.runs[1].colour);
    let keys: Vec<&str> = cmp.diff.iter().map(|d| d.key.as_str()).collect();
    assert!(keys.contains(&"train.lr"), "{keys:?}");
    assert!(keys.contains(&"name"), "{keys:?}");
    let loss = &cmp.charts[0].svg;
    assert!(loss.contains(&cmp.runs[0].colour) && loss.contains(&cmp.runs[1].colour));
    assert_eq!(cmp.flips.gained.len(), cmp.flips.wrong_right);
    assert_eq!(cmp.flip_cards.len(), cmp.flips.gained.len().min(24) + cmp.flips.lost.len().min(24));
    assert!(f.app.compare(&[r1.id]).is_err(), "one run is not a comparison");

    // Export: the checkpoint folder where the user picked, reloading to the run's scores; charts and CSV.
    assert!(f.app.export_checkpoint(r1.id).expect("cancelled dialog").is_none(), "no pick, no export");
    f.picker.push(f.out.clone());
    let exported = f.app.export_checkpoint(r1.id).expect("export").expect("picked");
    assert_eq!(exported.dir, f.out.join(format!("cliplab-run-{}", r1.id)));
    assert!(exported.dir.join("model.safetensors").is_file());
    let bundle = experiments::model::engine::ClipBundle::load(&exported.dir, &candle_core_cpu(), &Default::default()).expect("reload");
    let s = &all[0];
    let pixels = bundle.load_image(&s.image_path).expect("pixels");
    let sample = experiments::model::engine::McqSample::new(Arc::new(pixels), s.choices.clone(), s.label).expect("sample");
    let score = bundle
        .score(&[sample], 1, experiments::events::Phase::ScoreAfter, &mut experiments::events::NullObserver)
        .expect("score");
    if let Some(card) = cards.items.iter().find(|c| c.head.sample_id == s.id) {
        let after = card.after.as_ref().expect("after");
        for (a, b) in score[0].probs.iter().zip(after) {
            assert!((a - b).abs() < 1e-4, "exported weights reload to the run's scores: {:?} vs {after:?}", score[0].probs);
        }
    }
    f.picker.push(f.out.clone());
    let report = f.app.export_report(&[r1.id, r2.id]).expect("report").expect("picked");
    assert!(report.files.iter().any(|p| p.extension().is_some_and(|e| e == "svg")));
    assert!(report.files.iter().any(|p| p.extension().is_some_and(|e| e == "png")));
    assert!(report.dir.join("samples.csv").is_file());
}

fn candle_core_cpu() -> candle_core::Device {
    candle_core::Device::Cpu
}

#[test]
fn bad_rows_are_reported_before_anything_is_stored() {
    let f = fixture();
    let dir = f.out.join("data");
    let samples = experiments::data::synth::caption_contest(12, 5, 1, 32, 3);
    let metadata = experiments::data::synth::write_dataset(&dir, &samples).expect("write");
    // Row 3: a label that is not among the choices.
    rows::set_label(&metadata, 3, "Q");

    assert!(f.app.pick_import().expect("cancelled").is_none());
    f.picker.push(metadata.clone());
    f.picker.push(dir.join("images"));
    let draft = f.app.pick_import().expect("pick").expect("picked");
    assert_eq!(draft.metadata, metadata);
    let preview = f.app.preview_import(draft.token, "with a bad row", ColumnMap::default()).expect("preview");
    assert!(preview.importable);
    assert_eq!((preview.report.total_rows, preview.report.valid_rows), (12, 11));
    assert_eq!(preview.problem_kinds.len(), 1);
    assert_eq!(preview.problem_kinds[0].kind, experiments::validation::ProblemKind::LabelNotInChoices);
    assert_eq!(preview.report.problems[0].row, Some(3));

    let err = f.app.confirm_import(draft.token, false).expect_err("problems need consent");
    assert!(err.to_string().contains("skip bad rows"), "{err}");
    assert!(f.app.datasets().expect("datasets").is_empty(), "nothing stored");
    let ds = f.app.confirm_import(draft.token, true).expect("import valid rows");
    assert_eq!((ds.n_samples, ds.n_skipped), (11, 1));

    // A missing column: reported, not importable.
    f.picker.push(metadata.clone());
    let draft = f.app.pick_import().expect("pick").expect("picked");
    let cols = ColumnMap { label: "answer".into(), ..ColumnMap::default() };
    let preview = f.app.preview_import(draft.token, "no such column", cols).expect("preview");
    assert!(!preview.importable);
    assert_eq!(preview.problem_kinds[0].kind, experiments::validation::ProblemKind::MissingColumn);
    assert!(f.app.confirm_import(draft.token, true).is_err());
    assert_eq!(f.app.datasets().expect("datasets").len(), 1);
}

#[test]
fn a_taken_or_empty_name_is_refused_before_the_import_is_read() {
    let f = fixture();
    let (_, name) = import_demo(&f, 12);
    let draft = f.app.demo_import(12).expect("demo files");
    let before = f.sink.events.lock().expect("events").len();
    let err = f.app.preview_import(draft.token, &format!(" {name} "), ColumnMap::default()).expect_err("name taken");
    assert!(err.to_string().contains("already exists"), "{err}");
    let err = f.app.preview_import(draft.token, "  ", ColumnMap::default()).expect_err("no name");
    assert!(err.to_string().contains("name"), "{err}");
    let events = f.sink.events.lock().expect("events");
    assert!(
        !events[before..].iter().any(|e| matches!(e, AppEvent::Import { .. })),
        "nothing was read: {:?}",
        &events[before..]
    );
    drop(events);
    assert!(f.app.confirm_import(draft.token, false).is_err(), "nothing to store");
    assert_eq!(f.app.datasets().expect("datasets").len(), 1);
}

#[test]
fn many_thumbnail_requests_at_once_all_answer_from_a_few_workers() {
    let f = fixture();
    let (ds_id, _) = import_demo(&f, 12);
    let page = f.app.samples(ds_id, &SampleQuery { limit: 500, ..Default::default() }).expect("samples");
    let (tx, rx) = std::sync::mpsc::channel();
    let requests = 64;
    for i in 0..requests {
        let tx = tx.clone();
        let image_id = page.items[i % page.items.len()].image_id;
        // Several sizes, so that most requests decode (the cache holds one file per image and size).
        let size = 40 + u32::try_from(i).expect("small");
        f.app.thumbnail_later(image_id, size, move |made| {
            let worker = std::thread::current().name().unwrap_or("unnamed").to_string();
            tx.send((worker, made.map(|b| b.len()).map_err(|e| e.to_string()))).expect("reply");
        });
    }
    drop(tx);
    let mut workers = std::collections::BTreeSet::new();
    for _ in 0..requests {
        let (worker, made) = rx.recv_timeout(Duration::from_secs(120)).expect("every request is answered");
        assert!(made.as_ref().is_ok_and(|n| *n > 0), "{made:?}");
        workers.insert(worker);
    }
    assert!(
        workers.len() <= cliplab_api::app::THUMBNAIL_WORKERS && workers.iter().all(|w| w.starts_with("thumbnail-")),
        "made on the pool's threads only: {workers:?}"
    );
}

#[test]
fn a_failed_or_cancelled_run_keeps_its_record_and_the_app_goes_on() {
    let f = fixture();
    import_demo(&f, 60);
    // Cancelled: stop after the first training step.
    let exp = f.app.create_experiment(&tiny_spec(&f, "to cancel", 1e-3, 50)).expect("create");
    let run = f.app.start_run(exp.id).expect("start");
    let deadline = Instant::now() + Duration::from_secs(600);
    while !run_events(&f, run.id).iter().any(|e| matches!(e, Event::Step { .. })) {
        assert!(Instant::now() < deadline, "no step");
        std::thread::sleep(Duration::from_millis(20));
    }
    f.app.cancel_run(run.id).expect("cancel");
    assert_eq!(wait_finished(&f, run.id), (RunStatus::Cancelled, None));
    let kept = Store::open(&f.home).expect("store").run(run.id).expect("run");
    assert!(!kept.step_losses.is_empty() && kept.step_losses.len() < 250, "steps kept: {}", kept.step_losses.len());
    assert!(f.app.cancel_run(run.id).is_err(), "not running any more");

    // Failed: the model's weights vanish after the experiment was created.
    let model_copy = f.out.join("model-copy");
    let spec = tiny_spec(&f, "will fail", 1e-3, 1);
    std::fs::create_dir_all(&model_copy).expect("dir");
    for e in std::fs::read_dir(&spec.model).expect("model dir").flatten() {
        std::fs::copy(e.path(), model_copy.join(e.file_name())).expect("copy");
    }
    f.picker.push(model_copy.clone());
    let picked = f.app.pick_model().expect("pick").expect("picked");
    assert_eq!(picked.source, "picked");
    let exp = f.app.create_experiment(&ExperimentSpec { model: model_copy.clone(), ..spec }).expect("create");
    std::fs::remove_file(model_copy.join("model.safetensors")).expect("remove");
    let run = f.app.start_run(exp.id).expect("start");
    let (status, error) = wait_finished(&f, run.id);
    assert_eq!(status, RunStatus::Failed);
    let error = error.expect("a message");
    assert!(error.contains("model.safetensors"), "{error}");
    let runs = f.app.runs().expect("the app still answers");
    assert_eq!(runs.iter().find(|r| r.id == run.id).expect("listed").error.as_deref(), Some(error.as_str()));

    // A model folder never picked is refused.
    let mut spec = tiny_spec(&f, "unpicked model", 1e-3, 1);
    spec.model = f.out.clone();
    let err = f.app.create_experiment(&spec).expect_err("unpicked");
    assert!(err.to_string().starts_with("model:"), "{err}");
}

/// A run whose process died while the app was closed shows in the "runs were interrupted" banner of the next
/// start: `App::open` reports the runs that opening the store recovered (it used to recover a second time and
/// find nothing).
#[test]
fn runs_found_dead_at_start_reach_the_banner() {
    let f = fixture();
    import_demo(&f, 60);
    let exp = f.app.create_experiment(&tiny_spec(&f, "killed", 1e-3, 1)).expect("experiment").id;
    let mut store = Store::open(&f.home).expect("store");
    let run = store.create_run(exp).expect("run");
    store.start_run(run, "cpu").expect("start");
    drop(store);
    // Forge a dead owner of an older version's run (no lock file): a pid that has exited, and an old heartbeat.
    let lock = f.home.join(experiments::run::store::LOCKS_DIR).join(format!("run-{run}.lock"));
    std::fs::remove_file(lock).expect("the run's lock file");
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let dead_pid = child.id();
    child.wait().expect("wait");
    rusqlite::Connection::open(f.home.join(experiments::run::store::DB_FILE))
        .expect("raw connection")
        .execute(
            "UPDATE runs SET owner_pid = ?1, heartbeat_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour') WHERE id = ?2",
            rusqlite::params![dead_pid, run],
        )
        .expect("forge owner");

    let app = App::open(&f.home, Box::new(ScriptedPicker::default()), Arc::new(RecordingSink::default())).expect("reopen");
    assert_eq!(app.info().recovered, vec![run], "the banner lists the run found dead");
    assert_eq!(app.runs().expect("runs").iter().find(|r| r.id == run).map(|r| r.status), Some(RunStatus::Interrupted));
}

/// The queue in the app: a 2-run sweep queued from the form's lists runs through the app's worker; runs queued
/// while the app was closed are taken up when it opens again; the runs table shows tags, queue places and disk
/// use; a delete first says what it would remove, then removes the records and the run folder.
#[test]
fn queued_runs_run_in_the_worker_and_survive_a_restart() {
    use experiments::run::store::NewRun;
    use experiments::run::sweep::GridAxis;

    let f = fixture();
    let (ds, _) = import_demo(&f, 60);
    let spec = tiny_spec(&f, "queued", 1e-3, 1);
    let grid = vec![GridAxis { key: "train.lr".into(), values: vec!["1e-3".into(), "3e-3".into()] }];
    let q = f.app.queue_runs(&spec, &grid).expect("queue a sweep");
    let sweep = q.sweep_id.expect("a sweep");
    assert_eq!(q.run_ids.len(), 2);
    for &id in &q.run_ids {
        assert_eq!(wait_finished(&f, id).0, RunStatus::Completed, "run {id} through the worker");
    }
    let view = f.app.sweep_view(sweep).expect("sweep view");
    assert_eq!(view.points.len(), 2);
    assert_eq!(view.axes, vec!["train.lr".to_string()]);
    assert!(view.best_run.is_some() && view.series.iter().all(|s| !s.steps.is_empty()));
    assert!(view.series[0].label.contains("lr="), "labelled by what differs: {}", view.series[0].label);

    // Queued while no worker runs (as `cliplab run --queue` does while the app is closed): the next start runs them.
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.app.queue_worker_running() {
        assert!(Instant::now() < deadline, "the worker stops once the queue is empty");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut store = Store::open(&f.home).expect("store");
    let waiting: Vec<i64> =
        (0..2).map(|_| store.enqueue_new_run(&NewRun { spec: spec.clone(), dataset_id: ds }).expect("enqueue")).collect();
    drop(store);
    let table = f.app.runs_table().expect("table");
    let places: Vec<Option<usize>> =
        waiting.iter().map(|id| table.rows.iter().find(|r| r.info.id == *id).and_then(|r| r.labels.queue_position)).collect();
    assert_eq!(places, vec![Some(1), Some(2)], "queued, shown with their places");
    let sink = Arc::new(RecordingSink::default());
    let reopened = App::open(&f.home, Box::new(ScriptedPicker::default()), sink.clone()).expect("reopen");
    let deadline = Instant::now() + Duration::from_secs(600);
    while waiting.iter().any(|id| {
        Store::open(&f.home).expect("store").run(*id).map(|d| d.info.status != RunStatus::Completed).unwrap_or(true)
    }) {
        assert!(Instant::now() < deadline, "the queued runs did not run after the restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(Store::open(&f.home).expect("store").queue_len().expect("queue"), 0);

    // Tags, notes, the runs table, archive.
    let run = q.run_ids[0];
    reopened.tag_run(run, "keeper", true).expect("tag");
    reopened.set_run_note(run, "the best lr").expect("note");
    let labels = reopened.labels(run).expect("labels");
    assert_eq!((labels.run.tags.clone(), labels.run.note.clone()), (vec!["keeper".to_string()], "the best lr".to_string()));
    let table = reopened.runs_table().expect("table");
    let row = table.rows.iter().find(|r| r.info.id == run).expect("row");
    assert_eq!(row.labels.tags, vec!["keeper".to_string()]);
    assert_eq!(row.labels.sweep_id, Some(sweep));
    assert!(row.disk_bytes > 0 && row.has_checkpoint, "a checkpoint on disk");
    assert_eq!(row.checkpoint, CheckpointState::Kept);
    assert_eq!(reopened.run_view(run).expect("view").checkpoint_state, CheckpointState::Kept);
    assert!(table.total_bytes >= table.rows.iter().map(|r| r.disk_bytes).sum::<u64>());
    assert_eq!(row.params.get("train.lr").map(String::as_str), Some("0.001"));
    reopened.set_archived(&[run], true).expect("archive");
    assert!(reopened.runs_table().expect("table").rows.iter().any(|r| r.info.id == run && r.labels.archived));

    // Delete: asked first, then done; the run folder goes with the records.
    let dir = Store::open(&f.home).expect("store").run_folders().expect("folders").into_iter().find(|x| x.run_id == run).and_then(|x| x.run_dir);
    let dir = dir.expect("the run's folder");
    let plan = reopened.delete_runs(&[run], false).expect("plan");
    assert!(!plan.deleted.applied && plan.description.starts_with("1 run"), "{}", plan.description);
    assert!(dir.is_dir(), "a plan deletes nothing");
    let done = reopened.delete_runs(&[run], true).expect("delete");
    assert!(done.deleted.applied);
    assert!(!dir.exists(), "{} is gone", dir.display());
    assert!(Store::open(&f.home).expect("store").run(run).is_err(), "the records are gone");
    // A checkpoint alone.
    let other = q.run_ids[1];
    let freed = reopened.delete_checkpoint(other).expect("delete checkpoint");
    assert!(freed > 0);
    assert!(Store::open(&f.home).expect("store").run(other).expect("run kept").checkpoint.is_none());
}

/// The queue's runs at once on the CPU: 1 until set, refused below 1 or above the maximum with a clear message,
/// kept in the home (a reopened app reads it back) and what the worker runs with on a machine without a GPU.
#[test]
fn the_queue_concurrency_setting_is_checked_kept_and_used_by_the_worker() {
    let f = fixture();
    assert_eq!(f.app.queue_settings().expect("settings").cpu_concurrency, 1, "the default");
    let e = f.app.set_queue_concurrency(0).expect_err("zero").to_string();
    assert!(e.contains("at least 1"), "{e}");
    let max = f.app.queue_settings().expect("settings").max_concurrency;
    let e = f.app.set_queue_concurrency(max + 1).expect_err("too many").to_string();
    assert!(e.contains(&format!("more than {max}")), "{e}");
    assert_eq!(f.app.queue_settings().expect("settings").cpu_concurrency, 1, "a refused value changes nothing");
    assert_eq!(f.app.set_queue_concurrency(2).expect("set").cpu_concurrency, 2);
    let reopened = App::open(&f.home, Box::new(ScriptedPicker::default()), Arc::new(RecordingSink::default())).expect("reopen");
    assert_eq!(reopened.queue_settings().expect("settings").cpu_concurrency, 2, "kept in the home");
    let gpu = experiments::model::device::select(experiments::model::device::DeviceChoice::Cuda).is_ok()
        || experiments::model::device::select(experiments::model::device::DeviceChoice::Metal).is_ok();
    let used = reopened.worker_options().expect("options").concurrency;
    assert_eq!(used, if gpu { 1 } else { 2 }, "the worker's runs at once");
    // A value written by hand that is not a number: the error names the setting.
    Store::open(&f.home).expect("store").set_setting("queue.cpu_concurrency", "many").expect("write");
    let e = reopened.queue_settings().expect_err("not a number").to_string();
    assert!(e.contains("queue.cpu_concurrency") && e.contains("many"), "{e}");
}
