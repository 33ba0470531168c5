//! A tracking server that refuses the credentials (HTTP 401, as an auth-enabled `mlflow server` answers a wrong
//! token): push and pull fail with one clear line and record nothing locally. A tiny HTTP server in the test
//! plays the tracking server; it also shows the token was sent. And the tracking URI the home remembers.

#[path = "support/store.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use experiments::events::NullObserver;
use experiments::remote::mlflow::{self, Auth, Client, PullOptions, PushOptions};
use experiments::run::store::{Store, SETTING_TRACKING_URI};
use experiments::Error;

/// Answers every request with 401 and MLflow's error body; keeps each request's `Authorization` header.
fn refusing_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let uri = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let (mut auth, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = line["authorization:".len()..].trim().to_string();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).ok();
            log.lock().expect("log").push(auth);
            let answer = r#"{"error_code": "UNAUTHENTICATED", "message": "You are not authenticated."}"#;
            let reply = format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
                 WWW-Authenticate: Basic realm=\"mlflow\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            stream.write_all(reply.as_bytes()).ok();
        }
    });
    (uri, seen)
}

/// Every row of the tables a push or pull writes.
fn snapshot(home: &std::path::Path) -> Vec<(String, i64)> {
    ["runs", "datasets", "experiments", "remote_pushes", "pulled_runs", "settings", "step_losses", "scores"]
        .iter()
        .map(|t| (t.to_string(), support::count(home, t)))
        .collect()
}

#[test]
fn a_wrong_token_is_one_clear_line_and_nothing_is_recorded() {
    let (uri, seen) = refusing_server();
    let home = tempfile::tempdir().expect("home");
    let (mut store, _ds, exp, _samples) = support::setup(home.path());
    let run = store.create_run(exp).expect("run");
    let before = snapshot(home.path());
    let client = Client::new(&uri, Auth::Token("wrong-token".into())).expect("client");

    let opts = PushOptions { experiment: Some("team".into()), with_checkpoint: false };
    let e = mlflow::push_runs(&mut store, &client, &[run], &opts, &mut NullObserver).expect_err("refused");
    let line = e.to_string();
    assert!(matches!(e, Error::Remote { status: Some(401), .. }), "{e:?}");
    assert!(!line.contains('\n'), "one line: {line}");
    for part in ["401", "UNAUTHENTICATED", "MLFLOW_TRACKING_TOKEN", &uri] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    assert_eq!(seen.lock().expect("seen")[0], "Bearer wrong-token", "the token was sent");

    let pull = PullOptions { experiment: "team".into(), runs: Vec::new() };
    let e = mlflow::pull_runs(&mut store, &client, &pull, &mut NullObserver).expect_err("refused");
    assert!(e.to_string().contains("401"), "{e}");
    assert_eq!(snapshot(home.path()), before, "nothing half-recorded: not the push, the pull, or the server");
    assert!(store.remote_push(run, &uri).expect("push record").is_none());
    let remembered = store.setting(SETTING_TRACKING_URI).expect("setting");
    assert!(remembered.is_none(), "a server never reached is not remembered");
}

#[test]
fn the_home_remembers_a_tracking_uri_and_the_command_line_and_environment_win() {
    let home = tempfile::tempdir().expect("home");
    let mut store = Store::open(home.path()).expect("store");
    // The environment wins over the remembered server; the tests normally run without MLFLOW_TRACKING_URI.
    let env = std::env::var("MLFLOW_TRACKING_URI").ok().filter(|u| !u.trim().is_empty());
    let resolved = mlflow::resolve_tracking_uri(&store, None);
    match &env {
        None => {
            let e = resolved.expect_err("nothing to go by").to_string();
            assert!(e.contains("--tracking-uri") && e.contains("MLFLOW_TRACKING_URI"), "{e}");
        }
        Some(u) => assert_eq!(resolved.expect("from the environment"), u.trim().trim_end_matches('/')),
    }
    store.set_setting(SETTING_TRACKING_URI, "http://team.example:5000/").expect("remember");
    let resolved = mlflow::resolve_tracking_uri(&store, None).expect("resolved");
    if env.is_none() {
        assert_eq!(resolved, "http://team.example:5000", "the remembered server");
    }
    assert_eq!(mlflow::resolve_tracking_uri(&store, Some("http://other:1")).expect("given"), "http://other:1");
    drop(store);
    let store = Store::open(home.path()).expect("reopen");
    assert_eq!(store.setting(SETTING_TRACKING_URI).expect("kept").as_deref(), Some("http://team.example:5000/"));
}
