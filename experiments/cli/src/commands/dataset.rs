//! `cliplab dataset import|list|show`.

use anyhow::{bail, Result};
use experiments::data::{self, ColumnMap, ImportOptions, OnError};
use experiments::run::store::Store;

use super::Ctx;
use crate::args::DatasetCmd;
use crate::output::truncate;

/// Runs a `dataset` subcommand against the store in the home.
pub fn run(cmd: DatasetCmd, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open()?;
    match cmd {
        DatasetCmd::Import { name, metadata, images, skip_bad_rows, filename_column, choices_column, label_column, image_column, json } => {
            let opts = ImportOptions {
                name,
                metadata,
                images_dir: images,
                columns: ColumnMap { filename: filename_column, choices: choices_column, label: label_column, image: image_column },
                on_error: if skip_bad_rows { OnError::Skip } else { OnError::Reject },
                extract_dir: Some(ctx.home.join("images")),
            };
            import(&opts, &mut store, ctx, json)
        }
        DatasetCmd::List { json } => list(&store, json),
        DatasetCmd::Show { dataset, limit, json } => show(&store, &dataset, limit, json),
        DatasetCmd::Delete { dataset, with_runs, yes } => super::manage::dataset(&dataset, with_runs, yes, ctx),
    }
}

/// Imports and stores a dataset. The name is checked against the store before the metadata is read; Ctrl-C
/// (`ctx.cancel`) stops the import with nothing stored; what the import extracted is removed if the dataset cannot
/// be stored.
fn import(opts: &ImportOptions, store: &mut Store, ctx: &Ctx, json: bool) -> Result<()> {
    let wanted = opts.name.trim();
    if store.datasets()?.iter().any(|d| d.name == wanted) {
        bail!("a dataset named `{wanted}` already exists; choose another name");
    }
    // Local paths and gs:// / s3:// / https:// URLs alike (URLs are fetched into the home's cache first).
    let mut imported = match data::remote::import_any(opts, &ctx.home, &mut ctx.progress(json), ctx.cancel.clone()) {
        Ok(d) => d,
        Err(experiments::Error::Cancelled) => bail!("import cancelled: nothing was stored"),
        Err(e) => return Err(e.into()),
    };
    let id = match store.insert_dataset(&imported) {
        Ok(id) => id,
        Err(e) => {
            imported.discard_extracted();
            return Err(e.into());
        }
    };
    let name = &opts.name;
    tracing::info!(id, name = %name, samples = imported.report.valid_rows, "dataset imported");
    if json {
        println!("{}", serde_json::json!({ "dataset_id": id, "name": name, "report": imported.report, "content_hash": imported.content_hash }));
        return Ok(());
    }
    let r = &imported.report;
    println!("imported `{name}` (id {id}): {} samples, {} images", r.valid_rows, imported.images.len());
    if !r.problems.is_empty() {
        println!("skipped {} of {} rows:", r.total_rows - r.valid_rows, r.total_rows);
        for p in r.problems.iter().take(20) {
            println!("  {p}");
        }
        if r.problems.len() > 20 {
            println!("  ... and {} more (cliplab dataset show {name} --json)", r.problems.len() - 20);
        }
    }
    Ok(())
}

fn list(store: &Store, json: bool) -> Result<()> {
    let list = store.datasets()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!("{:>4}  {:<24} {:>8} {:>7} {:>8}  hash", "id", "name", "samples", "images", "skipped");
    for d in list {
        println!("{:>4}  {:<24} {:>8} {:>7} {:>8}  {}", d.id, truncate(&d.name, 24), d.n_samples, d.n_images, d.n_skipped, &d.content_hash[..12.min(d.content_hash.len())]);
    }
    Ok(())
}

fn show(store: &Store, dataset: &str, limit: usize, json: bool) -> Result<()> {
    let d = store.dataset(dataset)?;
    let samples = store.dataset_samples(d.id)?;
    let report = store.dataset_report(d.id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({
            "dataset": d, "report": report, "samples": samples.iter().take(limit).collect::<Vec<_>>()
        }))?);
        return Ok(());
    }
    println!("dataset {} `{}`: {} samples, {} images, {} rows skipped", d.id, d.name, d.n_samples, d.n_images, d.n_skipped);
    println!("metadata: {}", d.metadata_path.display());
    if let Some(images) = &d.images_dir {
        println!("images: {}", images.display());
    }
    println!("content hash: {}", d.content_hash);
    for s in samples.iter().take(limit) {
        println!("\nrow {}  {}", s.row, s.filename);
        for (i, c) in s.choices.iter().enumerate() {
            let mark = if i == s.label { "*" } else { " " };
            println!("  {mark}{} {c}", experiments::vocab::letter(i));
        }
    }
    Ok(())
}
