//! Measures what the checkpoint disk policy saves at a real model size: a random CLIP of a size preset (default
//! ViT-B/32, about 600 MB of weights) is fine-tuned on a few generated samples (the shapes and so the bytes are
//! the preset's; only the data is small): once with everything trained, once with the vision tower frozen, then
//! a sweep of three vision-frozen runs with `keep_best = 1`. It prints the whole Hugging Face folder one run
//! exports (what every run kept before the policy), the bytes each run holds on disk, the shared files, and the
//! totals next to what full copies would take. Figures: `docs/checkpoints.md`.
//!
//! ```text
//! cargo run --release -p experiments --example checkpoint_disk [-- PRESET [HOME]]
//! ```

use std::path::Path;

use experiments::data::synth::{caption_contest, tiny_tokenizer_json, write_dataset, BOS_TOKEN, EOS_TOKEN, IMAGES_DIR};
use experiments::data::{import, ColumnMap, ImportOptions, OnError};
use experiments::events::{CancelToken, NullObserver};
use experiments::model::clip::ClipConfig;
use experiments::model::engine::ClipBundle;
use experiments::model::preprocess::ImageProcessorConfig;
use experiments::run::checkpoint;
use experiments::run::runner;
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::Store;
use experiments::run::sweep::{create_sweep, run_sweep, GridAxis};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn main() -> Res<()> {
    let preset = std::env::args().nth(1).unwrap_or_else(|| "vit-b-32".into());
    let tmp = tempfile::tempdir()?;
    let home = std::env::args().nth(2).map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let data = home.join("data");
    let metadata = write_dataset(&data, &caption_contest(12, 5, 1, 64, 4))?;
    let opts = ImportOptions {
        name: "shapes".into(),
        metadata,
        images_dir: Some(data.join(IMAGES_DIR)),
        columns: ColumnMap::default(),
        on_error: OnError::Reject,
        extract_dir: None,
    };
    let imported = import(&opts, &mut NullObserver, CancelToken::new())?;
    let mut store = Store::open(&home)?;
    store.insert_dataset(&imported)?;
    let model = home.join("model");
    let mut cfg = ClipConfig::preset(&preset)?;
    let side = cfg.vision_config.image_size;
    // The generated captions' small tokenizer: the model's special token ids are set to its ids (the shapes, and so
    // the bytes, stay the preset's).
    let tok_json = tiny_tokenizer_json();
    let id = |t: &str| tok_json["model"]["vocab"][t].as_u64().map(|i| i as u32).ok_or(format!("no {t} in the tokenizer"));
    cfg.text_config.bos_token_id = id(BOS_TOKEN)?;
    cfg.text_config.eos_token_id = id(EOS_TOKEN)?;
    cfg.text_config.pad_token_id = 0;
    let tok = serde_json::to_vec(&tok_json)?;
    ClipBundle::write_random(&model, &cfg, tok, ImageProcessorConfig::with_size(side), 1)?;
    let text = format!(
        "name = \"full\"\ndataset = \"shapes\"\nmodel = {model:?}\ndevice = \"cpu\"\n[sample]\ntrain = 4\nheldout = 2\n\
         [train]\nepochs = 1\nbatch_size = 2\nlr = 1e-5\n"
    );
    let spec = ExperimentSpec::from_toml(&text, None)?;
    let mut runs = Vec::new();
    for (name, frozen) in [("full", false), ("frozen", true)] {
        let mut s = ExperimentSpec { name: name.into(), ..spec.clone() };
        s.freeze.vision = frozen;
        let exp = runner::create_experiment(&mut store, &s)?;
        let t = std::time::Instant::now();
        let out = runner::run_experiment(&mut store, &home, exp, &mut NullObserver, CancelToken::new())?;
        eprintln!("{name}: run {} in {:.1} s", out.run_id, t.elapsed().as_secs_f64());
        runs.push((name.to_string(), out.run_id));
    }
    // What one run kept before the policy: the whole folder `export` writes.
    let exported = home.join("exported");
    checkpoint::export(&store, runs[0].1, &exported)?;
    let whole = folder_bytes(&exported)?;
    std::fs::remove_dir_all(&exported)?;
    // A sweep of three vision-frozen runs that keeps the best one's checkpoint.
    let mut sweep_spec = ExperimentSpec { name: "sweep".into(), keep_best: Some(1), ..spec.clone() };
    sweep_spec.freeze.vision = true;
    let axes = [GridAxis::parse("train.lr=1e-5,2e-5,3e-5")?];
    let created = create_sweep(&mut store, &sweep_spec, &axes, false)?;
    let t = std::time::Instant::now();
    let mut quiet = |_: i64| -> Box<dyn experiments::events::Observer> { Box::new(NullObserver) };
    let lrs = ["1e-5", "2e-5", "3e-5"];
    for ((id, r), lr) in run_sweep(&mut store, &home, &created.run_ids, &mut quiet, CancelToken::new())?.into_iter().zip(lrs) {
        r?;
        runs.push((format!("sweep lr {lr}"), id));
    }
    eprintln!("sweep: {} runs in {:.1} s", created.run_ids.len(), t.elapsed().as_secs_f64());
    report(&store, &home, &preset, &runs, whole)
}

/// Bytes of the regular files under `dir`.
fn folder_bytes(dir: &Path) -> Res<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let m = e?.metadata()?;
        if m.is_file() {
            total += m.len();
        }
    }
    Ok(total)
}

fn report(store: &Store, home: &Path, preset: &str, runs: &[(String, i64)], whole: u64) -> Res<()> {
    let usage = checkpoint::disk_usage(store, home)?;
    println!("{preset}: one run's whole exported folder (a full checkpoint): {}", mb(whole));
    println!("bytes on disk per run (own files; shared files once, in blobs/)");
    for (name, id) in runs {
        let d = usage.runs.iter().find(|r| r.run_id == *id).ok_or("run not measured")?;
        println!(
            "  run {id} {name:<12} own {:>10}  shared {:>10}  checkpoint {}",
            mb(d.bytes),
            mb(d.shared_bytes),
            d.checkpoint
        );
    }
    println!("  shared files (blobs/): {}", mb(usage.blobs_bytes));
    println!(
        "  total {} for {} runs; as full copies: {}",
        mb(usage.total_bytes),
        runs.len(),
        mb(whole * runs.len() as u64)
    );
    Ok(())
}
