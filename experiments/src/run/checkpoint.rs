//! Run checkpoints on disk, and what they cost: the disk policy of issue 13.
//!
//! - A run stores only the tensors it changed. When some tensors were frozen (a run that freezes the vision
//!   tower), its folder is a sharded Hugging Face folder: `model-trained.safetensors` (the trained tensors),
//!   `model-frozen.safetensors` (the rest, unchanged from the base model) and `model.safetensors.index.json`;
//!   `cliplab.json` names the base model. With nothing frozen it is a plain folder with `model.safetensors`.
//! - Files that do not change between runs are shared by content: the frozen shard, `config.json`,
//!   `tokenizer.json` and `preprocessor_config.json` are hard links to `<home>/blobs/<sha256>`. A checkpoint
//!   folder is still a complete folder of real files: `ClipBundle::load` (scoring, a run on top of it) and
//!   transformers read it as it is, and copying it copies the bytes.
//! - [`export`] writes the whole Hugging Face folder with one `model.safetensors`, as before.
//! - `keep_best = K` in a spec keeps the checkpoints of the best K runs of its experiment, or of its sweep, by
//!   the held-out accuracy after fine-tuning ([`apply_keep_best`], when a run completes); [`delete_checkpoint`]
//!   deletes one run's checkpoint and keeps its records; [`disk_usage`] measures; [`gc`] frees what no run
//!   needs any more (checkpoints over a `keep_best`, blobs no checkpoint links to), saying first what it would.
//!
//! A blob is unused when it has no other link than its own name (Unix link counts); on other systems files are
//! not shared and nothing in `blobs/` is ever written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::model::clip::params::{read_safetensors, save_tensors_atomically};
use crate::model::engine::{
    self, ClipBundle, CONFIG_FILE, PREPROCESSOR_FILE, PROVENANCE_FILE, TOKENIZER_FILE, TOKENIZER_HASH_KEY,
    WEIGHTS_FILE, WEIGHTS_INDEX_FILE,
};
use crate::run::store::{RunFolder, RunInfo, RunStatus, Store};
use crate::{Error, Result};

/// The home's folder of files shared by content hash (`<home>/blobs/<sha256>`).
pub const BLOBS_DIR: &str = "blobs";
/// The shard of a run's checkpoint with the tensors it trained.
pub const TRAINED_SHARD: &str = "model-trained.safetensors";
/// The shard with the tensors it kept frozen (a link to a blob).
pub const FROZEN_SHARD: &str = "model-frozen.safetensors";

/// Writes run checkpoint `out` (which must not exist or be empty) from `bundle` after fine-tuning: the trained
/// tensors in the run's own file, the frozen ones and the unchanged files as links to blobs in `home`, and
/// `cliplab.json` with `provenance`, the tokenizer's SHA-256 and the base model. Written in a temporary folder
/// beside `out` and moved into place, so a failure leaves no half-written checkpoint.
pub fn save(bundle: &ClipBundle, home: &Path, out: &Path, provenance: &serde_json::Value) -> Result<()> {
    if out.exists() && !crate::fsio::is_empty_dir(out) {
        return Err(Error::Invalid(format!("{}: already exists and is not empty", out.display())));
    }
    let blobs = home.join(BLOBS_DIR);
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
    let tmp = crate::fsio::temp_dir_for(out)?;
    let dir = tmp.path();
    let mut all = bundle.params.snapshot()?;
    let trained: HashMap<String, Tensor> =
        bundle.params.named_vars().into_iter().filter_map(|(n, _)| all.remove_entry(&n)).collect();
    let frozen = all;
    let mut provenance = provenance.clone();
    let mut extra = serde_json::Map::new();
    if frozen.is_empty() {
        save_tensors_atomically(&trained, &dir.join(WEIGHTS_FILE))?;
    } else {
        save_tensors_atomically(&trained, &dir.join(TRAINED_SHARD))?;
        save_tensors_atomically(&frozen, &dir.join(FROZEN_SHARD))?;
        let frozen_sha = share(&blobs, &dir.join(FROZEN_SHARD))?;
        write_index(dir, &trained, &frozen)?;
        extra.insert(
            "base".into(),
            serde_json::json!({
                "model": bundle.source,
                "frozen_sha256": frozen_sha,
                "trained_tensors": trained.len(),
                "frozen_tensors": frozen.len(),
            }),
        );
    }
    let json = |v: &serde_json::Value| serde_json::to_string_pretty(v).map(String::into_bytes);
    let files: [(&str, Vec<u8>); 3] = [
        (CONFIG_FILE, json(&bundle.config.to_hf_json())?),
        (PREPROCESSOR_FILE, json(&bundle.processor.config().to_json())?),
        (TOKENIZER_FILE, bundle.tokenizer_json().to_vec()),
    ];
    for (name, bytes) in &files {
        crate::fsio::write_file(&dir.join(name), bytes)?;
        let sha = share(&blobs, &dir.join(name))?;
        if *name == TOKENIZER_FILE {
            extra.insert(TOKENIZER_HASH_KEY.into(), sha.into());
        }
    }
    if let Some(o) = provenance.as_object_mut() {
        o.extend(extra);
    }
    crate::fsio::write_file(&dir.join(PROVENANCE_FILE), &json(&provenance)?)?;
    crate::fsio::publish_dir(tmp, out).map(drop)
}

/// `model.safetensors.index.json`: which shard holds each tensor, as Hugging Face writes it.
fn write_index(dir: &Path, trained: &HashMap<String, Tensor>, frozen: &HashMap<String, Tensor>) -> Result<()> {
    let mut map = BTreeMap::new();
    let mut total = 0usize;
    for (names, file) in [(trained, TRAINED_SHARD), (frozen, FROZEN_SHARD)] {
        for (n, t) in names {
            map.insert(n.clone(), file);
            total += t.elem_count() * t.dtype().size_in_bytes();
        }
    }
    let index = serde_json::json!({ "metadata": { "total_size": total }, "weight_map": map });
    crate::fsio::write_file(&dir.join(WEIGHTS_INDEX_FILE), serde_json::to_string_pretty(&index)?.as_bytes())
}

/// Hex SHA-256 of a file's bytes, read in pieces.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(h.finalize()))
}

/// Makes `file` (complete, not yet published) share its bytes with the blob of the same content: a link to the
/// blob when there is one, else the blob becomes a second name of `file`. Returns the content's SHA-256. When a
/// link cannot be made (a file system without hard links), `file` keeps its own copy: correct, only larger.
fn share(blobs: &Path, file: &Path) -> Result<String> {
    let sha = sha256_file(file)?;
    if cfg!(unix) {
        let blob = blobs.join(&sha);
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
        if blob.is_file() && len(&blob) == len(file) {
            // Linked under a temporary name, then renamed over `file`: `file` is whole at every moment.
            let link = file.with_extension("link");
            if std::fs::hard_link(&blob, &link).is_ok() {
                std::fs::rename(&link, file).map_err(|e| Error::io(file, e))?;
            }
        } else {
            // Ignored: `file` is right either way. AlreadyExists: another run published the same bytes at the same
            // moment; any other error: no hard links here, and `file` keeps its own copy.
            std::fs::hard_link(file, &blob).ok();
        }
    }
    Ok(sha)
}

/// Exports run `run_id`'s checkpoint to `out` (which must not exist or be empty) as the whole Hugging Face folder
/// that CLIP Lab and transformers load: one `model.safetensors` with every tensor (the shards merged), the
/// config, tokenizer and preprocessor files and `cliplab.json`, each a file of its own. Written in a hidden
/// sibling folder and renamed into place, so a failure (full disk) leaves no half-written export.
pub fn export(store: &Store, run_id: i64, out: &Path) -> Result<PathBuf> {
    let detail = store.run(run_id)?;
    let Some(from) = detail.checkpoint.clone() else {
        return Err(Error::Invalid(format!(
            "run {run_id} has no checkpoint (status {}; runs save one when they complete, unless the spec says \
             save_checkpoint = false or keep_best or `runs delete-checkpoint` removed it)",
            detail.info.status
        )));
    };
    if !from.is_dir() {
        return Err(Error::MissingFile { path: from, hint: format!(" (run {run_id}'s checkpoint folder)") });
    }
    if out.exists() && !crate::fsio::is_empty_dir(out) {
        return Err(Error::Invalid(format!("{}: already exists and is not empty", out.display())));
    }
    let shards = engine::weight_files(&from)?;
    let tmp = crate::fsio::temp_dir_for(out)?;
    let mut skip: HashSet<PathBuf> = shards.iter().cloned().collect();
    skip.insert(from.join(WEIGHTS_INDEX_FILE));
    if shards != [from.join(WEIGHTS_FILE)] {
        let mut merged = HashMap::new();
        for s in &shards {
            merged.extend(read_safetensors(s)?);
        }
        save_tensors_atomically(&merged, &tmp.path().join(WEIGHTS_FILE))?;
    } else {
        skip.clear();
    }
    for entry in std::fs::read_dir(&from).map_err(|e| Error::io(&from, e))? {
        let entry = entry.map_err(|e| Error::io(&from, e))?;
        let path = entry.path();
        if entry.file_type().map_err(|e| Error::io(&path, e))?.is_file() && !skip.contains(&path) {
            // Copied as content (not `fs::copy`, which keeps the source's mode; never a link to a blob).
            let mut src = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            let name = path.file_name().map(PathBuf::from).unwrap_or_default();
            crate::fsio::write_file_with(&tmp.path().join(name), |f| {
                std::io::copy(&mut src, f).map(drop).map_err(|e| Error::io(&path, e))
            })?;
        }
    }
    crate::fsio::publish_dir(tmp, out)
}

/// Bytes on disk of a folder: `(own, shared)`; shared files are links to blobs, counted once in the home's
/// blobs. Symbolic links are not followed.
fn folder_bytes(dir: &Path) -> Result<(u64, u64)> {
    let mut own = 0;
    let mut shared = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            let (o, s) = folder_bytes(&path)?;
            own += o;
            shared += s;
        } else if meta.is_file() {
            if links(&meta) > 1 {
                shared += meta.len();
            } else {
                own += meta.len();
            }
        }
    }
    Ok((own, shared))
}

#[cfg(unix)]
fn links(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(meta)
}

#[cfg(not(unix))]
fn links(_: &std::fs::Metadata) -> u64 {
    1
}

/// The (device, inode) of a file, to tell which blob a link in a run folder is.
#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// What became of a run's checkpoint, as the store records it. Spelled `kept`, `deleted`, `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum CheckpointState {
    /// The store records its checkpoint folder.
    Kept,
    /// It completed and wrote one into the run folder it claimed, and the checkpoint was deleted since
    /// (by `keep_best`, `delete_checkpoint` or `gc`); its records stay.
    Deleted,
    /// It never wrote one: not completed (queued, running, failed, cancelled), `save_checkpoint = false`, or a
    /// run pulled from a tracking server.
    None,
}

/// The state of run `f`'s checkpoint: kept when a checkpoint path is recorded, deleted when a completed run that
/// claimed a run folder has none any more, else none. The one place the app and the CLI get it from.
pub fn checkpoint_state(f: &RunFolder) -> CheckpointState {
    if f.checkpoint.is_some() {
        CheckpointState::Kept
    } else if f.status == RunStatus::Completed.as_str() && f.run_dir.is_some() {
        CheckpointState::Deleted
    } else {
        CheckpointState::None
    }
}

/// One run's disk use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDisk {
    pub run_id: i64,
    /// Bytes only this run's folder holds (what deleting the run frees).
    pub bytes: u64,
    /// Bytes of files it shares with other runs by content (held once, in `<home>/blobs`).
    pub shared_bytes: u64,
    pub has_checkpoint: bool,
    /// Kept, deleted (e.g. by `keep_best`) or none ([`checkpoint_state`]).
    pub checkpoint: CheckpointState,
}

/// The disk use of the home's runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// One entry per run, oldest first.
    pub runs: Vec<RunDisk>,
    /// Bytes of `<home>/blobs` (the shared files, each once).
    pub blobs_bytes: u64,
    /// Everything: the runs' own bytes plus the blobs.
    pub total_bytes: u64,
}

/// Measures every run folder the store claimed, and the blobs.
pub fn disk_usage(store: &Store, home: &Path) -> Result<DiskUsage> {
    let mut runs = Vec::new();
    for f in store.run_folders()? {
        let (bytes, shared_bytes) = match &f.run_dir {
            Some(d) => folder_bytes(d)?,
            None => (0, 0),
        };
        let checkpoint = checkpoint_state(&f);
        runs.push(RunDisk { run_id: f.run_id, bytes, shared_bytes, has_checkpoint: f.checkpoint.is_some(), checkpoint });
    }
    let (blobs_own, blobs_linked) = folder_bytes(&home.join(BLOBS_DIR))?;
    let blobs_bytes = blobs_own + blobs_linked;
    let total_bytes = runs.iter().map(|r| r.bytes).sum::<u64>() + blobs_bytes;
    Ok(DiskUsage { runs, blobs_bytes, total_bytes })
}

/// A checkpoint removed (or to remove) and the bytes only it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreedCheckpoint {
    pub run_id: i64,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Deletes run `run`'s checkpoint folder and forgets it; the run's records (scores, losses, metrics) stay.
/// Refused for a run that is queued or running, and for a checkpoint outside the run folder the store claimed.
pub fn delete_checkpoint(store: &mut Store, run: i64) -> Result<FreedCheckpoint> {
    let f = store.run_folders()?.into_iter().find(|f| f.run_id == run).ok_or_else(|| Error::not_found_id("run", run))?;
    let Some(path) = f.checkpoint.clone() else {
        return Err(Error::Invalid(format!("run {run} has no checkpoint")));
    };
    check_owned(&f, &path)?;
    let bytes = folder_bytes(&path)?.0;
    store.clear_checkpoint(run)?;
    remove_checkpoint_dir(&path)?;
    Ok(FreedCheckpoint { run_id: run, path, bytes })
}

/// A checkpoint may be deleted only inside the run folder the store claimed for its run.
fn check_owned(f: &RunFolder, path: &Path) -> Result<()> {
    if f.run_dir.as_deref().is_some_and(|d| path.parent() == Some(d)) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "run {}: its checkpoint {} is not inside a run folder this store claimed; left as it is",
            f.run_id,
            path.display()
        )))
    }
}

fn remove_checkpoint_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Invalid(format!(
            "{}: the record is updated but the checkpoint folder could not be removed: {e}",
            path.display()
        ))),
    }
}

/// The group whose best K runs keep their checkpoints: the sweep when the run belongs to one, else its
/// experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Group {
    Sweep(i64),
    Experiment(i64),
}

fn group_of(f: &RunFolder) -> Group {
    f.sweep_id.map_or(Group::Experiment(f.experiment_id), Group::Sweep)
}

/// The metric runs are ranked by: held-out accuracy after fine-tuning, else train accuracy after (as the sweep
/// chart ranks them). NaN counts as none.
pub fn ranking_metric(info: &RunInfo) -> Option<f64> {
    info.metrics.heldout_after.or(info.metrics.train_after).map(|s| s.accuracy).filter(|a| a.is_finite())
}

/// The checkpoints a `keep_best` would delete now, in `only` (a group) or everywhere: in every group whose spec
/// says `keep_best = K`, the completed runs are ranked by [`ranking_metric`] (best first; runs without one last;
/// the earlier run first among equals) and those after the first K lose their checkpoint.
fn over_keep_best(store: &Store, only: Option<Group>) -> Result<Vec<(RunFolder, PathBuf)>> {
    let keep: HashMap<i64, usize> =
        store.experiments()?.into_iter().filter_map(|e| e.spec.keep_best.map(|k| (e.id, k))).collect();
    let infos: HashMap<i64, RunInfo> = store.runs()?.into_iter().map(|r| (r.id, r)).collect();
    let mut groups: BTreeMap<Group, Vec<RunFolder>> = BTreeMap::new();
    for f in store.run_folders()? {
        if f.status == "completed" && only.is_none_or(|g| g == group_of(&f)) {
            groups.entry(group_of(&f)).or_default().push(f);
        }
    }
    let mut out = Vec::new();
    for (_, mut runs) in groups {
        // A sweep's points share the spec's keep_best; should they differ, the smallest wins.
        let Some(k) = runs.iter().filter_map(|f| keep.get(&f.experiment_id)).min().copied() else { continue };
        let metric = |f: &RunFolder| infos.get(&f.run_id).and_then(ranking_metric);
        runs.sort_by(|a, b| {
            let (ma, mb) = (metric(a), metric(b));
            mb.partial_cmp(&ma).unwrap_or(std::cmp::Ordering::Equal).then(a.run_id.cmp(&b.run_id))
        });
        for f in runs.into_iter().skip(k) {
            if let Some(path) = f.checkpoint.clone() {
                out.push((f, path));
            }
        }
    }
    Ok(out)
}

/// Applies `keep_best` to run `run`'s group (called when it completed): deletes the checkpoints of the runs
/// that are no longer among the best K, and returns what was freed (possibly `run`'s own checkpoint).
pub fn apply_keep_best(store: &mut Store, run: i64) -> Result<Vec<FreedCheckpoint>> {
    let Some(f) = store.run_folders()?.into_iter().find(|f| f.run_id == run) else {
        return Err(Error::not_found_id("run", run));
    };
    let mut freed = Vec::new();
    for (f, path) in over_keep_best(store, Some(group_of(&f)))? {
        if check_owned(&f, &path).is_ok() {
            freed.push(delete_checkpoint(store, f.run_id)?);
        }
    }
    Ok(freed)
}

/// A blob removed (or to remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreedBlob {
    pub path: PathBuf,
    pub bytes: u64,
}

/// What [`gc`] frees, or would free.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Checkpoints of runs no longer among the best K of their group (`keep_best`).
    pub checkpoints: Vec<FreedCheckpoint>,
    /// Shared files no remaining checkpoint links to.
    pub blobs: Vec<FreedBlob>,
    /// Everything together.
    pub bytes: u64,
    /// Whether it was done (false: only planned).
    pub applied: bool,
}

/// Frees what no run needs: the checkpoints a `keep_best` no longer keeps, then the blobs nothing links to (also
/// those the removed checkpoints were the last to link to). `apply = false`: only says what it would free; the
/// bytes it says are the bytes it frees.
pub fn gc(store: &mut Store, home: &Path, apply: bool) -> Result<GcReport> {
    let over = over_keep_best(store, None)?;
    let mut checkpoints = Vec::new();
    // Links to blobs that go with the checkpoints removed: (device, inode) -> count.
    let mut dropped_links: HashMap<(u64, u64), u64> = HashMap::new();
    for (f, path) in &over {
        if check_owned(f, path).is_err() {
            continue;
        }
        checkpoints.push(FreedCheckpoint { run_id: f.run_id, path: path.clone(), bytes: folder_bytes(path)?.0 });
        count_links(path, &mut dropped_links)?;
    }
    let mut blobs = Vec::new();
    let dir = home.join(BLOBS_DIR);
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            if !meta.is_file() || !is_blob_name(&path) {
                continue;
            }
            let dropped = file_id(&meta).and_then(|id| dropped_links.get(&id)).copied().unwrap_or(0);
            if cfg!(unix) && links(&meta).saturating_sub(dropped) <= 1 {
                blobs.push(FreedBlob { path, bytes: meta.len() });
            }
        }
    }
    blobs.sort_by(|a, b| a.path.cmp(&b.path));
    let bytes = checkpoints.iter().map(|c| c.bytes).sum::<u64>() + blobs.iter().map(|b| b.bytes).sum::<u64>();
    let mut report = GcReport { checkpoints, blobs, bytes, applied: apply };
    if apply {
        let planned = std::mem::take(&mut report.checkpoints);
        for c in planned {
            report.checkpoints.push(delete_checkpoint(store, c.run_id)?);
        }
        for b in &report.blobs {
            match std::fs::remove_file(&b.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&b.path, e)),
            }
        }
    }
    Ok(report)
}

/// Counts the links to shared files inside `dir`, by (device, inode).
fn count_links(dir: &Path, out: &mut HashMap<(u64, u64), u64>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            count_links(&path, out)?;
        } else if let Some(id) = file_id(&meta).filter(|_| meta.is_file() && links(&meta) > 1) {
            *out.entry(id).or_default() += 1;
        }
    }
    Ok(())
}

/// Blobs are named by their hex SHA-256: nothing else in `blobs/` is ever removed.
fn is_blob_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}
