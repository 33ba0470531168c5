//! A small Hugging Face hub on 127.0.0.1 for the hub tests: the three requests `hf-hub` 0.4 makes (the listing
//! `GET /api/models/REPO/revision/REV`, the probe `GET /REPO/resolve/REV/FILE` with `Range: bytes=0-0` answered 206
//! with `ETag`, `X-Repo-Commit` and `Content-Range`, the download with `Range: bytes=N-`), no Xet header. It serves
//! in-memory repositories and can break: cut a download half-way once, or serve other bytes than it lists (another
//! hash, or fewer bytes). Shared with the app crate's tests, which use a part.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// One file of a repository, and whether the listing marks it as an LFS file (with its SHA-256).
#[derive(Clone)]
pub struct RepoFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub lfs: bool,
}

/// What the hub does wrong, on purpose.
#[derive(Default, Clone)]
pub struct Faults {
    /// The first full download of this file stops after half its bytes (the headers promised them all).
    pub cut_once: Option<String>,
    /// This file's body is other bytes than the listing's (same size, another hash).
    pub corrupt: Option<String>,
    /// This file is served whole but shorter than the listing says (its last 10 bytes left out, the headers
    /// consistent with the shorter body).
    pub short: Option<String>,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, (String, Vec<RepoFile>)>,
    faults: Faults,
    cut_done: bool,
    /// Every request: `GET /path` plus its `Range` header when it had one.
    log: Vec<String>,
}

/// The running hub; it serves until the test process ends.
pub struct FakeHub {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

impl FakeHub {
    pub fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FakeHub { endpoint, state }
    }

    /// Adds a repository (`owner/name`) at [`COMMIT`], answering for revision `main` and the commit.
    pub fn add_repo(&self, repo: &str, files: Vec<RepoFile>) {
        self.state.lock().expect("state").repos.insert(repo.to_string(), (COMMIT.to_string(), files));
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut s = self.state.lock().expect("state");
        s.faults = faults;
        s.cut_done = false;
    }

    /// The requests so far.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().expect("state").log.clone()
    }
}

/// The files of a model folder, the large ones marked LFS as on the hub.
pub fn repo_files(dir: &std::path::Path, names: &[&str]) -> Vec<RepoFile> {
    names
        .iter()
        .map(|n| RepoFile {
            name: n.to_string(),
            bytes: std::fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}")),
            lfs: n.ends_with(".safetensors") || n.ends_with(".bin"),
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Request {
    path: String,
    range: Option<String>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    Some(Request { path, range })
}

fn respond(mut stream: TcpStream, status: &str, headers: &[(&str, String)], body: &[u8], send: usize) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // A client that hung up is no concern of the fake hub's.
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body[..send.min(body.len())]);
    let _ = stream.flush();
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let Some(req) = read_request(&stream) else { return };
    let mut s = state.lock().expect("state");
    s.log.push(match &req.range {
        Some(r) => format!("GET {} [{r}]", req.path),
        None => format!("GET {}", req.path),
    });
    let path = req.path.split('?').next().unwrap_or_default().to_string();
    if let Some(rest) = path.strip_prefix("/api/models/") {
        // owner/name/revision/REV
        let parts: Vec<&str> = rest.split('/').collect();
        let repo = parts.get(..2).map(|p| p.join("/")).unwrap_or_default();
        let entry = s.repos.get(&repo).cloned();
        let Some((commit, files)) = entry else {
            drop(s);
            return respond(stream, "404 Not Found", &[], br#"{"error":"Repository not found"}"#, usize::MAX);
        };
        let siblings: Vec<serde_json::Value> = files
            .iter()
            .map(|f| {
                let mut v = serde_json::json!({ "rfilename": f.name, "size": f.bytes.len() });
                if f.lfs {
                    v["lfs"] = serde_json::json!({ "sha256": sha256(&f.bytes), "size": f.bytes.len() });
                }
                v
            })
            .collect();
        let body = serde_json::json!({ "id": repo, "sha": commit, "siblings": siblings }).to_string();
        drop(s);
        return respond(stream, "200 OK", &[("Content-Type", "application/json".into())], body.as_bytes(), usize::MAX);
    }
    // /owner/name/resolve/REV/FILE
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let (repo, file) = match parts.as_slice() {
        [owner, name, "resolve", _rev, file] => (format!("{owner}/{name}"), file.to_string()),
        _ => {
            drop(s);
            return respond(stream, "404 Not Found", &[], b"no such path", usize::MAX);
        }
    };
    let found = s.repos.get(&repo).and_then(|(c, files)| files.iter().find(|f| f.name == file).map(|f| (c.clone(), f.clone())));
    let Some((commit, f)) = found else {
        drop(s);
        return respond(stream, "404 Not Found", &[("X-Error-Code", "EntryNotFound".into())], b"not found", usize::MAX);
    };
    let mut bytes = f.bytes.clone();
    if s.faults.corrupt.as_deref() == Some(file.as_str()) {
        for b in bytes.iter_mut().skip(100).take(16) {
            *b ^= 0xff;
        }
    }
    if s.faults.short.as_deref() == Some(file.as_str()) {
        bytes.truncate(bytes.len().saturating_sub(10));
    }
    let total = bytes.len();
    let start: usize = req
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let probe = req.range.as_deref() == Some("bytes=0-0");
    let body: Vec<u8> = if probe { bytes[..1.min(total)].to_vec() } else { bytes[start.min(total)..].to_vec() };
    let mut send = body.len();
    if !probe && start == 0 && s.faults.cut_once.as_deref() == Some(file.as_str()) && !s.cut_done {
        s.cut_done = true;
        send = body.len() / 2;
    }
    drop(s);
    let end = if probe { 0 } else { total.saturating_sub(1) };
    let headers = [
        ("ETag", format!("\"{}\"", sha256(&f.bytes))),
        ("X-Repo-Commit", commit),
        ("Content-Range", format!("bytes {start}-{end}/{total}")),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    let status = if req.range.is_some() { "206 Partial Content" } else { "200 OK" };
    respond(stream, status, &headers, &body, send);
}
