//! Writing files and folders that a later step trusts: to a temporary name in the destination's own folder,
//! flushed to disk (fsync), then renamed into place. A reader (or a later run after a crash) sees the old file or
//! the whole new one, never half of one. Temporary names come from `tempfile`, so they are unique per write, and
//! what is written gets the user's normal mode (`0666 & !umask` for files, `0777 & !umask` for folders), not the
//! owner-only mode of a temporary file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::{Builder, NamedTempFile, TempDir};

use crate::{Error, Result};

/// The folder `path` lives in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Makes a hidden temporary name beside `path` (`.<name>.<random>.partial`) through `make`, with the normal mode
/// `mode` (filtered by the umask when the file or folder is created).
fn with_builder<T>(
    path: &Path,
    #[cfg_attr(not(unix), allow(unused_variables))] mode: u32,
    make: impl FnOnce(&Builder<'_, '_>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let prefix = format!(".{name}.");
    let mut b = Builder::new();
    b.prefix(&prefix).suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    make(&b)
}

/// A fresh temporary file beside `path`, with the user's normal file mode.
fn temp_file_for(path: &Path) -> Result<NamedTempFile> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    with_builder(path, 0o666, |b| b.tempfile_in(dir)).map_err(|e| Error::io(dir, e))
}

/// Flushes the temporary file to disk and renames it to `path` (replacing what was there).
fn publish(tmp: NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically (temporary name, fsync, rename).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_with(path, |f| f.write_all(bytes).map_err(|e| Error::io(path, e)))
}

/// Writes `path` atomically through `write`, which gets the temporary file to write into. If `write` fails,
/// nothing is left behind and `path` is untouched.
pub fn write_file_with(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let mut tmp = temp_file_for(path)?;
    write(tmp.as_file_mut())?;
    publish(tmp, path)
}

/// Writes `path` atomically through a library that wants a path to write to (`write` gets the temporary name and
/// may replace the file there; its mode is set back to the user's normal one before the rename).
pub fn write_file_at(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_file_for(path)?;
    let mode = tmp.as_file().metadata().map_err(|e| Error::io(tmp.path(), e))?.permissions();
    let tmp_path = tmp.into_temp_path();
    write(&tmp_path)?;
    std::fs::set_permissions(&tmp_path, mode).map_err(|e| Error::io(&tmp_path, e))?;
    File::open(&tmp_path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&tmp_path, e))?;
    tmp_path.persist(path).map_err(|e| Error::io(path, e.error))
}

/// A fresh, empty temporary folder beside `out` (hidden, unique name, the user's normal folder mode), to fill and
/// then move into place with [`publish_dir`]. Dropped without publishing, it is removed with what it holds.
pub fn temp_dir_for(out: &Path) -> Result<TempDir> {
    let parent = parent_of(out);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    with_builder(out, 0o777, |b| b.tempdir_in(parent)).map_err(|e| Error::io(parent, e))
}

/// Moves the filled folder `tmp` to `out`, which must not exist or be an empty folder (then it is replaced). The
/// files in it are flushed to disk first, so the folder is whole once it has its name.
pub fn publish_dir(tmp: TempDir, out: &Path) -> Result<PathBuf> {
    for entry in std::fs::read_dir(tmp.path()).map_err(|e| Error::io(tmp.path(), e))? {
        let path = entry.map_err(|e| Error::io(tmp.path(), e))?.path();
        if path.is_file() {
            File::open(&path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&path, e))?;
        }
    }
    if out.exists() {
        if !is_empty_dir(out) {
            return Err(Error::Invalid(format!("{}: already exists and is not empty", out.display())));
        }
        std::fs::remove_dir(out).map_err(|e| Error::io(out, e))?;
    }
    let tmp = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp, out) {
        // Best effort: the rename's error is the one to report; the hidden folder would otherwise stay.
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::io(out, e));
    }
    Ok(out.to_path_buf())
}

/// The file an export folder made by [`publish_export`] lists its files in.
pub const EXPORT_MANIFEST: &str = ".cliplab-export.json";

/// Publishes the filled folder `tmp` as the export folder `out`: `out` may be missing, empty, or an earlier
/// export made by this function (it holds [`EXPORT_MANIFEST`] and only the files that lists), which is replaced
/// whole. A folder with any file this function did not write is refused, naming that file: an export never
/// overwrites a user's file. Returns the paths of the published files.
pub fn publish_export(tmp: TempDir, out: &Path) -> Result<Vec<PathBuf>> {
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(tmp.path()).map_err(|e| Error::io(tmp.path(), e))? {
        names.push(entry.map_err(|e| Error::io(tmp.path(), e))?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    write_file(&tmp.path().join(EXPORT_MANIFEST), serde_json::to_string(&names)?.as_bytes())?;
    let files = names.iter().map(|n| out.join(n)).collect();
    if !out.exists() || is_empty_dir(out) {
        publish_dir(tmp, out)?;
        return Ok(files);
    }
    check_own_export(out)?;
    // Swap: the earlier export moves aside (a unique hidden name), the new one takes its name, the old one goes.
    let old = temp_dir_for(out)?;
    let old_path = old.path().to_path_buf();
    std::fs::remove_dir(&old_path).map_err(|e| Error::io(&old_path, e))?;
    std::fs::rename(out, &old_path).map_err(|e| Error::io(out, e))?;
    if let Err(e) = publish_dir(tmp, out) {
        // Best effort: put the earlier export back; the publish error is the one to report.
        let _ = std::fs::rename(&old_path, out);
        return Err(e);
    }
    std::fs::remove_dir_all(&old_path).map_err(|e| Error::io(&old_path, e))?;
    Ok(files)
}

/// Fails unless every entry of the non-empty folder `out` is listed in its [`EXPORT_MANIFEST`].
fn check_own_export(out: &Path) -> Result<()> {
    let manifest = out.join(EXPORT_MANIFEST);
    let listed: Vec<String> = match std::fs::read(&manifest) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::bad_file(&manifest, format!("not JSON: {e}")))?,
        Err(_) => Vec::new(),
    };
    let mut entries: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(out).map_err(|e| Error::io(out, e))? {
        entries.push(entry.map_err(|e| Error::io(out, e))?.file_name().to_string_lossy().into_owned());
    }
    entries.sort();
    if let Some(foreign) = entries.iter().find(|n| *n != EXPORT_MANIFEST && !listed.contains(n)) {
        return Err(Error::Invalid(format!(
            "{}: not written by CLIP Lab; refusing to export into {} (choose a new or empty folder)",
            out.join(foreign).display(),
            out.display()
        )));
    }
    Ok(())
}

/// Whether `dir` is a folder with nothing in it (false when it cannot be read).
pub fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// A size in decimal units with one decimal, for messages: `"812 B"`, `"1.5 kB"`, `"12.3 MB"`.
pub fn human_bytes(n: u64) -> String {
    let v = n as f64;
    if v >= 1e12 {
        format!("{:.1} TB", v / 1e12)
    } else if v >= 1e9 {
        format!("{:.1} GB", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1} MB", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} kB", v / 1e3)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mode a plain `File::create` gives here (`0666 & !umask`): what every export must get.
    #[cfg(unix)]
    fn normal_mode(dir: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        let probe = dir.join("probe");
        std::fs::write(&probe, b"x").expect("probe");
        let mode = std::fs::metadata(&probe).expect("meta").permissions().mode() & 0o777;
        std::fs::remove_file(&probe).expect("rm probe");
        mode
    }

    #[test]
    fn writes_replace_whole_files_and_leave_no_temporary_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.txt");
        write_file(&p, b"one").expect("write");
        write_file(&p, b"two").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        let failed = write_file_with(&p, |f| {
            f.write_all(b"half").map_err(|e| Error::io("x", e))?;
            Err(Error::Invalid("disk full".into()))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&p).expect("read"), b"two", "a failed write leaves the old file");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }

    #[cfg(unix)]
    #[test]
    fn written_files_and_folders_get_the_users_normal_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let want = normal_mode(dir.path());
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let a = dir.path().join("a.bin");
        write_file(&a, b"x").expect("write");
        assert_eq!(mode(&a), want);
        let b = dir.path().join("b.bin");
        // A library that writes through its own owner-only temporary file, as safetensors does.
        write_file_at(&b, |p| {
            std::fs::write(p, b"y").map_err(|e| Error::io(p, e))?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).map_err(|e| Error::io(p, e))
        })
        .expect("write at");
        assert_eq!(mode(&b), want);
        let out = dir.path().join("folder");
        let tmp = temp_dir_for(&out).expect("tmp dir");
        write_file(&tmp.path().join("f"), b"z").expect("write in");
        publish_dir(tmp, &out).expect("publish");
        let probe = dir.path().join("probe-dir");
        std::fs::create_dir(&probe).expect("mkdir");
        assert_eq!(mode(&out), mode(&probe), "folders: 0777 & !umask, as `create_dir` makes them");
        assert_eq!(mode(&out.join("f")), want);
    }

    #[test]
    fn an_export_replaces_its_own_earlier_export_and_refuses_a_users_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("charts");
        let export = |content: &[u8]| {
            let tmp = temp_dir_for(&out).expect("tmp");
            write_file(&tmp.path().join("samples.csv"), content).expect("csv");
            publish_export(tmp, &out)
        };
        assert_eq!(export(b"1").expect("first"), vec![out.join("samples.csv")]);
        export(b"2").expect("again, over its own export");
        assert_eq!(std::fs::read(out.join("samples.csv")).expect("read"), b"2");
        std::fs::write(out.join("notes.txt"), b"mine").expect("user file");
        let e = export(b"3").expect_err("a user's file is there").to_string();
        assert!(e.contains("notes.txt") && e.contains("not written by CLIP Lab"), "{e}");
        assert_eq!(std::fs::read(out.join("samples.csv")).expect("read"), b"2");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no temporary folder left");
    }

    #[test]
    fn a_folder_is_never_published_over_a_non_empty_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("mkdir");
        std::fs::write(out.join("mine.txt"), b"user's").expect("write");
        let tmp = temp_dir_for(&out).expect("tmp");
        let e = publish_dir(tmp, &out).expect_err("not empty");
        assert!(e.to_string().contains("not empty"), "{e}");
        assert_eq!(std::fs::read(out.join("mine.txt")).expect("read"), b"user's");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "the temporary folder is gone");
    }
}
