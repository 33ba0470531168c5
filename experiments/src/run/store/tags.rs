//! Tags and notes on runs and experiments, and what the runs table shows beside a run's own record: its sweep,
//! its place in the queue, its tags and note, whether it is archived or pulled.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{check_exists, Ctx, Store};
use crate::{Error, Result};

/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;

/// What a run carries beside its record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RunLabels {
    pub run_id: i64,
    pub sweep_id: Option<i64>,
    /// 1-based place in the queue while it waits there.
    pub queue_position: Option<usize>,
    /// Sorted.
    pub tags: Vec<String>,
    pub note: String,
    /// Hidden from the default views (`Store::archive_run`).
    pub archived: bool,
    /// A read-only copy pulled from an MLflow tracking server.
    pub pulled: bool,
}

/// A tag as stored: trimmed, one line, not empty, at most [`MAX_TAG_CHARS`] characters.
fn clean_tag(tag: &str) -> Result<String> {
    let t = tag.trim();
    if t.is_empty() || t.chars().count() > MAX_TAG_CHARS || t.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "tag `{}`: a tag is 1 to {MAX_TAG_CHARS} characters on one line",
            // Escaped: the error stays one line even when the tag is not.
            tag.escape_debug()
        )));
    }
    Ok(t.to_string())
}

/// What a tag or a note is on. Renders as "run 3" or "experiment 2".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labelled {
    Run(i64),
    Experiment(i64),
}

impl Labelled {
    /// The kind as the store names it (`run`, `experiment`), and the id.
    fn parts(self) -> (&'static str, i64) {
        match self {
            Labelled::Run(id) => ("run", id),
            Labelled::Experiment(id) => ("experiment", id),
        }
    }
}

impl std::fmt::Display for Labelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, id) = self.parts();
        write!(f, "{what} {id}")
    }
}

impl Store {
    /// Adds (`add`) or removes `tag` on a run or experiment: already there (or not there) changes nothing. The tag
    /// is stored trimmed; an empty, multi-line or over-long tag is refused, as is an id the store does not hold.
    pub fn set_tag(&mut self, on: Labelled, tag: &str, add: bool) -> Result<()> {
        let tag = clean_tag(tag)?;
        let path = self.path.clone();
        let (what, id) = on.parts();
        let tx = self.write_tx()?;
        check_exists(&tx, &path, what, id)?;
        let sql = if add {
            format!("INSERT OR IGNORE INTO {what}_tags ({what}_id, tag) VALUES (?1, ?2)")
        } else {
            format!("DELETE FROM {what}_tags WHERE {what}_id = ?1 AND tag = ?2")
        };
        tx.execute(&sql, params![id, tag]).ctx(&path, format!("tagging {on}"))?;
        tx.commit().ctx(&path, format!("tagging {on}"))
    }

    /// Replaces the note of a run or experiment (empty: none).
    pub fn set_note(&mut self, on: Labelled, note: &str) -> Result<()> {
        let path = self.path.clone();
        let (what, id) = on.parts();
        let tx = self.write_tx()?;
        check_exists(&tx, &path, what, id)?;
        tx.execute(&format!("UPDATE {what}s SET note = ?2 WHERE id = ?1"), params![id, note.trim()])
            .ctx(&path, format!("writing the note of {on}"))?;
        tx.commit().ctx(&path, format!("writing the note of {on}"))
    }

    /// The sweep, queue place, tags, note and archived / pulled marks of every run, by run id.
    pub fn run_labels(&self) -> Result<BTreeMap<i64, RunLabels>> {
        let doing = "reading run tags";
        let positions = self.queue_positions()?;
        let archived = self.archived_runs()?;
        let pulled = self.pulled_runs()?;
        let mut out = BTreeMap::new();
        {
            let mut st = self.conn.prepare("SELECT id, sweep_id, note FROM runs").ctx(&self.path, doing)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, String>(2)?)))
                .ctx(&self.path, doing)?;
            for r in rows {
                let (run_id, sweep_id, note) = r.ctx(&self.path, doing)?;
                let queue_position = positions.get(&run_id).copied();
                let (archived, pulled) = (archived.contains(&run_id), pulled.contains(&run_id));
                let tags = Vec::new();
                out.insert(run_id, RunLabels { run_id, sweep_id, queue_position, tags, note, archived, pulled });
            }
        }
        let mut st = self.conn.prepare("SELECT run_id, tag FROM run_tags ORDER BY run_id, tag").ctx(&self.path, doing)?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).ctx(&self.path, doing)?;
        for r in rows {
            let (run, tag) = r.ctx(&self.path, doing)?;
            if let Some(l) = out.get_mut(&run) {
                l.tags.push(tag);
            }
        }
        Ok(out)
    }

    /// The tags and note of every experiment, by experiment id.
    pub fn experiment_labels(&self) -> Result<BTreeMap<i64, (Vec<String>, String)>> {
        let doing = "reading experiment tags";
        let mut out: BTreeMap<i64, (Vec<String>, String)> = BTreeMap::new();
        {
            let mut st = self.conn.prepare("SELECT id, note FROM experiments").ctx(&self.path, doing)?;
            let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).ctx(&self.path, doing)?;
            for r in rows {
                let (id, note) = r.ctx(&self.path, doing)?;
                out.insert(id, (Vec::new(), note));
            }
        }
        let mut st = self
            .conn
            .prepare("SELECT experiment_id, tag FROM experiment_tags ORDER BY experiment_id, tag")
            .ctx(&self.path, doing)?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).ctx(&self.path, doing)?;
        for r in rows {
            let (id, tag) = r.ctx(&self.path, doing)?;
            if let Some(l) = out.get_mut(&id) {
                l.0.push(tag);
            }
        }
        Ok(out)
    }

    /// The runs tagged `tag`, or whose experiment is, newest first.
    pub fn runs_tagged(&self, tag: &str) -> Result<Vec<i64>> {
        let tag = clean_tag(tag)?;
        let doing = format!("finding runs tagged `{tag}`");
        let mut st = self
            .conn
            .prepare(
                "SELECT id FROM runs WHERE id IN (SELECT run_id FROM run_tags WHERE tag = ?1) \
                 OR experiment_id IN (SELECT experiment_id FROM experiment_tags WHERE tag = ?1) ORDER BY id DESC",
            )
            .ctx(&self.path, &doing)?;
        let rows = st.query_map([&tag], |r| r.get(0)).ctx(&self.path, &doing)?;
        rows.collect::<rusqlite::Result<_>>().ctx(&self.path, &doing)
    }
}
