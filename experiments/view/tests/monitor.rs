//! The monitor, driven headless through egui's accessibility tree (egui_kittest: no window, no GPU), over stores
//! built with the core's API: the table lists the store's runs, two selected runs are plotted with exactly the
//! store's points (and their colours), steps another process records appear after a refresh tick, and a run opens
//! on its per-sample table and its recorded speed, memory and machine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cliplab_view::run_screen::{sorted_samples, SampleSort};
use cliplab_view::{run_colour, Curves, Monitor, Options, Screen};
use eframe::egui::{self, Key};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use experiments::data::{ColumnMap, DatasetRow, ImageRecord, ImportedDataset};
use experiments::events::{Event, Phase};
use experiments::model::engine::{SampleScore, Summary};
use experiments::report::compare::load_run_data;
use experiments::run::spec::ExperimentSpec;
use experiments::model::device::Machine;
use experiments::run::store::{RunMetrics, RunStatus, RunSystem, Store};
use experiments::validation::ValidationReport;
use experiments::vocab::{Split, Stage};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SAMPLES: usize = 6;

/// `SAMPLES` images with one row (5 captions) each.
fn dataset(name: &str) -> ImportedDataset {
    let images: Vec<ImageRecord> = (0..SAMPLES)
        .map(|i| ImageRecord {
            filename: format!("cartoon{i:02}.png"),
            path: PathBuf::from(format!("/data/{name}/cartoon{i:02}.png")),
            sha256: format!("{i:064x}"),
            width: 64,
            height: 64,
            bytes: 1000,
        })
        .collect();
    let rows = images
        .iter()
        .enumerate()
        .map(|(i, im)| DatasetRow {
            row: i + 1,
            filename: im.filename.clone(),
            choices: (0..5).map(|c| format!("caption {c} of cartoon {i}")).collect(),
            label: i % 5,
            extra: Default::default(),
        })
        .collect();
    ImportedDataset {
        name: name.into(),
        metadata_path: PathBuf::from(format!("/data/{name}/metadata.jsonl")),
        images_dir: Some(PathBuf::from(format!("/data/{name}"))),
        columns: ColumnMap::default(),
        report: ValidationReport { total_rows: SAMPLES, valid_rows: SAMPLES, problems: Vec::new() },
        rows,
        images,
        content_hash: "cd".repeat(32),
        extracted: Vec::new(),
    }
}

fn spec(name: &str, lr: f64) -> Result<ExperimentSpec, Box<dyn std::error::Error>> {
    let text = format!(
        "name = \"{name}\"\ndataset = \"cartoons\"\nmodel = \"/models/clip\"\ndevice = \"cpu\"\n\
         [sample]\ntrain = 4\nheldout = 2\nseed = 7\n\
         [train]\nepochs = 2\nbatch_size = 2\noptimizer = \"adamw\"\nlr = {lr:e}\nweight_decay = 0.01\n"
    );
    Ok(ExperimentSpec::from_toml(&text, None)?)
}

/// Softmax-like scores whose right caption gets `p` (the rest shared evenly).
fn score(label: usize, p: f32) -> SampleScore {
    let probs: Vec<f32> = (0..5).map(|c| if c == label { p } else { (1.0 - p) / 4.0 }).collect();
    let logits = probs.iter().map(|x| x.ln()).collect();
    SampleScore { correct: p > 0.25, label_prob: p, probs, logits, label }
}

/// Records `n` steps (from `first`) of a run, losses falling with a run-specific offset.
fn steps(store: &mut Store, run: i64, first: usize, n: usize) -> TestResult {
    for step in first..first + n {
        let loss = 2.0 / (step as f64 + 1.0) + run as f64 * 0.01;
        store.record_event(run, &Event::Step { epoch: 1 + (step - 1) / 3, step, loss })?;
    }
    Ok(())
}

/// A finished run: 6 steps, 2 epochs, scores before and after (sample `i` gains `0.05 * i - 0.1`), metrics.
fn completed_run(store: &mut Store, experiment: i64, samples: &[i64]) -> Result<i64, Box<dyn std::error::Error>> {
    let run = store.create_run(experiment)?;
    store.start_run(run, "cpu")?;
    store.record_split(run, Split::Train, &samples[..4])?;
    store.record_split(run, Split::Heldout, &samples[4..])?;
    steps(store, run, 1, 6)?;
    for epoch in 1..=2 {
        let e = Event::EpochEnded { epoch, train_loss: 1.0 / epoch as f64, heldout_loss: Some(1.2 / epoch as f64) };
        store.record_event(run, &e)?;
    }
    for (stage, gain) in [(Stage::Before, 0.0_f32), (Stage::After, 1.0)] {
        for (split, ids) in [(Split::Train, &samples[..4]), (Split::Heldout, &samples[4..])] {
            let rows: Vec<(i64, SampleScore)> = ids
                .iter()
                .map(|&id| {
                    let i = (id - samples[0]) as usize;
                    (id, score(i % 5, 0.3 + gain * (0.05 * i as f32 - 0.1)))
                })
                .collect();
            store.record_scores(run, stage, split, &rows)?;
        }
    }
    let s = |acc| Some(Summary { n: 2, mean_label_prob: 0.4, accuracy: acc });
    let metrics =
        RunMetrics { train_before: s(0.25), train_after: s(0.5), heldout_before: s(0.0), heldout_after: s(0.5) };
    store.record_summary(run, &metrics)?;
    store.record_system(run, &system(run))?;
    store.finish_run(run, RunStatus::Completed, None)?;
    Ok(run)
}

/// The speed, memory and machine recorded for completed run `run` (its step time grows with its id).
fn system(run: i64) -> RunSystem {
    let machine = Machine {
        cpu: "Test CPU".into(),
        threads: 2,
        blas: "OpenBLAS".into(),
        device: "cpu".into(),
        version: "0.1.0".into(),
        features: vec![],
        gpu: None,
    };
    RunSystem {
        machine,
        score_images_per_s: Some(800.0),
        train_step_s: Some(0.01 * run as f64),
        train_images_per_s: Some(250.0),
        peak_rss_mib: Some(210.0),
        gpu_memory_mib: None,
    }
}

/// A store with two completed runs (of experiments with different learning rates) and one running run (3
/// steps so far). Returns the store and the run ids, oldest first.
fn setup(home: &Path) -> Result<(Store, Vec<i64>), Box<dyn std::error::Error>> {
    let mut store = Store::open(home)?;
    let ds = store.insert_dataset(&dataset("cartoons"))?;
    let samples: Vec<i64> = store.dataset_samples(ds)?.iter().map(|s| s.id).collect();
    let a = store.create_experiment(&spec("exp-a", 1e-3)?, ds)?;
    let b = store.create_experiment(&spec("exp-b", 1e-4)?, ds)?;
    let r1 = completed_run(&mut store, a, &samples)?;
    let r2 = completed_run(&mut store, b, &samples)?;
    let r3 = store.create_run(a)?;
    store.start_run(r3, "cpu")?;
    store.record_event(r3, &Event::PhaseStarted { phase: Phase::Train, total: 6 })?;
    steps(&mut store, r3, 1, 3)?;
    Ok((store, vec![r1, r2, r3]))
}

/// The monitor on the store in `home` with `opts`, its first frame drawn.
fn shown(home: &Path, opts: Options) -> Result<Harness<'static, Monitor>, Box<dyn std::error::Error>> {
    let monitor = Monitor::open(home, opts)?;
    let mut h =
        Harness::builder().with_size(egui::vec2(1280.0, 820.0)).build_ui_state(|ui, m: &mut Monitor| m.ui(ui), monitor);
    h.run();
    Ok(h)
}

/// What the store holds of a run, as curves.
fn stored_curves(home: &Path, run: i64) -> Result<Curves, Box<dyn std::error::Error>> {
    Ok(Curves::of(&Store::open(home)?.run(run)?))
}

#[test]
fn the_table_lists_the_stores_runs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, ids) = setup(dir.path())?;
    let listed = store.runs()?;
    let h = shown(dir.path(), Options::default())?;
    assert_eq!(listed.len(), 3);
    for r in &listed {
        h.get_by_label(&format!("run {}", r.id));
    }
    assert_eq!(h.get_all_by_label("exp-a").count(), 2, "two runs of exp-a");
    h.get_by_label("exp-b");
    assert_eq!(h.get_all_by_label("completed").count(), 2);
    h.get_by_label("running · fine-tuning 0/6");
    assert_eq!(h.get_all_by_label("0% -> 50%").count(), 2, "held-out accuracy before -> after");
    // Nothing selected: the curves are the running run's.
    let plotted: Vec<i64> = h.state().plotted().iter().map(|s| s.id).collect();
    assert_eq!(plotted, vec![ids[2]]);
    Ok(())
}

#[test]
fn two_selected_runs_are_plotted_with_the_stores_points() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_store, ids) = setup(dir.path())?;
    let mut h = shown(dir.path(), Options::default())?;
    h.get_by_label(&format!("run {}", ids[1])).click();
    h.run();
    h.get_by_label(&format!("run {}", ids[0])).click();
    h.run();
    assert_eq!(h.state().selected(), &[ids[1], ids[0]]);
    let plotted: Vec<(i64, egui::Color32, Curves)> =
        h.state().plotted().iter().map(|s| (s.id, s.colour, s.curves.clone())).collect();
    assert_eq!(plotted.len(), 2);
    for (i, (id, colour, curves)) in plotted.iter().enumerate() {
        assert_eq!(*id, ids[1 - i], "selection order");
        assert_eq!(*colour, run_colour(i), "the palette colour of the i-th compared run");
        let stored = stored_curves(dir.path(), *id)?;
        assert_eq!(*curves, stored, "run {id}: plotted points = stored points");
        assert_eq!(curves.steps.len(), 6);
        assert_eq!(curves.epochs_heldout.len(), 2);
        let last = stored.steps.last().map(|p| p[1]).ok_or("no steps")?;
        h.get_by_label_contains(&format!("run {id} · adamw lr {:e}: 6 steps, last loss {last:.4}", if i == 0 { 1e-4 } else { 1e-3 }));
    }
    assert_eq!(run_colour(0), egui::Color32::from_rgb(0x1F, 0x77, 0xB4), "plots::palette(0)");
    // The comparison: metrics per run and the hyperparameters that differ (the learning rate only).
    for id in &ids[..2] {
        h.get_by_label(&format!("{:.3} s", system(*id).train_step_s.unwrap_or_default()));
    }
    h.get_by_label("Hyperparameters that differ");
    h.get_by_label("train.lr");
    assert!(h.query_by_label("train.epochs").is_none(), "equal hyperparameters are not listed");
    Ok(())
}

#[test]
fn steps_recorded_by_another_process_appear_after_a_refresh_tick() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_store, ids) = setup(dir.path())?;
    let running = ids[2];
    let opts = Options { refresh_every: Duration::from_secs(5), runs: Vec::new() };
    let mut h = shown(dir.path(), opts)?;
    assert_eq!(h.state().plotted()[0].curves.steps.len(), 3);
    h.get_by_label_contains(": 3 steps");
    // Another process trains on (WAL: the monitor's reads never block it): this test binary again, running only
    // `child_records_steps_of_a_running_run`.
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", "child_records_steps_of_a_running_run", "--ignored", "--test-threads=1"])
        .env(CHILD_HOME, dir.path())
        .env(CHILD_RUN, running.to_string())
        .stdout(std::process::Stdio::null())
        .status()?;
    assert!(status.success(), "the writer process failed: {status}");
    // Within the interval nothing is read again...
    h.step();
    assert_eq!(h.state().plotted()[0].curves.steps.len(), 3, "read again before the tick");
    // ...after it (20 frames of 0.25 s of egui's clock), the new steps are there, exactly as stored.
    h.run_steps(21);
    h.run();
    let stored = stored_curves(dir.path(), running)?;
    assert_eq!(stored.steps.len(), 8);
    assert_eq!(h.state().plotted()[0].curves, &stored);
    h.get_by_label_contains(": 8 steps");
    h.get_by_label("running · fine-tuning 5/6");
    Ok(())
}

const CHILD_HOME: &str = "CLIPLAB_VIEW_TEST_CHILD_HOME";
const CHILD_RUN: &str = "CLIPLAB_VIEW_TEST_CHILD_RUN";

/// The writer process of `steps_recorded_by_another_process_appear_after_a_refresh_tick`: records steps 4..8, a
/// progress event and an epoch of a running run in the store its parent watches. Does nothing when run directly.
#[test]
#[ignore = "the child process of the refresh test"]
fn child_records_steps_of_a_running_run() -> TestResult {
    let (Some(home), Some(run)) = (std::env::var_os(CHILD_HOME), std::env::var(CHILD_RUN).ok()) else { return Ok(()) };
    let running: i64 = run.parse()?;
    let mut store = Store::open(Path::new(&home))?;
    steps(&mut store, running, 4, 5)?;
    let progress = Event::Progress { phase: Phase::Train, done: 5, total: 6, elapsed_s: 1.0, eta_s: 0.2 };
    store.record_event(running, &progress)?;
    store.record_event(running, &Event::EpochEnded { epoch: 1, train_loss: 0.9, heldout_loss: None })?;
    Ok(())
}

#[test]
fn keyboard_filters_selects_and_opens_a_run_on_its_samples() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (store, ids) = setup(dir.path())?;
    let mut h = shown(dir.path(), Options::default())?;
    // `/` then text: only exp-b's run is left.
    h.key_press(Key::Slash);
    h.run();
    h.event(egui::Event::Text("exp-b".into()));
    h.run();
    assert!(h.query_by_label(&format!("run {}", ids[0])).is_none(), "filtered out");
    h.get_by_label(&format!("run {}", ids[1]));
    // Enter leaves the filter box; Space selects the row under the cursor; Enter opens it.
    h.key_press(Key::Enter);
    h.run();
    h.key_press(Key::Space);
    h.run();
    assert_eq!(h.state().selected(), &[ids[1]]);
    h.key_press(Key::Enter);
    h.run();
    assert_eq!(h.state().screen(), Screen::Run(ids[1]));
    // The per-sample table, largest gain first: sample 5 (held-out) gains 0.15.
    let data = load_run_data(&store, ids[1])?;
    let order: Vec<String> = sorted_samples(&data, SampleSort::Gain).iter().map(|s| s.filename.clone()).collect();
    assert_eq!(order.first().map(String::as_str), Some("cartoon05.png"));
    assert_eq!(order.last().map(String::as_str), Some("cartoon00.png"));
    h.get_by_label("cartoon05.png");
    h.get_by_label("caption 0 of cartoon 5");
    // The run's speed, memory and machine, as recorded.
    h.get_by_label(&format!("speed: {}", system(ids[1]).speed_line()));
    h.get_by_label(&format!("machine: {}", system(ids[1]).machine_line()));
    h.get_by_label("+0.150");
    h.key_press(Key::L);
    h.run();
    assert_eq!(h.state().samples_sort(), SampleSort::Loss);
    h.key_press(Key::Escape);
    h.run();
    assert_eq!(h.state().screen(), Screen::Runs);
    Ok(())
}

#[test]
fn a_run_named_on_the_command_line_opens_and_an_unknown_one_is_reported() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_store, ids) = setup(dir.path())?;
    let h = shown(dir.path(), Options { runs: vec![ids[0]], ..Options::default() })?;
    assert_eq!(h.state().screen(), Screen::Run(ids[0]));
    h.get_by_label(&format!("run {} · exp-a", ids[0]));
    let h = shown(dir.path(), Options { runs: vec![ids[0], 99], ..Options::default() })?;
    h.get_by_label("run 99 is not in this store");
    Ok(())
}
