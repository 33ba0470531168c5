//! The tutorial's workflow through the `cliplab` binary and the store: import → run → show → export, bad inputs,
//! a changed image, and a run killed with SIGKILL.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cliplab_e2e::Dir;
use experiments::model::engine::ClipBundle;
use experiments::model::preprocess::ImageProcessorConfig;
use experiments::data::synth;

#[path = "../experiments/tests/support/rows.rs"]
mod rows;

/// Generated caption-contest data (2 rows per image) and a tiny random model: (metadata, images folder, model).
fn setup(dir: &Dir, images: usize) -> (PathBuf, PathBuf, PathBuf) {
    let data = dir.path().join("data");
    let samples = synth::caption_contest(images, 5, 2, 48, 11);
    let metadata = synth::write_dataset(&data, &samples).expect("dataset");
    let model = dir.path().join("model");
    let cfg = experiments::model::clip::ClipConfig::tiny(synth::vocabulary().len() + 3, 32, 1, 32, 8);
    let tok = serde_json::to_vec(&synth::tiny_tokenizer_json()).expect("tokenizer");
    ClipBundle::write_random(&model, &cfg, tok, ImageProcessorConfig::with_size(32), 5).expect("model");
    (metadata, data.join(synth::IMAGES_DIR), model)
}

/// [`setup`] with the dataset imported as `shapes`: (images folder, model).
fn imported(dir: &Dir, images: usize) -> (PathBuf, PathBuf) {
    let (metadata, images, model) = setup(dir, images);
    dir.cliplab(&["dataset", "import", "--name", "shapes", "--metadata", s(&metadata), "--images", s(&images)]).ok();
    (images, model)
}

fn spec(dir: &Dir, name: &str, model: &Path, train: usize, heldout: usize, epochs: usize) -> PathBuf {
    let path = dir.path().join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\ndataset = \"shapes\"\nmodel = {model:?}\ndevice = \"cpu\"\n\n[sample]\ntrain = {train}\nheldout = {heldout}\nseed = 3\n\n\
         [train]\nepochs = {epochs}\nbatch_size = 8\noptimizer = \"adamw\"\nlr = 1e-3\nweight_decay = 0.01\nseed = 3\n"
    );
    std::fs::write(&path, text).expect("spec");
    path
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[test]
fn import_run_show_export() {
    let dir = Dir::new();
    let (metadata, images, model) = setup(&dir, 40);
    let v = dir.cliplab(&["dataset", "import", "--name", "shapes", "--metadata", s(&metadata), "--images", s(&images), "--json"]).json();
    assert!(v["dataset_id"].as_i64().is_some(), "{v}");
    let list = dir.cliplab(&["dataset", "list", "--json"]).json();
    assert_eq!(list[0]["name"], "shapes");
    assert_eq!(list[0]["n_samples"], 80);
    assert_eq!(list[0]["n_images"], 40);

    let spec_path = spec(&dir, "shapes-adamw", &model, 30, 16, 3);
    let out = dir.cliplab(&["run", "--spec", s(&spec_path), "--json"]).json();
    let run = out["run_id"].as_i64().expect("run id").to_string();

    let d = dir.cliplab(&["runs", "show", &run, "--json"]).json();
    assert_eq!(d["info"]["status"], "completed", "{d}");
    assert_eq!(d["info"]["device"], "cpu");
    let train: Vec<i64> = d["train_ids"].as_array().expect("train").iter().map(|x| x.as_i64().expect("id")).collect();
    let held: Vec<i64> = d["heldout_ids"].as_array().expect("held").iter().map(|x| x.as_i64().expect("id")).collect();
    assert_eq!((train.len(), held.len()), (30, 16));
    // No image on both sides.
    let ds = dir.cliplab(&["dataset", "show", "shapes", "--limit", "1000", "--json"]).json();
    let image_of = |id: i64| -> String {
        ds["samples"].as_array().expect("samples").iter().find(|x| x["id"] == id).expect("sample")["filename"]
            .as_str().expect("filename").to_string()
    };
    let train_images: std::collections::HashSet<String> = train.iter().map(|&i| image_of(i)).collect();
    assert!(held.iter().all(|&i| !train_images.contains(&image_of(i))), "an image is on both sides");
    // Loss per step and per epoch, held-out loss per epoch.
    assert_eq!(d["step_losses"].as_array().expect("steps").len(), 3 * 4);
    let epochs = d["epoch_losses"].as_array().expect("epochs");
    assert_eq!(epochs.len(), 3);
    assert!(epochs.iter().all(|e| e["heldout_loss"].as_f64().is_some()));
    // Every sample, both phases, every choice's probability.
    let scores = d["scores"].as_array().expect("scores");
    assert_eq!(scores.len(), 2 * (30 + 16));
    for sc in scores {
        let p: Vec<f64> = sc["probs"].as_array().expect("probs").iter().map(|x| x.as_f64().expect("p")).collect();
        assert_eq!(p.len(), 5);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        let label = sc["label"].as_u64().expect("label") as usize;
        assert!((sc["label_prob"].as_f64().expect("lp") - p[label]).abs() < 1e-6);
    }
    // Runs list shows it with its hyperparameters.
    let runs = dir.cliplab(&["runs", "list", "--json"]).json();
    assert_eq!(runs[0]["status"], "completed");
    let table = dir.cliplab(&["runs", "list"]).ok();
    assert!(table.contains("shapes-adamw") && table.contains("completed"), "{table}");
    // Its checkpoint, as the store records it.
    assert_eq!(runs[0]["checkpoint"], "kept");
    assert!(table.lines().next().is_some_and(|h| h.contains("checkpoint")) && table.contains("kept"), "{table}");
    // A tag and a note from the CLI, as the store keeps them; a tag the store refuses changes nothing.
    assert_eq!(dir.cliplab(&["runs", "tag", &run, " best "]).ok().trim(), format!("run {run} tagged `best`"));
    assert_eq!(dir.cliplab(&["runs", "note", &run, "first try"]).ok().trim(), format!("run {run}: note saved"));
    let line = dir.cliplab(&["runs", "tag", &run, "two\nlines"]).fails();
    assert!(line.contains(r"tag `two\nlines`: a tag is 1 to 64 characters on one line"), "{line}");
    let exp = runs[0]["experiment_id"].to_string();
    assert_eq!(dir.cliplab(&["experiment", "tag", &exp, "lr"]).ok().trim(), format!("experiment {exp} tagged `lr`"));
    let runs = dir.cliplab(&["runs", "list", "--json"]).json();
    assert_eq!((runs[0]["tags"].clone(), runs[0]["note"].clone()), (serde_json::json!(["best"]), serde_json::json!("first try")));
    let found = dir.cliplab(&["runs", "list", "--tag", "lr", "--json"]).json();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(dir.cliplab(&["runs", "untag", &run, "best"]).ok().trim(), format!("run {run}: tag `best` removed"));

    // Export, then score with the exported checkpoint.
    let ckpt = dir.path().join("exported");
    dir.cliplab(&["export", &run, "--out", s(&ckpt)]).ok();
    for f in ["model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json", "cliplab.json"] {
        assert!(ckpt.join(f).is_file(), "{f} missing from export");
    }
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("cliplab.json")).expect("read")).expect("json");
    assert_eq!(prov["hyperparameters"]["lr"], 1e-3);
    assert!(prov["dataset"]["content_hash"].as_str().is_some_and(|h| h.len() == 64));
    let img = images.join(image_of(train[0]));
    let v = dir.cliplab(&["score", "--model", s(&ckpt), "--image", s(&img), "--caption", "a red circle", "--caption", "a blue square", "--json"]).json();
    assert_eq!(v["probs"].as_array().map(Vec::len), Some(2));
    // Exporting over a non-empty folder is refused.
    let line = dir.cliplab(&["export", &run, "--out", s(&ckpt)]).fails();
    assert!(line.contains("not empty"), "{line}");
}

#[test]
fn bad_rows_are_rejected_or_skipped_and_nothing_half_imported() {
    let dir = Dir::new();
    let (metadata, images, _) = setup(&dir, 10);
    // Break row 3: a label that is not among the choices.
    rows::set_label(&metadata, 3, "F");

    let line = dir.cliplab(&["dataset", "import", "--name", "shapes", "--metadata", s(&metadata), "--images", s(&images)]).fails();
    assert!(line.contains("metadata.jsonl") && line.contains("row 3"), "{line}");
    let list = dir.cliplab(&["dataset", "list", "--json"]).json();
    assert_eq!(list.as_array().map(Vec::len), Some(0), "a rejected import must leave nothing behind: {list}");

    let v = dir.cliplab(&["dataset", "import", "--name", "shapes", "--metadata", s(&metadata), "--images", s(&images), "--skip-bad-rows", "--json"]).json();
    assert_eq!(v["report"]["valid_rows"], 19);
    assert_eq!(v["report"]["problems"][0]["row"], 3);
    let list = dir.cliplab(&["dataset", "list", "--json"]).json();
    assert_eq!((list[0]["n_samples"].as_u64(), list[0]["n_skipped"].as_u64()), (Some(19), Some(1)));

    // Importing the same name twice is refused.
    let line = dir.cliplab(&["dataset", "import", "--name", "shapes", "--metadata", s(&metadata), "--images", s(&images), "--skip-bad-rows"]).fails();
    assert!(line.contains("shapes") && line.contains("exists"), "{line}");
    // A missing metadata file.
    let line = dir.cliplab(&["dataset", "import", "--name", "x", "--metadata", "nope.parquet"]).fails();
    assert!(line.contains("nope.parquet"), "{line}");
    // A spec naming an unknown dataset.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\ndataset = \"nope\"\nmodel = \".\"\n[sample]\ntrain = 2\n").expect("write");
    let line = dir.cliplab(&["run", "--spec", s(&bad)]).fails();
    assert!(line.contains("nope"), "{line}");
}

#[test]
fn a_changed_image_fails_the_run_clearly() {
    let dir = Dir::new();
    let (images, model) = imported(&dir, 12);
    // Overwrite every image with another valid PNG.
    for e in std::fs::read_dir(&images).expect("images") {
        let p = e.expect("entry").path();
        image::RgbImage::from_pixel(48, 48, image::Rgb([1, 2, 3])).save(&p).expect("save");
    }
    let spec_path = spec(&dir, "changed", &model, 8, 4, 1);
    let line = dir.cliplab(&["run", "--spec", s(&spec_path)]).fails();
    assert!(line.contains("changed"), "{line}");
    let runs = dir.cliplab(&["runs", "list", "--json"]).json();
    assert_eq!(runs[0]["status"], "failed");
    assert!(runs[0]["error"].as_str().is_some_and(|e| e.contains("changed")), "{runs}");
}

#[test]
fn a_killed_run_is_marked_interrupted_and_keeps_what_it_recorded() {
    let dir = Dir::new();
    let (_, model) = imported(&dir, 40);
    let spec_path = spec(&dir, "long", &model, 60, 10, 500);
    let mut child = dir
        .command(&["run", "--spec", s(&spec_path)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait (reading the store from this second process while the run writes) until steps are recorded.
    let deadline = Instant::now() + Duration::from_secs(300);
    let steps = loop {
        assert!(Instant::now() < deadline, "the run recorded no step in time");
        std::thread::sleep(Duration::from_millis(300));
        let runs = dir.cliplab(&["runs", "list", "--json"]).json();
        let Some(id) = runs.get(0).and_then(|r| r["id"].as_i64()) else { continue };
        let d = dir.cliplab(&["runs", "show", &id.to_string(), "--json"]).json();
        let n = d["step_losses"].as_array().map(Vec::len).unwrap_or(0);
        if n >= 10 {
            assert_eq!(d["info"]["status"], "running");
            break n;
        }
    };
    child.kill().expect("kill -9"); // SIGKILL on Unix
    child.wait().expect("wait");
    let runs = dir.cliplab(&["runs", "list", "--json"]).json();
    assert_eq!(runs[0]["status"], "interrupted", "{runs}");
    let d = dir.cliplab(&["runs", "show", &runs[0]["id"].to_string(), "--json"]).json();
    assert!(d["step_losses"].as_array().map(Vec::len).unwrap_or(0) >= steps, "recorded steps were lost");
    assert_eq!(d["scores"].as_array().map(Vec::len), Some(70), "the before-scores must still be there");
    // The store still works for new work.
    dir.cliplab(&["dataset", "list"]).ok();
}

#[test]
fn compare_two_runs_writes_charts_csv_and_diff() {
    let dir = Dir::new();
    let (_, model) = imported(&dir, 20);
    let a = spec(&dir, "two-epochs", &model, 16, 8, 2);
    let b = spec(&dir, "one-epoch", &model, 16, 8, 1);
    let ra = dir.cliplab(&["run", "--spec", s(&a), "--json"]).json()["run_id"].to_string();
    let rb = dir.cliplab(&["run", "--spec", s(&b), "--json"]).json()["run_id"].to_string();
    let out = dir.path().join("cmp");
    let text = dir.cliplab(&["compare", &ra, &rb, "--out", s(&out)]).ok();
    // The hyperparameter diff names what differs, and only that.
    assert!(text.contains("train.epochs") && !text.contains("train.lr"), "{text}");
    // Same seed and data: both runs drew the same samples, so the flips table covers all of them.
    assert!(text.contains("flips between"), "{text}");
    // Each run's speed and memory, as the store holds them.
    assert!(text.contains("speed and memory"), "{text}");
    for r in [&ra, &rb] {
        let d = dir.cliplab(&["runs", "show", r, "--json"]).json();
        let step = d["system"]["train_step_s"].as_f64().expect("the run measured its step time");
        let line = text.lines().find(|l| l.starts_with(&format!("run {r} ")) && l.contains("threads")).expect("a speed line per run");
        assert!(line.contains(&format!("{step:.3}")), "{line}");
    }
    for chart in ["loss_steps", "loss_epochs", "label_prob_slope", "label_prob_hist", "metrics", "calibration", "letters"] {
        for ext in ["svg", "png"] {
            assert!(out.join(format!("{chart}.{ext}")).is_file(), "{chart}.{ext} missing");
        }
    }
    let svg = std::fs::read_to_string(out.join("loss_steps.svg")).expect("svg");
    assert!(svg.contains(&format!("run {ra}")) && svg.contains(&format!("run {rb}")), "legend must name both runs");
    let csv = std::fs::read_to_string(out.join("samples.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 1 + 2 * (16 + 8), "one row per run x sample plus the header");
    let img = image::open(out.join("metrics.png")).expect("png decodes");
    assert!(img.width() >= 600 && img.height() >= 400);
}
