//! `cliplab model pull|list`: CLIP models from the Hugging Face hub, in its standard cache.

use anyhow::{bail, Result};
use experiments::model::hub::{self as core, HubConfig, HubId};

use super::Ctx;

/// `model pull REPO_ID [--revision REV]`: downloads what the cache lacks and prints the model's folder.
pub fn pull(repo_id: &str, revision: &str, ctx: &Ctx, json: bool) -> Result<()> {
    let Some(mut id) = HubId::parse(repo_id) else {
        bail!("`{repo_id}` is not a hub repository id (owner/name, e.g. openai/clip-vit-base-patch32)");
    };
    if revision != "main" {
        id.revision = revision.to_string();
    }
    let cfg = HubConfig::from_env();
    let mut progress = ctx.progress(json);
    let pulled = match core::pull(&id, &cfg, &mut progress, &ctx.cancel) {
        Err(experiments::Error::Cancelled) => bail!("pull cancelled: what was downloaded stays in the cache, a next pull resumes"),
        other => other?,
    };
    drop(progress);
    if json {
        println!("{}", serde_json::to_string_pretty(&pulled)?);
        return Ok(());
    }
    if !pulled.downloaded.is_empty() {
        eprintln!(
            "{id}: downloaded {} ({}), {} already in the cache",
            pulled.downloaded.join(", "),
            experiments::fsio::human_bytes(pulled.downloaded_bytes),
            pulled.cached.len()
        );
    }
    println!("{}", pulled.folder.display());
    Ok(())
}

/// `model list`: the CLIP models in the hub cache.
pub fn list(json: bool) -> Result<()> {
    let cfg = HubConfig::from_env();
    let models = core::list_cached(&cfg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(());
    }
    if models.is_empty() {
        println!("no CLIP models in {} (cliplab model pull openai/clip-vit-base-patch32)", cfg.cache_dir.display());
        return Ok(());
    }
    println!("{:<44} {:<12} {:>10}  folder", "model", "commit", "size");
    for m in models {
        let name = if m.revisions.is_empty() { m.repo.clone() } else { format!("{} ({})", m.repo, m.revisions.join(", ")) };
        println!(
            "{name:<44} {:<12} {:>10}  {}",
            m.commit.get(..12).unwrap_or(&m.commit),
            experiments::fsio::human_bytes(m.bytes),
            m.folder.display()
        );
    }
    Ok(())
}
