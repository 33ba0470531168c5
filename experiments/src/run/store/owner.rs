//! Which process owns a run, and whether it is still there.
//!
//! A run records its process id, host name and a process start marker. On Linux the marker is the boot id plus
//! the process's start time (field 22 of `/proc/<pid>/stat`), so a pid reused by another process, or a machine
//! rebooted since, reads as "gone". Where `/proc` cannot answer (macOS, Windows, another host sharing the
//! folder), a run whose heartbeat is older than [`STALE_HEARTBEAT_S`] counts as gone.

use std::path::Path;
use std::sync::OnceLock;

use rusqlite::params;

use super::{Ctx, Store, NOW};
use crate::Result;

/// Without a usable start marker, a run whose last heartbeat is older than this (seconds) is taken as abandoned.
pub const STALE_HEARTBEAT_S: f64 = 300.0;

/// The identity of a process, as stored with a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: u32,
    pub host: String,
    /// `<boot id>/<starttime>` on Linux; `None` where `/proc` is unavailable.
    pub start: Option<String>,
}

/// What `/proc` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProcState {
    /// `/proc` cannot tell (not Linux, not mounted, not allowed).
    Unknown,
    /// No such process (or a zombie: it has exited).
    Gone,
    /// Running, with this start marker.
    Alive(String),
}

impl Owner {
    /// This process.
    pub fn current() -> &'static Owner {
        static ME: OnceLock<Owner> = OnceLock::new();
        ME.get_or_init(|| {
            let pid = std::process::id();
            let start = match proc_state(Path::new("/proc"), pid) {
                ProcState::Alive(m) => Some(m),
                _ => None,
            };
            Owner { pid, host: hostname(), start }
        })
    }
}

/// This machine's name (empty parts are avoided so that two unknown hosts compare equal but not to a real name).
pub(crate) fn hostname() -> String {
    let from_file = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.trim().is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "unknown-host".into())
}

/// Looks process `pid` up under `proc_root` (normally `/proc`).
pub(crate) fn proc_state(proc_root: &Path, pid: u32) -> ProcState {
    if !proc_root.join("self").join("stat").is_file() {
        return ProcState::Unknown;
    }
    let text = match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return ProcState::Gone,
        Err(_) => return ProcState::Unknown,
    };
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the last ')'.
    let Some(close) = text.rfind(')') else { return ProcState::Unknown };
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
    let (Some(state), Some(starttime)) = (fields.first(), fields.get(19)) else { return ProcState::Unknown };
    if matches!(*state, "Z" | "X" | "x") {
        return ProcState::Gone;
    }
    let boot = std::fs::read_to_string(proc_root.join("sys/kernel/random/boot_id")).unwrap_or_default();
    ProcState::Alive(format!("{}/{}", boot.trim(), starttime))
}

/// A run's recorded owner, with the age of its heartbeat in seconds.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub pid: i64,
    pub host: String,
    pub start: Option<String>,
    pub heartbeat_age_s: f64,
}

/// Why the owner of a run is gone, or `None` if it may still be working on it.
pub(crate) fn owner_gone(rec: &Recorded, my_host: &str, proc_root: &Path) -> Option<String> {
    let by_heartbeat = || {
        (rec.heartbeat_age_s > STALE_HEARTBEAT_S).then(|| {
            format!(
                "interrupted: no sign of life from its process (pid {} on {}) for {:.0} minutes",
                rec.pid,
                rec.host,
                rec.heartbeat_age_s / 60.0
            )
        })
    };
    let Ok(pid) = u32::try_from(rec.pid) else { return by_heartbeat() };
    if rec.host != my_host {
        return by_heartbeat();
    }
    match proc_state(proc_root, pid) {
        ProcState::Gone => {
            Some(format!("interrupted: its process (pid {pid} on {}) ended before the run did", rec.host))
        }
        ProcState::Alive(marker) => match &rec.start {
            Some(s) if *s != marker => Some(format!(
                "interrupted: its process (pid {pid} on {}) ended before the run did (the pid now belongs to another \
                 process)",
                rec.host
            )),
            Some(_) => None,
            None => by_heartbeat(),
        },
        ProcState::Unknown => by_heartbeat(),
    }
}

impl Store {
    /// Marks `queued`/`running` runs whose process is gone as `interrupted` (keeping everything they recorded);
    /// returns their ids and adds them to [`Store::recovered_runs`]. [`Store::open`] calls it; the app may call
    /// it again to refresh.
    pub fn recover_interrupted(&mut self) -> Result<Vec<i64>> {
        self.recover_with(Path::new("/proc"))
    }

    pub(crate) fn recover_with(&mut self, proc_root: &Path) -> Result<Vec<i64>> {
        let path = self.path.clone();
        let my_host = &Owner::current().host;
        let find = |conn: &rusqlite::Connection| -> Result<Vec<(i64, String)>> {
            let mut st = conn
                .prepare(
                    "SELECT id, owner_pid, owner_host, owner_start, \
                            (julianday('now') - julianday(heartbeat_at)) * 86400.0 \
                     FROM runs WHERE status IN ('queued', 'running') ORDER BY id",
                )
                .ctx(&path, "looking for interrupted runs")?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        Recorded {
                            pid: r.get(1)?,
                            host: r.get(2)?,
                            start: r.get(3)?,
                            heartbeat_age_s: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::INFINITY),
                        },
                    ))
                })
                .ctx(&path, "looking for interrupted runs")?;
            let mut gone = Vec::new();
            for r in rows {
                let (id, rec) = r.ctx(&path, "looking for interrupted runs")?;
                if let Some(why) = owner_gone(&rec, my_host, proc_root) {
                    gone.push((id, why));
                }
            }
            Ok(gone)
        };
        // Most opens find nothing: only then take the write lock, and decide again under it.
        if find(&self.conn)?.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.write_tx()?;
        let gone = find(&tx)?;
        for (id, why) in &gone {
            tx.execute(
                &format!(
                    "UPDATE runs SET status = 'interrupted', ended_at = {NOW}, error = COALESCE(error, ?2) \
                     WHERE id = ?1 AND status IN ('queued', 'running')"
                ),
                params![id, why],
            )
            .ctx(&path, format!("marking run {id} interrupted"))?;
        }
        tx.commit().ctx(&path, "marking interrupted runs")?;
        let ids: Vec<i64> = gone.into_iter().map(|(id, _)| id).collect();
        self.recovered.extend_from_slice(&ids);
        Ok(ids)
    }
}
