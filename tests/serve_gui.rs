//! `cliplab serve` end to end in a browser: the real `cliplab` binary (which runs `cliplab-serve`) on 127.0.0.1,
//! a headless Chromium driven through `chromedriver` with the same WebDriver client and the same user's path as the
//! desktop app's test (`gui_flow.rs`), answering the export's folder prompt in the page's path field. Then Ctrl-C
//! (SIGINT): the server ends cleanly. Screenshots go to `target/serve-screenshots/`.

#[allow(dead_code)] // Shared with gui.rs, which uses the Tauri half.
#[path = "webdriver.rs"]
mod webdriver;
#[path = "gui_flow.rs"]
mod gui_flow;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use webdriver::{Guard, Session};

fn screenshots_dir() -> PathBuf {
    // target/<profile>/cliplab -> target/serve-screenshots
    let bin = cliplab_e2e::cliplab_bin();
    bin.parent().and_then(|p| p.parent()).map(|t| t.join("serve-screenshots")).expect("target dir")
}

/// `cliplab serve` on a free loopback port; its process and the URL it printed (with the token).
fn serve(home: &Path, allow: &Path) -> (Guard, String) {
    let cliplab = cliplab_e2e::cliplab_bin();
    let server = cliplab.with_file_name(format!("cliplab-serve{}", std::env::consts::EXE_SUFFIX));
    assert!(server.is_file(), "{} is missing: `cargo build -p cliplab-serve` (cargo test --workspace builds it)", server.display());
    let mut child = Command::new(&cliplab)
        .arg("--home")
        .arg(home)
        .args(["serve", "--bind", "127.0.0.1:0", "--allow-dir"])
        .arg(allow)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start cliplab serve");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Guard { child };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://") && w.contains("?token=")) {
                // The test may have given up already.
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(60)).expect("cliplab serve printed its URL");
    (guard, url)
}

/// Answers the page's folder prompt (what a native dialog is in the desktop app) with `dir`, after trying a folder
/// outside the allowed ones, which the server refuses (the prompt stays, saying why).
fn answer_prompt(s: &Session, dir: &Path) {
    s.wait_text("[data-testid=pick-title]", Duration::from_secs(60));
    s.type_into("[data-testid=pick-path]", "/etc").expect("path");
    s.click("[data-testid=pick-ok]").expect("ok");
    let why = s.wait("the refusal", Duration::from_secs(60), |s| Ok(s.text("[data-testid=pick-error]").ok().filter(|t| !t.is_empty())));
    assert!(why.contains("outside the folders"), "{why}");
    s.type_into("[data-testid=pick-path]", &dir.display().to_string()).expect("path");
    s.click("[data-testid=pick-ok]").expect("ok");
    s.wait("the prompt to close", Duration::from_secs(60), |s| Ok((s.count("[data-testid=pick]")? == 0).then_some(())));
}

#[test]
fn the_app_in_a_browser_end_to_end() {
    if std::env::var_os("CLIPLAB_SKIP_GUI_TESTS").is_some() {
        eprintln!("CLIPLAB_SKIP_GUI_TESTS is set: skipping the browser end-to-end test");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let export_dir = tmp.path().join("exports");
    std::fs::create_dir_all(&export_dir).expect("exports");
    let shots = screenshots_dir();
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("shots");
    let (mut server, url) = serve(&home, &export_dir);
    let (_driver, port) = webdriver::start_chromedriver(&shots.join("chromedriver.log"));
    let s = Session::start_chromium(port, shots.clone());
    eprintln!("browser test: home {}, screenshots {}", home.display(), shots.display());

    // The start URL's token becomes a cookie and leaves the address bar.
    s.navigate(&url).expect("open the URL");
    s.wait("the page", Duration::from_secs(60), |s| Ok(s.find("[data-testid=nav-datasets]").ok()));
    let address = s.js("return location.href;", json!([])).expect("href");
    assert!(!address.as_str().unwrap_or_default().contains("token"), "{address}");
    gui_flow::user_path(&s, &home, &export_dir, &answer_prompt);
    s.close();

    // Ctrl-C: a clean end.
    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "cliplab serve did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "cliplab serve ended with {status}");
}

#[test]
fn cliplab_serve_refuses_a_public_address_without_expose() {
    let dir = cliplab_e2e::Dir::new();
    let err = dir.cliplab(&["serve", "--bind", "0.0.0.0:0"]).fails();
    assert!(err.contains("--expose"), "{err}");
}
