//! Which process owns a run, and whether it is still there.
//!
//! The process that creates a run holds an OS lock on `locks/run-<id>.lock` in the CLIP Lab home (`flock` on
//! Unix, `LockFileEx` on Windows, through `std::fs::File::try_lock`) until the run ends. The kernel drops the lock
//! when the process dies however it dies (`kill -9`, a crash, a power cut), so "the lock is free" means "the owner
//! is gone" with no guessing, also for a process in another pid namespace on the same host (Flatpak, Docker),
//! whose pid means nothing here.
//!
//! Runs without a lock file (recorded by older versions, or the file was deleted) fall back to what the run
//! recorded: its process id, host name and a start marker. On Linux the marker is the boot id plus the process's
//! start time (field 22 of `/proc/<pid>/stat`), so a pid reused by another process, or a machine rebooted since,
//! reads as "gone". Where `/proc` cannot answer (macOS, Windows, another host sharing the folder), a run whose
//! heartbeat is older than [`STALE_HEARTBEAT_S`] counts as gone.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rusqlite::params;

use super::{Ctx, Store, NOW};
use crate::{Error, Result};

/// Folder of the run lock files, inside the CLIP Lab home.
pub const LOCKS_DIR: &str = "locks";

/// The lock file of run `run` in the store whose database is `db`.
pub(crate) fn lock_path(db: &Path, run: i64) -> PathBuf {
    db.parent().unwrap_or(Path::new(".")).join(LOCKS_DIR).join(format!("run-{run}.lock"))
}

/// The run locks this process holds: lock file → its open handle (dropping the handle releases the lock).
/// Process-wide, not per [`Store`] handle: the desktop app creates a run with one handle and fills it with
/// another.
fn held() -> std::sync::MutexGuard<'static, BTreeMap<PathBuf, File>> {
    static HELD: OnceLock<Mutex<BTreeMap<PathBuf, File>>> = OnceLock::new();
    // A panic while the map was locked cannot leave it half-updated (single inserts and removes).
    HELD.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the lock of a new run for this process. Fails if another process holds it (a leftover of a store that
/// was replaced while one of its runs was still going).
pub(crate) fn hold_lock(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| Error::io(path, e))?;
    match file.try_lock() {
        Ok(()) => {
            held().insert(path.to_path_buf(), file);
            Ok(())
        }
        Err(TryLockError::WouldBlock) => Err(Error::Invalid(format!(
            "{}: held by another running process; is another CLIP Lab using a store that was replaced?",
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// Releases a run's lock and removes its file, if this process holds it (a run ended).
pub(crate) fn release_lock(path: &Path) {
    if let Some(file) = held().remove(path) {
        // Removed while still locked, so nobody can find it free in between.
        remove_lock_file(path);
        drop(file);
    }
}

/// Removes a lock file. Best effort: a file that cannot be removed is harmless (a free lock reads as "owner
/// gone", which is then true).
pub(crate) fn remove_lock_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove the run lock {}: {e}", path.display());
        }
    }
}

/// What a run's lock file says about its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LockState {
    /// Some process holds it: the owner is alive.
    Held,
    /// Nobody holds it: the owner is gone.
    Free,
    /// No lock file (an older version's run): ask `/proc` and the heartbeat.
    Missing,
}

/// Probes a run's lock without keeping it.
pub(crate) fn lock_state(path: &Path) -> LockState {
    let file = match OpenOptions::new().read(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return LockState::Missing,
        Err(e) => {
            tracing::warn!("cannot open the run lock {}: {e}; using the recorded process id", path.display());
            return LockState::Missing;
        }
    };
    // Ours (no need to ask the OS; on Windows a second handle of this process could not tell).
    if held().contains_key(path) {
        return LockState::Held;
    }
    match file.try_lock() {
        // Dropping `file` releases it again.
        Ok(()) => LockState::Free,
        Err(TryLockError::WouldBlock) => LockState::Held,
        Err(TryLockError::Error(e)) => {
            tracing::warn!("cannot probe the run lock {}: {e}; using the recorded process id", path.display());
            LockState::Missing
        }
    }
}

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

/// Why the owner of a run is gone, or `None` if it may still be working on it: the lock decides when there is
/// one, else the recorded process.
pub(crate) fn owner_gone(rec: &Recorded, lock: LockState, my_host: &str, proc_root: &Path) -> Option<String> {
    match lock {
        LockState::Held => return None,
        LockState::Free => {
            return Some(format!("interrupted: its process (pid {} on {}) ended before the run did", rec.pid, rec.host))
        }
        LockState::Missing => {}
    }
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
    /// Marks `queued`/`running` runs whose process is gone as `interrupted` (keeping everything they recorded;
    /// runs waiting in the queue have no process and are left alone);
    /// returns their ids and adds them to [`Store::recovered_runs`]. [`Store::open`] calls it; the app may call
    /// it again to refresh.
    pub fn recover_interrupted(&mut self) -> Result<Vec<i64>> {
        self.recover_with(Path::new("/proc"))
    }

    pub(crate) fn recover_with(&mut self, proc_root: &Path) -> Result<Vec<i64>> {
        let path = self.path.clone();
        let my_host = &Owner::current().host;
        let db = path.clone();
        let find = |conn: &rusqlite::Connection| -> Result<Vec<(i64, String)>> {
            let mut st = conn
                .prepare(
                    "SELECT id, owner_pid, owner_host, owner_start, \
                            (julianday('now') - julianday(heartbeat_at)) * 86400.0 \
                     FROM runs WHERE status IN ('queued', 'running') \
                       AND id NOT IN (SELECT run_id FROM run_queue) \
                       AND id NOT IN (SELECT run_id FROM pulled_runs) ORDER BY id",
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
                if let Some(why) = owner_gone(&rec, lock_state(&lock_path(&db, id)), my_host, proc_root) {
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
        for id in &ids {
            remove_lock_file(&lock_path(&path, *id));
        }
        self.recovered.extend_from_slice(&ids);
        Ok(ids)
    }
}
