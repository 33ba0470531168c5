//! `cliplab serve` over real HTTP on 127.0.0.1 against a temporary home: the token on every route, the cookie,
//! the CSP, commands round trip, events to several tabs, file prompts held to the allowed folders, shutdown.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cliplab_serve::{start, Config, Running};
use experiments::run::store::{RunStatus, Store};
use serde_json::{json, Value};

struct Server {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    /// An `--allow-dir` folder.
    allowed: PathBuf,
    /// A folder the server was not allowed.
    outside: PathBuf,
    running: Option<Running>,
}

impl Server {
    fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("home");
        let allowed = tmp.path().join("allowed");
        let outside = tmp.path().join("outside");
        for d in [&allowed, &outside] {
            std::fs::create_dir_all(d).expect("dir");
        }
        let config = Config {
            home: home.clone(),
            bind: "127.0.0.1:0".parse().expect("address"),
            allow_dirs: vec![allowed.clone()],
            expose: false,
        };
        let running = start(config).expect("server starts");
        Server { _tmp: tmp, home, allowed, outside, running: Some(running) }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running().addr)
    }

    fn token(&self) -> String {
        self.running().token().to_string()
    }

    /// `POST /api/<name>` with the token; (status, JSON body).
    fn call_raw(&self, name: &str, args: Value, tab: Option<&str>) -> (u16, Value) {
        let mut req = agent().post(&self.url(&format!("/api/{name}"))).header("Authorization", &format!("Bearer {}", self.token()));
        if let Some(tab) = tab {
            req = req.header(cliplab_serve::TAB_HEADER, tab);
        }
        let mut resp = req.send_json(&args).expect("request");
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().expect("body");
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    /// A command that must succeed.
    fn call(&self, name: &str, args: Value) -> Value {
        let (status, body) = self.call_raw(name, args, None);
        assert_eq!(status, 200, "{name}: {body}");
        body
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// An HTTP client that returns error statuses and redirects as they are.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

fn status_of(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> u16 {
    result.expect("request").status().as_u16()
}

/// One server-sent event stream, read on a thread: (event name, data) as they come; `None` once it ended.
struct Tab {
    rx: mpsc::Receiver<Option<(String, String)>>,
}

impl Tab {
    fn open(server: &Server, tab: &str) -> Tab {
        let resp = agent()
            .get(&server.url(&format!("/api/events?tab={tab}")))
            .header("Authorization", &format!("Bearer {}", server.token()))
            .call()
            .expect("event stream");
        assert_eq!(resp.status().as_u16(), 200);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let reader = BufReader::new(resp.into_body().into_reader());
            let (mut event, mut data) = (String::new(), String::new());
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                } else if line.is_empty()
                    && !data.is_empty()
                    && tx.send(Some((std::mem::take(&mut event), std::mem::take(&mut data)))).is_err()
                {
                    return;
                }
            }
            // The test may have stopped listening: nothing to tell.
            let _ = tx.send(None);
        });
        Tab { rx }
    }

    /// The next event named `name` within `patience` (others are skipped and returned too).
    fn until(&self, patience: Duration, mut done: impl FnMut(&str, &Value) -> bool) -> Vec<(String, Value)> {
        let deadline = Instant::now() + patience;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Some((event, data))) => {
                    let value: Value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    let stop = done(&event, &value);
                    seen.push((event, value));
                    if stop {
                        return seen;
                    }
                }
                Ok(None) => panic!("the event stream ended; seen: {seen:?}"),
                Err(_) => panic!("no awaited event within {patience:?}; seen: {seen:?}"),
            }
        }
    }

    /// True when the stream ends within `patience`.
    fn ends_within(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        loop {
            match self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Some(_)) => continue,
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// Imports the demo data through the commands; the dataset's JSON.
fn import_demo(s: &Server, images: usize) -> Value {
    let draft = s.call("demo_import", json!({ "images": images }));
    let token = draft["token"].clone();
    let preview = s.call("preview_import", json!({ "token": token, "name": draft["name"], "columns": draft["columns"] }));
    assert_eq!(preview["importable"], true, "{preview}");
    assert_eq!(preview["report"]["valid_rows"], images, "{preview}");
    s.call("confirm_import", json!({ "token": token, "skipBadRows": false }))
}

/// A tiny CPU experiment on dataset `dataset`: its id.
fn tiny_experiment(s: &Server, name: &str, epochs: usize) -> i64 {
    let mut spec = s.call("default_spec", json!({}));
    spec["name"] = json!(name);
    spec["sample"]["train"] = json!(40);
    spec["sample"]["heldout"] = json!(12);
    spec["train"]["epochs"] = json!(epochs);
    spec["train"]["batch_size"] = json!(8);
    spec["train"]["eval_batch_size"] = json!(32);
    spec["device"] = json!("cpu");
    let exp = s.call("create_experiment", json!({ "spec": spec }));
    exp["id"].as_i64().expect("experiment id")
}

#[test]
fn every_route_needs_this_servers_token() {
    let s = Server::start();
    let other = Server::start();
    let mut routes: Vec<(&str, String)> = vec![
        ("GET", "/".into()),
        ("GET", "/index.html".into()),
        ("GET", "/no/such/page".into()),
        ("GET", "/api/events".into()),
        ("GET", "/image/1?size=64".into()),
        ("POST", "/api/pick/1".into()),
        ("POST", "/api/no_such_command".into()),
        ("GET", "/api/list_runs".into()),
    ];
    routes.extend(cliplab_serve::commands::NAMES.iter().map(|n| ("POST", format!("/api/{n}"))));
    assert!(routes.len() > 20, "every command is a route");
    let foreign = other.token();
    for (method, path) in &routes {
        let url = s.url(path);
        let send = |req: ureq::RequestBuilder<ureq::typestate::WithoutBody>| req.call();
        let send_post = |req: ureq::RequestBuilder<ureq::typestate::WithBody>| req.send_json(json!({}));
        let (none, bearer, cookie, query) = if *method == "GET" {
            (
                status_of(send(agent().get(&url))),
                status_of(send(agent().get(&url).header("Authorization", &format!("Bearer {foreign}")))),
                status_of(send(agent().get(&url).header("Cookie", &format!("cliplab-token-{}={foreign}", s.running().addr.port())))),
                status_of(send(agent().get(&format!("{url}{}token={foreign}", if url.contains('?') { '&' } else { '?' })))),
            )
        } else {
            (
                status_of(send_post(agent().post(&url))),
                status_of(send_post(agent().post(&url).header("Authorization", &format!("Bearer {foreign}")))),
                status_of(send_post(agent().post(&url).header("Cookie", &format!("cliplab-token-{}={foreign}", s.running().addr.port())))),
                status_of(send_post(agent().post(&format!("{url}?token={foreign}")))),
            )
        };
        assert_eq!((none, bearer, cookie, query), (401, 401, 401, 401), "{method} {path}: no token, another server's token");
    }
    // And the right token opens them (the page, a command).
    let ok = agent().get(&s.url("/")).header("Authorization", &format!("Bearer {}", s.token())).call().expect("page");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(s.call("list_datasets", json!({})), json!([]));
}

#[test]
fn the_start_url_leaves_a_strict_cookie_and_the_page_has_the_apps_csp() {
    let s = Server::start();
    let start = agent().get(&s.running().url()).call().expect("start URL");
    assert_eq!(start.status().as_u16(), 303, "the token leaves the address bar");
    assert_eq!(start.headers().get("location").and_then(|v| v.to_str().ok()), Some("/"));
    let cookie = start.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a cookie").to_string();
    let port = s.running().addr.port();
    assert!(cookie.starts_with(&format!("cliplab-token-{port}={};", s.token())), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let pair = cookie.split(';').next().expect("name=value");
    let mut page = agent().get(&s.url("/")).header("Cookie", pair).call().expect("page");
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).expect("CSP").to_string();
    assert_eq!(page.headers().get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"));
    let html = page.body_mut().read_to_string().expect("html");
    assert!(html.contains("<div id=\"view\""), "the app's page");
    // The desktop app's CSP, directive by directive: its Tauri-only sources read as this server.
    let conf: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src-tauri/tauri.conf.json")).expect("conf"),
    )
    .expect("json");
    let served: Vec<&str> = csp.split(';').map(str::trim).collect();
    for (name, sources) in conf["app"]["security"]["csp"].as_object().expect("csp") {
        let line = served.iter().find(|d| d.split_whitespace().next() == Some(name.as_str())).unwrap_or_else(|| panic!("{name} missing: {csp}"));
        for src in sources.as_str().expect("sources").split_whitespace() {
            let want = if src == "ipc:" || src == "cliplab:" || src.ends_with(".localhost") { "'self'" } else { src };
            assert!(line.split_whitespace().any(|x| x == want), "{name} lacks {want}: {line}");
        }
        assert!(!line.contains("ipc:") && !line.contains("localhost"), "{line}");
    }
    assert!(served.contains(&"script-src 'self'"), "{csp}");
    assert!(served.contains(&"connect-src 'self'"), "{csp}");
    assert!(served.contains(&"frame-ancestors 'none'"), "{csp}");
}

#[test]
fn a_non_loopback_address_needs_expose() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = Config { home: tmp.path().join("home"), bind: "0.0.0.0:0".parse().expect("addr"), allow_dirs: vec![], expose: false };
    let err = start(config).err().expect("refused");
    assert!(err.to_string().contains("--expose"), "{err}");
    assert!(cliplab_serve::exposure("0.0.0.0:8765".parse().expect("addr"), &[tmp.path().to_path_buf()]).contains("ANYONE"));
}

#[test]
fn commands_round_trip_over_http_against_the_store() {
    let s = Server::start();
    let ds = import_demo(&s, 60);
    let listed = s.call("list_datasets", json!({}));
    let stored = Store::open(&s.home).expect("store").datasets().expect("datasets");
    assert_eq!(listed, serde_json::to_value(&stored).expect("json"), "the page gets what the store holds");
    assert_eq!(listed[0]["name"], ds["name"]);
    let page = s.call("dataset_samples", json!({ "datasetId": ds["id"], "query": { "text": "", "label": null, "offset": 50, "limit": 25 } }));
    assert_eq!(page["total"], 60);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(10));
    // Errors come back as the command's message, with a status.
    let (status, body) = s.call_raw("dataset_samples", json!({ "datasetId": "seven" }), None);
    assert_eq!(status, 400, "{body}");
    assert!(body.as_str().is_some_and(|m| m.starts_with("dataset_samples: bad arguments")), "{body}");
    let (status, body) = s.call_raw("run_view", json!({ "runId": 999 }), None);
    assert_eq!(status, 422, "{body}");
    assert!(body.as_str().is_some_and(|m| m.contains("999")), "{body}");
    let (status, _) = s.call_raw("no_such_command", json!({}), None);
    assert_eq!(status, 404);
    // A thumbnail of a stored image, over HTTP.
    let image_id = Store::open(&s.home).expect("store").dataset_samples(ds["id"].as_i64().expect("id")).expect("samples")[0].image_id;
    let mut thumb = agent()
        .get(&s.url(&format!("/image/{image_id}?size=64")))
        .header("Authorization", &format!("Bearer {}", s.token()))
        .call()
        .expect("thumbnail");
    assert_eq!(thumb.status().as_u16(), 200);
    let bytes = thumb.body_mut().read_to_vec().expect("jpeg");
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
}

#[test]
fn run_events_reach_every_tab_and_a_closed_tab_cancels_nothing() {
    let s = Server::start();
    import_demo(&s, 60);
    let exp = tiny_experiment(&s, "watched", 2);
    let (a, b) = (Tab::open(&s, "a"), Tab::open(&s, "b"));
    let closing = Tab::open(&s, "c");
    let run = s.call("start_run", json!({ "experimentId": exp }));
    let run_id = run["id"].as_i64().expect("run id");
    // The third tab sees the run start, then closes.
    closing.until(Duration::from_secs(120), |e, v| e == "app-event" && v["run_id"] == run_id);
    drop(closing);
    let finished = |e: &str, v: &Value| e == "app-event" && v["type"] == "run_finished" && v["run_id"] == run_id;
    let seen_a = a.until(Duration::from_secs(600), finished);
    let seen_b = b.until(Duration::from_secs(600), finished);
    let last = &seen_a.last().expect("finished").1;
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(seen_a, seen_b, "both tabs get the same events, in order");
    let steps = seen_a.iter().filter(|(_, v)| v["type"] == "run" && v["event"]["kind"] == "step").count();
    assert!(steps > 0, "live steps reach the page: {seen_a:?}");
    let stored = Store::open(&s.home).expect("store").run(run_id).expect("run");
    assert_eq!(stored.info.status, RunStatus::Completed);
}

#[test]
fn picked_paths_stay_inside_the_allowed_folders() {
    let s = Server::start();
    let meta = s.allowed.join("meta.csv");
    std::fs::write(&meta, "filename,caption_choices,label\n").expect("meta");
    std::fs::write(s.outside.join("secret.csv"), "x\n").expect("secret");
    #[cfg(unix)]
    std::os::unix::fs::symlink(s.outside.join("secret.csv"), s.allowed.join("link.csv")).expect("symlink");
    let (mine, other) = (Tab::open(&s, "mine"), Tab::open(&s, "other"));

    let url = s.url("/api/pick_import");
    let token = s.token();
    let pending = std::thread::spawn(move || {
        let mut resp = agent()
            .post(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .header(cliplab_serve::TAB_HEADER, "mine")
            .send_json(json!({}))
            .expect("pick_import");
        (resp.status().as_u16(), resp.body_mut().read_json::<Value>().expect("json"))
    });
    let is_pick = |e: &str, _: &Value| e == "pick";
    let prompt = mine.until(Duration::from_secs(30), is_pick).pop().expect("prompt").1;
    assert_eq!(prompt["kind"], "file");
    let roots: Vec<&str> = prompt["roots"].as_array().expect("roots").iter().filter_map(Value::as_str).collect();
    assert!(roots.len() == 2 && roots.iter().all(|r| Path::new(r).is_absolute()), "{prompt}");
    let id = prompt["id"].as_u64().expect("id");
    let answer = |path: Value| -> (u16, Value) {
        let mut resp = agent()
            .post(&s.url(&format!("/api/pick/{id}")))
            .header("Authorization", &format!("Bearer {}", s.token()))
            .send_json(json!({ "path": path }))
            .expect("answer");
        (resp.status().as_u16(), resp.body_mut().read_json::<Value>().unwrap_or(Value::Null))
    };
    let mut refused = vec![
        json!("/etc/passwd"),
        json!(s.outside.join("secret.csv")),
        json!(s.allowed.join("../outside/secret.csv")),
        json!("meta.csv"),
        json!(s.allowed.join("missing.csv")),
        json!(s.allowed),
    ];
    if cfg!(unix) {
        refused.push(json!(s.allowed.join("link.csv")));
    }
    for path in refused {
        let (status, body) = answer(path.clone());
        assert_eq!(status, 403, "{path} must be refused: {body}");
    }
    let (status, body) = answer(json!(meta));
    assert_eq!(status, 200, "{body}");
    // The image-folder prompt comes next: cancelled (images beside the metadata file).
    let next = mine.until(Duration::from_secs(30), is_pick).pop().expect("prompt").1;
    assert_eq!(next["kind"], "folder");
    let resp = agent()
        .post(&s.url(&format!("/api/pick/{}", next["id"])))
        .header("Authorization", &format!("Bearer {}", s.token()))
        .send_json(json!({ "path": null }))
        .expect("cancel");
    assert_eq!(resp.status().as_u16(), 200);
    let (status, draft) = pending.join().expect("command thread");
    assert_eq!(status, 200, "{draft}");
    let canonical = std::fs::canonicalize(&meta).expect("canonical");
    assert_eq!(draft["metadata"], json!(canonical), "{draft}");
    assert_eq!(draft["images_dir"], Value::Null);
    // An answered prompt cannot be answered again, and the other tab was never asked.
    assert_eq!(answer(json!(meta)).0, 404);
    let heard = other.rx.recv_timeout(Duration::from_millis(300));
    assert!(!matches!(&heard, Ok(Some((e, _))) if e == "pick"), "the other tab got a prompt: {heard:?}");
}

#[test]
fn shutdown_ends_the_streams_and_records_its_runs_cancelled() {
    let mut s = Server::start();
    import_demo(&s, 60);
    let exp = tiny_experiment(&s, "long", 200);
    let tab = Tab::open(&s, "t");
    let run_id = s.call("start_run", json!({ "experimentId": exp }))["id"].as_i64().expect("run id");
    tab.until(Duration::from_secs(120), |e, v| e == "app-event" && v["type"] == "run" && v["event"]["kind"] == "step");
    let started = Instant::now();
    s.running.take().expect("running").shutdown();
    assert!(tab.ends_within(Duration::from_secs(5)), "the event stream ends with the server");
    assert!(started.elapsed() < cliplab_serve::RUN_STOP_PATIENCE, "it stopped in {:?}", started.elapsed());
    let stored = Store::open(&s.home).expect("store").run(run_id).expect("run");
    assert_eq!(stored.info.status, RunStatus::Cancelled, "the run it started is recorded cancelled, not left running");
}
