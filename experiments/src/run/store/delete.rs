//! Deleting runs, experiments and datasets: their records in one transaction, then the run folders the store
//! claimed (`<home>/runs/<id>` or `<id>-<n>`, as recorded when the run claimed it) and the images an import
//! extracted from a parquet file into the home (`<home>/images/<sha256>.<ext>`, or the app's
//! `<home>/extracted/<import>/`) that no remaining dataset uses. A path the store did not claim is never touched,
//! and a run whose process still works on it (its OS lock is held) is refused.
//!
//! Every delete first answers what it would remove (`apply = false`), so that a face can ask before it deletes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Ctx, PathCol, Store};
use crate::{Error, Result};

/// What a delete removed, or would remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Deleted {
    pub runs: Vec<i64>,
    pub experiments: Vec<i64>,
    pub datasets: Vec<i64>,
    /// Run folders removed from the disk (or to remove).
    pub folders: Vec<PathBuf>,
    /// Images the deleted datasets' imports extracted into the home, used by no other dataset: removed (or to
    /// remove).
    #[serde(default)]
    pub images: Vec<PathBuf>,
    /// Whether it was done (false: only planned).
    pub applied: bool,
}

impl Deleted {
    /// "3 runs, 1 experiment and 2 folders" (what a confirmation names).
    pub fn describe(&self) -> String {
        let part = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        let mut parts = vec![part(self.runs.len(), "run")];
        if !self.experiments.is_empty() {
            parts.push(part(self.experiments.len(), "experiment"));
        }
        if !self.datasets.is_empty() {
            parts.push(part(self.datasets.len(), "dataset"));
        }
        if !self.images.is_empty() {
            parts.push(part(self.images.len(), "extracted image"));
        }
        parts.push(part(self.folders.len(), "run folder"));
        let last = parts.pop().unwrap_or_default();
        if parts.is_empty() {
            last
        } else {
            format!("{} and {last}", parts.join(", "))
        }
    }
}

/// What is deleted: runs, experiments (with their runs) and datasets (with their experiments).
struct Target {
    runs: BTreeSet<i64>,
    experiments: BTreeSet<i64>,
    datasets: BTreeSet<i64>,
}

impl Store {
    /// Deletes runs `ids` (records and run folders). `apply = false`: only says what it would delete.
    pub fn delete_runs(&mut self, ids: &[i64], apply: bool) -> Result<Deleted> {
        for &id in ids {
            super::check_exists(&self.conn, &self.path, "run", id)?;
        }
        let t = Target { runs: ids.iter().copied().collect(), experiments: BTreeSet::new(), datasets: BTreeSet::new() };
        self.delete(t, apply)
    }

    /// Deletes experiment `id` with its runs. `apply = false`: only says what it would delete.
    pub fn delete_experiment(&mut self, id: i64, apply: bool) -> Result<Deleted> {
        super::check_exists(&self.conn, &self.path, "experiment", id)?;
        let runs = self.ids("SELECT id FROM runs WHERE experiment_id = ?1", id)?;
        let t = Target { runs, experiments: BTreeSet::from([id]), datasets: BTreeSet::new() };
        self.delete(t, apply)
    }

    /// Deletes dataset `name_or_id` (its samples and images records; of its files, only the images its import
    /// extracted into the home that no other dataset uses, never the user's own files). Refused while
    /// experiments use it, unless `with_runs`: then those experiments and their runs go too.
    pub fn delete_dataset(&mut self, name_or_id: &str, with_runs: bool, apply: bool) -> Result<Deleted> {
        let ds = self.dataset(name_or_id)?;
        let experiments = self.ids("SELECT id FROM experiments WHERE dataset_id = ?1", ds.id)?;
        let runs = self.ids(
            "SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE e.dataset_id = ?1",
            ds.id,
        )?;
        if !experiments.is_empty() && !with_runs {
            return Err(Error::Invalid(format!(
                "dataset `{}` is used by {} experiment(s) with {} run(s); delete those too with --with-runs, or \
                 delete them first",
                ds.name,
                experiments.len(),
                runs.len()
            )));
        }
        self.delete(Target { runs, experiments, datasets: BTreeSet::from([ds.id]) }, apply)
    }

    fn ids(&self, sql: &str, id: i64) -> Result<BTreeSet<i64>> {
        let mut st = self.conn.prepare(sql).ctx(&self.path, "finding what to delete")?;
        let rows = st.query_map([id], |r| r.get(0)).ctx(&self.path, "finding what to delete")?;
        rows.collect::<rusqlite::Result<_>>().ctx(&self.path, "finding what to delete")
    }

    fn delete(&mut self, t: Target, apply: bool) -> Result<Deleted> {
        // Runs of dead processes become `interrupted` first: what is still queued or running after that (and not
        // waiting in the queue) has a live process.
        self.recover_interrupted()?;
        let path = self.path.clone();
        let home = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let tx = self.write_tx()?;
        let mut folders = Vec::new();
        for &run in &t.runs {
            let (status, queued, run_dir, checkpoint): (String, bool, Option<PathCol>, Option<PathCol>) = tx
                .query_row(
                    "SELECT status, id IN (SELECT run_id FROM run_queue), run_dir, checkpoint_path FROM runs \
                     WHERE id = ?1",
                    [run],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .ctx(&path, format!("reading run {run}"))?;
            if matches!(status.as_str(), "queued" | "running") && !queued {
                return Err(Error::Invalid(format!(
                    "run {run} is {status} (its process holds {}): cancel it first; nothing was deleted",
                    super::owner::lock_path(&path, run).display()
                )));
            }
            let dir = run_dir.map(|p| p.0).or_else(|| checkpoint.and_then(|c| c.0.parent().map(Path::to_path_buf)));
            if let Some(dir) = dir.filter(|d| owned_run_dir(&home, run, d)) {
                folders.push(dir);
            }
        }
        let images = extracted_images(&tx, &path, &home, &t.datasets)?;
        let out = Deleted {
            runs: t.runs.iter().copied().collect(),
            experiments: t.experiments.iter().copied().collect(),
            datasets: t.datasets.iter().copied().collect(),
            folders,
            images,
            applied: apply,
        };
        if !apply {
            return Ok(out);
        }
        let doing = format!("deleting {}", out.describe());
        for (table, ids) in [("runs", &t.runs), ("experiments", &t.experiments), ("datasets", &t.datasets)] {
            for &id in ids {
                tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), params![id])
                    .ctx(&path, &doing)?;
            }
        }
        tx.commit().ctx(&path, &doing)?;
        for dir in &out.folders {
            remove_owned(dir, "the run folder", |p| std::fs::remove_dir_all(p))?;
        }
        remove_images(&out.images)?;
        Ok(out)
    }
}

/// The image files of `datasets` that an import extracted into the home and that no other dataset uses.
fn extracted_images(
    tx: &rusqlite::Connection,
    path: &Path,
    home: &Path,
    datasets: &BTreeSet<i64>,
) -> Result<Vec<PathBuf>> {
    let doing = "finding the extracted images to delete";
    let mut st = tx.prepare("SELECT path, sha256, dataset_id FROM images").ctx(path, doing)?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, PathCol>(0)?.0, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
        .ctx(path, doing)?;
    let mut gone = BTreeSet::new();
    let mut kept = BTreeSet::new();
    for r in rows {
        let (file, sha, dataset) = r.ctx(path, doing)?;
        if !datasets.contains(&dataset) {
            kept.insert(file);
        } else if extracted_into_home(home, &file, &sha) {
            gone.insert(file);
        }
    }
    Ok(gone.difference(&kept).cloned().collect())
}

/// Whether `file` is an image an import extracted into the home: named `<sha256>.<ext>` by its own content hash,
/// directly in `<home>/images` or in a folder directly in `<home>/extracted`.
fn extracted_into_home(home: &Path, file: &Path, sha: &str) -> bool {
    let named = file.file_stem().and_then(|s| s.to_str()) == Some(sha);
    let Some(parent) = file.parent() else { return false };
    let in_images = same_dir(parent, &home.join("images"));
    let in_extracted = parent.parent().is_some_and(|p| same_dir(p, &home.join("extracted")));
    named && (in_images || in_extracted)
}

/// Removes a file or folder the store owned, after its records are deleted: already gone is fine; any other
/// failure names the path and says that the records are gone (`what`: "the run folder", ...).
fn remove_owned(path: &Path, what: &str, remove: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    match remove(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Invalid(format!(
            "{}: the records are deleted but {what} could not be removed: {e}",
            path.display()
        ))),
    }
}

/// Removes the extracted images (already gone: fine), then the app's per-import folders they leave empty.
fn remove_images(images: &[PathBuf]) -> Result<()> {
    let mut parents = BTreeSet::new();
    for file in images {
        remove_owned(file, "the extracted image", |p| std::fs::remove_file(p))?;
        let in_extracted = |p: &&Path| p.parent().and_then(Path::file_name) == Some(std::ffi::OsStr::new("extracted"));
        if let Some(p) = file.parent().filter(in_extracted) {
            parents.insert(p.to_path_buf());
        }
    }
    for p in parents {
        if crate::fsio::is_empty_dir(&p) {
            // Best effort: a folder that another import just wrote into is not empty any more, and stays.
            std::fs::remove_dir(&p).ok();
        }
    }
    Ok(())
}

/// Whether `dir` is a folder the store claimed for run `run`: `<home>/runs/<run>` or `<home>/runs/<run>-<n>`, a
/// real folder (a symbolic link there is not followed) that exists.
pub(super) fn owned_run_dir(home: &Path, run: i64, dir: &Path) -> bool {
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else { return false };
    let id = run.to_string();
    let named = name == id
        || name.strip_prefix(&id).and_then(|r| r.strip_prefix('-')).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let under = dir.parent().is_some_and(|p| same_dir(p, &home.join("runs")));
    let real = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    named && under && real
}

/// Whether two paths name the same folder (compared as resolved paths when both resolve).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
