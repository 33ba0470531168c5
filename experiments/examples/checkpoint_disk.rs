//! Measures what the checkpoint disk policy saves at a real model size: a random CLIP of a size preset (default
//! ViT-B/32, about 600 MB of weights) is fine-tuned on a few generated samples, once with everything trained and
//! then three times with the vision tower frozen, and the bytes each run holds on disk are printed, with the
//! shared files and the total, next to what full copies would take.
//!
//! ```text
//! cargo run --release -p experiments --example checkpoint_disk [-- PRESET [HOME]]
//! ```

use std::path::Path;

use experiments::data::synth::{caption_contest, tiny_tokenizer_json, write_dataset, IMAGES_DIR};
use experiments::data::{import, ColumnMap, ImportOptions, OnError};
use experiments::events::{CancelToken, NullObserver};
use experiments::model::clip::ClipConfig;
use experiments::model::engine::ClipBundle;
use experiments::model::preprocess::ImageProcessorConfig;
use experiments::run::checkpoint;
use experiments::run::runner;
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::Store;

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
    let cfg = ClipConfig::preset(&preset)?;
    let side = cfg.vision_config.image_size;
    let tok = serde_json::to_vec(&tiny_tokenizer_json())?;
    ClipBundle::write_random(&model, &cfg, tok, ImageProcessorConfig::with_size(side), 1)?;
    let text = format!(
        "name = \"full\"\ndataset = \"shapes\"\nmodel = {model:?}\ndevice = \"cpu\"\n[sample]\ntrain = 4\nheldout = 2\n\
         [train]\nepochs = 1\nbatch_size = 2\nlr = 1e-5\n"
    );
    let spec = ExperimentSpec::from_toml(&text, None)?;
    let mut runs = Vec::new();
    let plan = [("full", false, 1e-5), ("frozen-a", true, 1e-5), ("frozen-b", true, 2e-5), ("frozen-c", true, 3e-5)];
    for (name, frozen, lr) in plan {
        let mut s = ExperimentSpec { name: name.into(), ..spec.clone() };
        s.freeze.vision = frozen;
        s.train.lr = lr;
        let exp = runner::create_experiment(&mut store, &s)?;
        let t = std::time::Instant::now();
        let out = runner::run_experiment(&mut store, &home, exp, &mut NullObserver, CancelToken::new())?;
        eprintln!("{name}: run {} in {:.1} s", out.run_id, t.elapsed().as_secs_f64());
        runs.push((name, out.run_id));
    }
    report(&store, &home, &preset, &runs)
}

fn report(store: &Store, home: &Path, preset: &str, runs: &[(&str, i64)]) -> Res<()> {
    let usage = checkpoint::disk_usage(store, home)?;
    println!("{preset}: bytes on disk per run (own files; shared files once, in blobs/)");
    let mut full = 0;
    for (name, id) in runs {
        let d = usage.runs.iter().find(|r| r.run_id == *id).ok_or("run not measured")?;
        full = full.max(d.bytes + d.shared_bytes);
        println!("  run {id} {name:<9} own {:>10}  shared {:>10}", mb(d.bytes), mb(d.shared_bytes));
    }
    println!("  shared files (blobs/): {}", mb(usage.blobs_bytes));
    println!(
        "  total {} for {} runs; as full copies: {}",
        mb(usage.total_bytes),
        runs.len(),
        mb(full * runs.len() as u64)
    );
    Ok(())
}
