//! The desktop app end to end: the real `cliplab-app` binary under Xvfb, driven through WebDriver
//! (`tauri-driver` + Debian's `WebKitWebDriver`). A user's whole path — import the demo dataset, create and run
//! an experiment, watch it complete, run a second one, compare them, export a checkpoint — with what the window
//! shows checked against the store. A screenshot of each screen is kept in `target/gui-screenshots/`.

#[allow(dead_code)] // Shared with serve_gui.rs, which uses the Chromium half.
#[path = "webdriver.rs"]
mod webdriver;
#[path = "gui_flow.rs"]
mod gui_flow;

use std::path::PathBuf;

use webdriver::Session;

fn app_binary() -> PathBuf {
    let cliplab = cliplab_e2e::cliplab_bin();
    let app = cliplab.with_file_name(format!("cliplab-app{}", std::env::consts::EXE_SUFFIX));
    assert!(app.is_file(), "{} is missing: `cargo test --workspace` builds it", app.display());
    app
}

fn screenshots_dir() -> PathBuf {
    // target/<profile>/cliplab -> target/gui-screenshots
    let bin = cliplab_e2e::cliplab_bin();
    bin.parent().and_then(|p| p.parent()).map(|t| t.join("gui-screenshots")).expect("target dir")
}

#[test]
fn the_desktop_app_end_to_end() {
    if std::env::var_os("CLIPLAB_SKIP_GUI_TESTS").is_some() {
        eprintln!("CLIPLAB_SKIP_GUI_TESTS is set: skipping the GUI end-to-end test");
        return;
    }
    let app = app_binary();
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let export_dir = tmp.path().join("exports");
    std::fs::create_dir_all(&export_dir).expect("exports");
    // Answers to the app's folder dialogs, in order: export the checkpoint, then again (which must fail).
    let picks = std::env::join_paths([&export_dir, &export_dir]).expect("picks");
    let picks = PathBuf::from(picks);
    let shots = screenshots_dir();
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("shots");
    let (_xvfb, display) = webdriver::start_xvfb();
    let log = shots.join("tauri-driver.log");
    let (_driver, port) =
        webdriver::start_tauri_driver(&[("CLIPLAB_HOME", home.as_path()), ("CLIPLAB_E2E_PICKS", picks.as_path())], &display, &log);
    let s = Session::start(port, &app, shots.clone());
    eprintln!("GUI test: home {}, screenshots {}", home.display(), shots.display());

    gui_flow::user_path(&s, &home, &export_dir, &|_, _| {
        // The dialog is scripted (CLIPLAB_E2E_PICKS): nothing to answer in the page.
    });
    s.close();
}
