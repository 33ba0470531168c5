//! A small W3C WebDriver client (the few commands the GUI tests use) and the processes around it: Xvfb, and
//! `tauri-driver`, which starts the real app binary through Debian's `WebKitWebDriver`; or `chromedriver` with a
//! headless Chromium for the page `cliplab serve` serves.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

/// W3C's key for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A program the GUI tests need, from `$VAR`, `~/.cargo/bin` or `PATH`; panics with how to install it.
pub fn require_program(name: &str, var: &str, install: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_file()) {
        return p;
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("HOME").map(|h| vec![PathBuf::from(h).join(".cargo/bin")]).unwrap_or_default();
    dirs.extend(std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("`{name}` is needed for the GUI end-to-end tests: {install} (bash scripts/test.sh installs everything)")
    })
}

/// Kills the child when dropped.
pub struct Guard {
    pub child: Child,
}

/// The processes below `pid` (children first found, grandchildren after), from `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so parse after the last ')'.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|x| x.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((p, ppid));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        out.extend(parent_of.iter().filter(|(_, pp)| *pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    out.remove(0);
    out
}

impl Drop for Guard {
    fn drop(&mut self) {
        // tauri-driver leaves WebKitWebDriver (and the app) running when it is killed: end them one by one.
        for pid in descendants(self.child.id()).into_iter().rev() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).stderr(Stdio::null()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Xvfb on a free display; returns it and its `DISPLAY`.
pub fn start_xvfb() -> (Guard, String) {
    let xvfb = require_program("Xvfb", "XVFB", "apt-get install xvfb");
    for n in 90..140u32 {
        let n = n + (std::process::id() % 50);
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists() {
            continue;
        }
        let child = Command::new(&xvfb)
            .args([format!(":{n}"), "-screen".into(), "0".into(), "1440x960x24".into(), "-nolisten".into(), "tcp".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let guard = Guard { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                return (guard, format!(":{n}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("Xvfb did not start");
}

/// `tauri-driver` listening on a free port, with `env` passed to the app it launches.
pub fn start_tauri_driver(env: &[(&str, &Path)], display: &str, log: &Path) -> (Guard, u16) {
    let driver = require_program("tauri-driver", "TAURI_DRIVER", "cargo install tauri-driver --locked");
    require_program("WebKitWebDriver", "WEBKIT_WEBDRIVER", "apt-get install webkit2gtk-driver");
    let port = free_port();
    let native = free_port();
    let out = std::fs::File::create(log).expect("driver log");
    let mut cmd = Command::new(driver);
    cmd.args(["--port", &port.to_string(), "--native-port", &native.to_string()])
        .env("DISPLAY", display)
        .stdout(out.try_clone().expect("log"))
        .stderr(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let guard = Guard { child: cmd.spawn().expect("start tauri-driver") };
    answering(guard, "tauri-driver", port, log)
}

/// `chromedriver` (Debian's `chromium-driver`) listening on a free port.
pub fn start_chromedriver(log: &Path) -> (Guard, u16) {
    let driver = require_program("chromedriver", "CHROMEDRIVER", "apt-get install chromium chromium-driver");
    let port = free_port();
    let out = std::fs::File::create(log).expect("driver log");
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("start chromedriver");
    answering(Guard { child }, "chromedriver", port, log)
}

/// The driver `name` started as `guard`, once it answers `/status` on `port` (within 30 s; else the test fails
/// with its log).
fn answering(guard: Guard, name: &str, port: u16, log: &Path) -> (Guard, u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if agent().get(&format!("http://127.0.0.1:{port}/status")).call().is_ok() {
            return (guard, port);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    panic!("{name} did not answer on port {port}; log: {}", std::fs::read_to_string(log).unwrap_or_default());
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(180))).build().into()
}

/// One WebDriver session on the app.
pub struct Session {
    base: String,
    agent: ureq::Agent,
    pub shots: PathBuf,
}

/// A WebDriver error (the element is not there yet, a stale reference, ...).
#[derive(Debug)]
pub struct WdError(pub String);

pub type WdResult<T> = Result<T, WdError>;

impl Session {
    /// Starts the app (`application`) through the driver on `port`.
    pub fn start(port: u16, application: &Path, shots: PathBuf) -> Session {
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "wry",
            "tauri:options": { "application": application }
        } } });
        Self::start_with(port, caps, shots)
    }

    /// Starts a headless Chromium (1440×960, as the app's Xvfb screen) through `chromedriver` on `port`.
    pub fn start_chromium(port: u16, shots: PathBuf) -> Session {
        let browser = require_program("chromium", "CHROMIUM", "apt-get install chromium chromium-driver");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,960"]
            }
        } } });
        Self::start_with(port, caps, shots)
    }

    fn start_with(port: u16, caps: Value, shots: PathBuf) -> Session {
        let agent = agent();
        let url = format!("http://127.0.0.1:{port}/session");
        let mut resp = agent.post(&url).send_json(&caps).expect("new session request");
        let v: Value = resp.body_mut().read_json().expect("session json");
        let id = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_string();
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        Session { base: format!("{url}/{id}"), agent, shots }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> WdResult<Value> {
        let url = format!("{}{path}", self.base);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, b) => self.agent.post(&url).send_json(b.unwrap_or_else(|| json!({}))),
        };
        let mut resp = resp.map_err(|e| WdError(format!("{method} {path}: {e}")))?;
        let status = resp.status();
        let v: Value = resp.body_mut().read_json().map_err(|e| WdError(format!("{method} {path}: {e}")))?;
        if !status.is_success() {
            let (error, message) = (v["value"]["error"].as_str().unwrap_or(""), v["value"]["message"].as_str().unwrap_or(""));
            return Err(WdError(format!("{method} {path}: {status} {error}: {message}")));
        }
        Ok(v["value"].clone())
    }

    pub fn find_all(&self, css: &str) -> WdResult<Vec<String>> {
        let v = self.call("POST", "/elements", Some(json!({ "using": "css selector", "value": css })))?;
        Ok(v.as_array().map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_string)).collect()).unwrap_or_default())
    }

    pub fn find(&self, css: &str) -> WdResult<String> {
        self.find_all(css)?.into_iter().next().ok_or_else(|| WdError(format!("no element `{css}`")))
    }

    /// Runs JavaScript in the page and returns its result.
    pub fn js(&self, script: &str, args: Value) -> WdResult<Value> {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// `textContent` of the first element matching `css` (also for hidden elements).
    pub fn text(&self, css: &str) -> WdResult<String> {
        let v = self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([css]))?;
        v.as_str().map(str::to_string).ok_or_else(|| WdError(format!("no element `{css}`")))
    }

    pub fn count(&self, css: &str) -> WdResult<usize> {
        let v = self.js("return document.querySelectorAll(arguments[0]).length;", json!([css]))?;
        Ok(v.as_u64().unwrap_or(0) as usize)
    }

    pub fn click(&self, css: &str) -> WdResult<()> {
        let el = self.find(css)?;
        // Scrolled into view first: WebKit refuses clicks on elements outside the viewport.
        self.js("arguments[0].scrollIntoView({block: 'center'});", json!([{ ELEMENT: el }]))?;
        self.call("POST", &format!("/element/{el}/click"), Some(json!({}))).map(|_| ())
    }

    /// Replaces an input's value by typing, as a user would (fires input/change).
    pub fn type_into(&self, css: &str, text: &str) -> WdResult<()> {
        let el = self.find(css)?;
        self.call("POST", &format!("/element/{el}/clear"), Some(json!({})))?;
        self.call("POST", &format!("/element/{el}/value"), Some(json!({ "text": text })))?;
        // WebKit's clear/value fire `input`; `change` follows a blur.
        self.js("arguments[0].dispatchEvent(new Event('change', {bubbles: true}));", json!([{ ELEMENT: el }]))?;
        Ok(())
    }

    /// Sets a `<select>` (or checkbox) and fires `change`.
    pub fn select(&self, css: &str, value: &str) -> WdResult<()> {
        let v = self.js(
            "const e = document.querySelector(arguments[0]); if (!e) return false; \
             if (e.type === 'checkbox') e.checked = arguments[1] === 'true'; else e.value = arguments[1]; \
             e.dispatchEvent(new Event('change', {bubbles: true})); return true;",
            json!([css, value]),
        )?;
        if v.as_bool() == Some(true) { Ok(()) } else { Err(WdError(format!("no element `{css}`"))) }
    }

    /// Loads `url` in the browser.
    pub fn navigate(&self, url: &str) -> WdResult<()> {
        self.call("POST", "/url", Some(json!({ "url": url }))).map(|_| ())
    }

    pub fn go(&self, hash: &str) -> WdResult<()> {
        self.js("location.hash = arguments[0];", json!([hash])).map(|_| ())
    }

    /// Saves a screenshot as `<shots>/<name>.png` (once the images in view have loaded) and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let pending = self.js(
                "return [...document.images].filter(i => { const r = i.getBoundingClientRect(); \
                 return r.bottom > 0 && r.top < innerHeight && !(i.complete && i.naturalWidth > 0) && !i.classList.contains('broken'); }).length;",
                json!([]),
            );
            if pending.ok().and_then(|v| v.as_u64()) == Some(0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Decoded is not yet painted.
        std::thread::sleep(Duration::from_millis(400));
        let path = self.shots.join(format!("{name}.png"));
        match self.call("GET", "/screenshot", None) {
            Ok(v) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).unwrap_or_default();
                if let Err(e) = std::fs::write(&path, bytes) {
                    eprintln!("screenshot {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("screenshot {name}: {}", e.0),
        }
        path
    }

    /// Polls `f` until it gives `Some` (or `timeout` passes: then a screenshot and the page text go into the
    /// panic message).
    pub fn wait<T>(&self, what: &str, timeout: Duration, mut f: impl FnMut(&Session) -> WdResult<Option<T>>) -> T {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            match f(self) {
                Ok(Some(v)) => return v,
                Ok(None) => {}
                Err(e) => last = e.0,
            }
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("failed-{}", what.replace(|c: char| !c.is_alphanumeric(), "-")));
                let page = self.text("body").unwrap_or_default();
                panic!("timed out waiting for {what} (last error: {last}); screenshot {}; page text:\n{page}", shot.display());
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Waits until `css` exists and returns its text.
    pub fn wait_text(&self, css: &str, timeout: Duration) -> String {
        self.wait(css, timeout, |s| Ok(s.text(css).ok()))
    }

    pub fn close(self) {
        let _ = self.call("DELETE", "", None);
    }
}
