//! The run queue: runs waiting for a worker, in order. It lives in the store (`run_queue`), so queued runs
//! survive restarts of the app or of `cliplab queue run`.
//!
//! A run in the queue is `queued` and has no owning process (the recovery of dead runs leaves it alone). A
//! worker claims the first one in one write transaction that takes the run's OS lock, makes this process its
//! owner and removes it from the queue: two workers never take the same run, and a worker killed after claiming
//! leaves a run whose lock is free, which the recovery marks `interrupted` as any other run of a dead process.

use std::path::Path;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::owner::{hold_lock, lock_path, release_lock, Owner};
use super::{uint, Ctx, Store, NOW};
use crate::{Error, Result};

/// A run waiting in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct QueuedRun {
    pub run_id: i64,
    /// 1-based place in the queue (1: the next run a worker takes).
    pub position: usize,
    pub experiment_id: i64,
    pub experiment_name: String,
    pub sweep_id: Option<i64>,
    pub created_at: String,
}

/// Puts run `run` at the end of the queue.
pub(super) fn enqueue_in(conn: &rusqlite::Connection, path: &Path, run: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO run_queue (run_id, position) VALUES (?1, (SELECT COALESCE(MAX(position), 0) + 1 FROM run_queue))",
        [run],
    )
    .ctx(path, format!("queueing run {run}"))?;
    Ok(())
}

/// The queue's run ids in order.
fn order(conn: &rusqlite::Connection, path: &Path) -> Result<Vec<i64>> {
    let mut st = conn.prepare("SELECT run_id FROM run_queue ORDER BY position, run_id").ctx(path, "reading the queue")?;
    let rows = st.query_map([], |r| r.get(0)).ctx(path, "reading the queue")?;
    rows.collect::<rusqlite::Result<_>>().ctx(path, "reading the queue")
}

fn not_queued(run: i64) -> Error {
    Error::Invalid(format!("run {run} is not in the queue (see `cliplab queue list`)"))
}

impl Store {
    /// The queued runs, next first.
    pub fn queue(&self) -> Result<Vec<QueuedRun>> {
        let doing = "listing the queue";
        let mut st = self
            .conn
            .prepare(
                "SELECT q.run_id, r.experiment_id, e.name, r.sweep_id, r.created_at FROM run_queue q \
                 JOIN runs r ON r.id = q.run_id JOIN experiments e ON e.id = r.experiment_id \
                 ORDER BY q.position, q.run_id",
            )
            .ctx(&self.path, doing)?;
        let rows = st
            .query_map([], |r| {
                Ok(QueuedRun {
                    run_id: r.get(0)?,
                    position: 0,
                    experiment_id: r.get(1)?,
                    experiment_name: r.get(2)?,
                    sweep_id: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })
            .ctx(&self.path, doing)?;
        let mut out = rows.collect::<rusqlite::Result<Vec<_>>>().ctx(&self.path, doing)?;
        for (i, q) in out.iter_mut().enumerate() {
            q.position = i + 1;
        }
        Ok(out)
    }

    /// Claims the next queued run for this process: takes its lock, makes this process its owner and removes it
    /// from the queue, in one transaction. `None`: the queue is empty.
    pub fn claim_next_queued(&mut self) -> Result<Option<i64>> {
        let path = self.path.clone();
        let me = Owner::current();
        let tx = self.write_tx()?;
        let next: Option<i64> = tx
            .query_row("SELECT run_id FROM run_queue ORDER BY position, run_id LIMIT 1", [], |r| r.get(0))
            .optional()
            .ctx(&path, "claiming a queued run")?;
        let Some(run) = next else { return Ok(None) };
        let doing = format!("claiming queued run {run}");
        tx.execute(
            &format!(
                "UPDATE runs SET owner_pid = ?2, owner_host = ?3, owner_start = ?4, heartbeat_at = {NOW} WHERE id = ?1"
            ),
            params![run, me.pid, me.host, me.start],
        )
        .ctx(&path, &doing)?;
        tx.execute("DELETE FROM run_queue WHERE run_id = ?1", [run]).ctx(&path, &doing)?;
        // Locked before the claim is visible: from then on, a free lock means the worker died.
        let lock = lock_path(&path, run);
        hold_lock(&lock)?;
        if let Err(e) = tx.commit() {
            release_lock(&lock);
            return Err(super::sql_error(&path, doing, e));
        }
        Ok(Some(run))
    }

    /// Takes run `run` out of the queue and marks it `cancelled`.
    pub fn cancel_queued(&mut self, run: i64) -> Result<()> {
        let path = self.path.clone();
        let doing = format!("cancelling queued run {run}");
        let tx = self.write_tx()?;
        let n = tx.execute("DELETE FROM run_queue WHERE run_id = ?1", [run]).ctx(&path, &doing)?;
        if n == 0 {
            super::check_exists(&tx, &path, "run", run)?;
            return Err(not_queued(run));
        }
        tx.execute(
            &format!(
                "UPDATE runs SET status = 'cancelled', ended_at = {NOW}, error = 'cancelled while queued' WHERE id = ?1"
            ),
            [run],
        )
        .ctx(&path, &doing)?;
        tx.commit().ctx(&path, doing)
    }

    /// Moves queued run `run` to 1-based place `to` in the queue (past the end: last).
    pub fn move_queued(&mut self, run: i64, to: usize) -> Result<()> {
        let path = self.path.clone();
        let doing = format!("moving queued run {run}");
        let tx = self.write_tx()?;
        let mut ids = order(&tx, &path)?;
        let Some(from) = ids.iter().position(|&id| id == run) else {
            super::check_exists(&tx, &path, "run", run)?;
            return Err(not_queued(run));
        };
        ids.remove(from);
        ids.insert(to.max(1).min(ids.len() + 1) - 1, run);
        for (i, id) in ids.iter().enumerate() {
            tx.execute("UPDATE run_queue SET position = ?2 WHERE run_id = ?1", params![id, super::int(i + 1)])
                .ctx(&path, &doing)?;
        }
        tx.commit().ctx(&path, doing)
    }

    /// The 1-based place of each queued run, by run id.
    pub(super) fn queue_positions(&self) -> Result<std::collections::HashMap<i64, usize>> {
        let ids = order(&self.conn, &self.path)?;
        Ok(ids.into_iter().enumerate().map(|(i, id)| (id, i + 1)).collect())
    }

    /// How many runs are queued.
    pub fn queue_len(&self) -> Result<usize> {
        let n: i64 =
            self.conn.query_row("SELECT COUNT(*) FROM run_queue", [], |r| r.get(0)).ctx(&self.path, "counting the queue")?;
        Ok(uint(n))
    }
}
