//! End-to-end tests: the `cliplab` binary as a user runs it, on data and models the tests generate.

use cliplab_e2e::Dir;
use experiments::model::engine::ClipBundle;
use experiments::model::preprocess::ImageProcessorConfig;
use experiments::data::synth;

/// A tiny random CLIP model folder and one generated image.
fn tiny_model(dir: &Dir) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = dir.path().join("tiny-model");
    let cfg = experiments::model::clip::ClipConfig::tiny(synth::vocabulary().len() + 3, 32, 1, 32, 8);
    let tok = serde_json::to_vec(&synth::tiny_tokenizer_json()).expect("tokenizer");
    ClipBundle::write_random(&model, &cfg, tok, ImageProcessorConfig::with_size(32), 1).expect("model");
    let sample = synth::caption_contest(1, 5, 1, 48, 3).remove(0);
    let image = dir.path().join("cartoon.png");
    sample.image.save(&image).expect("png");
    (model, image)
}

#[test]
fn score_prints_one_probability_per_caption() {
    let dir = Dir::new();
    let (model, image) = tiny_model(&dir);
    let (m, i) = (model.to_str().expect("utf8"), image.to_str().expect("utf8"));
    let args = ["score", "--model", m, "--image", i, "--caption", "a red circle", "--caption", "a blue square",
                "--caption", "two green rings", "--json"];
    let run = dir.cliplab(&args);
    let v = run.json();
    let probs: Vec<f64> = v["probs"].as_array().expect("probs").iter().map(|p| p.as_f64().expect("f64")).collect();
    assert_eq!(probs.len(), 3);
    assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5, "probabilities must sum to 1: {probs:?}");
    assert_eq!(v["logits"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["device"], "cpu");
    // The same numbers in the human format.
    let text = dir.cliplab(&args[..args.len() - 1]).ok();
    assert!(text.contains("device: cpu") && text.contains("B ") && text.contains("a blue square"), "{text}");
}

#[test]
fn errors_are_one_readable_line_naming_the_file() {
    let dir = Dir::new();
    let (model, image) = tiny_model(&dir);
    let (m, i) = (model.to_str().expect("utf8"), image.to_str().expect("utf8"));
    let line = dir.cliplab(&["score", "--model", "no-such-model", "--image", i, "--caption", "a", "--caption", "b"]).fails();
    assert!(line.contains("no-such-model"), "{line}");

    std::fs::write(dir.path().join("broken.png"), b"\x89PNG but not really").expect("write");
    let line = dir.cliplab(&["score", "--model", m, "--image", "broken.png", "--caption", "a", "--caption", "b"]).fails();
    assert!(line.contains("broken.png") && line.contains("decode"), "{line}");

    std::fs::remove_file(model.join("tokenizer.json")).expect("rm");
    let line = dir.cliplab(&["score", "--model", m, "--image", i, "--caption", "a", "--caption", "b"]).fails();
    assert!(line.contains("tokenizer.json") && line.contains("not found"), "{line}");

    let line = dir.cliplab(&["--device", "tpu", "demo"]).fails();
    assert!(line.contains("tpu"), "{line}");
}

#[test]
fn bench_reports_every_figure() {
    let dir = Dir::new();
    let (model, _) = tiny_model(&dir);
    let v = dir.cliplab(&["bench", "--model", model.to_str().expect("utf8"), "--iters", "1", "--json"]).json();
    for key in ["score_1x5_s", "score_images_per_s", "train_forward_s", "train_backward_s", "train_optimizer_s", "train_step_s"] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"));
        assert!(x > 0.0 && x.is_finite(), "{key} = {x}");
    }
    assert_eq!(v["device"], "cpu");
}

#[test]
fn demo_fine_tunes_and_reports_before_and_after() {
    let dir = Dir::new();
    let v = dir.cliplab(&["demo", "--json", "--images", "300", "--epochs", "3"]).json();
    let m = &v["metrics"];
    assert_eq!((m["train_before"]["n"].as_u64(), m["heldout_before"]["n"].as_u64()), (Some(240), Some(60)));
    let before = m["train_before"]["mean_label_prob"].as_f64().expect("p");
    let after = m["train_after"]["mean_label_prob"].as_f64().expect("p");
    assert!(after > before, "fine-tuning must raise the label probability on train: {before} -> {after}");
    // The run is in the store like any other.
    let run = v["run_id"].as_i64().expect("run id");
    let detail = dir.cliplab(&["runs", "show", &run.to_string(), "--json"]).json();
    assert_eq!(detail["info"]["status"], "completed");
    let epochs = detail["epoch_losses"].as_array().expect("epochs");
    assert_eq!(epochs.len(), 3);
    let first = epochs[0]["train_loss"].as_f64().expect("loss");
    let last = epochs[2]["train_loss"].as_f64().expect("loss");
    assert!(last < first, "training loss must fall: {first} -> {last}");
}

#[test]
fn a_new_store_is_announced_on_stderr_once() {
    let dir = Dir::new();
    let typo = dir.path().join("hmoe");
    let typo = typo.to_str().expect("utf8");
    let first = dir.cliplab(&["--home", typo, "runs", "list", "--json"]);
    assert_eq!(first.json(), serde_json::json!([]), "stdout stays the listing");
    let err = first.stderr();
    assert!(err.contains("created a new, empty store") && err.contains(typo), "{err}");
    let again = dir.cliplab(&["--home", typo, "runs", "list", "--json"]);
    again.ok();
    assert!(!again.stderr().contains("created"), "only when it is created: {}", again.stderr());
}

#[test]
fn verbose_logs_name_the_command_as_typed() {
    let dir = Dir::new();
    let run = dir.cliplab(&["-v", "runs", "list", "--json"]);
    assert_eq!(run.json(), serde_json::json!([]), "logs stay on stderr");
    let err = run.stderr();
    assert!(err.contains("command started") && err.contains("command=runs list"), "{err}");
    assert!(err.contains("command ended") && err.contains("ok=true"), "{err}");
}

/// A store with the dataset `shapes` (10 generated images) and a tiny model; returns a spec file for it whose
/// `device` is `spec_device`.
fn dataset_and_spec(dir: &Dir, spec_device: &str) -> std::path::PathBuf {
    let (model, _) = tiny_model(dir);
    let data = dir.path().join("data");
    let metadata = synth::write_dataset(&data, &synth::caption_contest(10, 5, 1, 32, 2)).expect("dataset");
    let images = data.join(synth::IMAGES_DIR);
    let (meta, imgs) = (metadata.to_str().expect("utf8"), images.to_str().expect("utf8"));
    dir.cliplab(&["dataset", "import", "--name", "shapes", "--metadata", meta, "--images", imgs]).ok();
    let spec = dir.path().join("spec.toml");
    let text = format!(
        "name = \"device\"\ndataset = \"shapes\"\nmodel = {model:?}\ndevice = \"{spec_device}\"\n[sample]\ntrain = 6\n\
         heldout = 2\n[train]\nepochs = 1\nbatch_size = 4\n"
    );
    std::fs::write(&spec, text).expect("spec");
    spec
}

/// (These tests run a CPU build of `cliplab`, as the others here do: CUDA is what it cannot use.)
#[test]
fn an_explicit_device_wins_over_the_spec_and_fails_clearly_when_unavailable() {
    let dir = Dir::new();
    let spec = dataset_and_spec(&dir, "cpu");
    let s = spec.to_str().expect("utf8");
    let line = dir.cliplab(&["--device", "cuda", "run", "--spec", s]).fails();
    assert!(line.contains("CUDA"), "{line}");
    let line = dir.cliplab(&["--device", "cuda", "experiment", "create", "--spec", s]).fails();
    assert!(line.contains("CUDA"), "{line}");
    assert_eq!(dir.cliplab(&["experiment", "list", "--json"]).json(), serde_json::json!([]), "nothing recorded");

    // A spec asking for CUDA runs on the CPU when the command line says so.
    let dir = Dir::new();
    let spec = dataset_and_spec(&dir, "cuda");
    let v = dir.cliplab(&["--device", "cpu", "run", "--spec", spec.to_str().expect("utf8"), "--json"]).json();
    assert_eq!(v["device"], "cpu");
}

#[cfg(unix)]
#[test]
fn a_closed_output_pipe_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = Dir::new();
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader); // `| head` that has already read its lines
    let out = dir
        .command(&["runs", "list"])
        .stdout(writer)
        .output()
        .expect("run cliplab");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("error"), "not quiet: {stderr}");
    let quiet = out.status.success() || out.status.signal() == Some(13);
    assert!(quiet, "must end as a Unix tool does on a closed pipe (exit 0 or SIGPIPE), got {}", out.status);
}

/// Ctrl-C (SIGINT) while `dataset import` checks its images: the import stops, stores nothing, exits non-zero.
#[cfg(unix)]
#[test]
fn ctrl_c_during_an_import_stores_nothing() {
    use std::io::{BufRead, BufReader};
    let dir = Dir::new();
    let data = dir.path().join("data");
    // Big enough that checking the images takes a while after the first progress line.
    let metadata = synth::write_dataset(&data, &synth::caption_contest(3000, 5, 1, 160, 9)).expect("dataset");
    let images = data.join(synth::IMAGES_DIR);
    let mut child = dir
        .command(&["dataset", "import", "--name", "big", "--metadata"])
        .arg(&metadata)
        .arg("--images")
        .arg(&images)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn cliplab");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    // "found N files under ...": the metadata is read and the images are about to be checked.
    while err.read_line(&mut seen).expect("stderr") > 0 && !seen.contains("found") {}
    let status = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let mut rest = String::new();
    while err.read_line(&mut rest).expect("stderr") > 0 {}
    let exit = child.wait().expect("wait");
    assert!(!exit.success(), "a cancelled import must not exit 0\n{seen}{rest}");
    assert!(rest.contains("cancel"), "says it was cancelled: {rest}");
    assert_eq!(dir.cliplab(&["dataset", "list", "--json"]).json(), serde_json::json!([]), "nothing stored");
}
