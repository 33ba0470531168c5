//! Embeds the built front end (`ui/dist`, as the desktop app does) and derives the page's Content-Security-Policy
//! from the desktop app's (`src-tauri/tauri.conf.json`), so that both transports serve the page under the same
//! policy: Tauri's own sources (`ipc:`, `cliplab:`, `http://*.localhost`) become `'self'`, the server's origin.
//! Writes `$OUT_DIR/embedded.rs` (`ASSETS`, `CSP`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let dist = root.join("ui/dist");
    let conf = root.join("src-tauri/tauri.conf.json");
    println!("cargo:rerun-if-changed={}", dist.display());
    println!("cargo:rerun-if-changed={}", conf.display());

    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    assert!(
        files.iter().any(|(rel, _)| rel == "index.html"),
        "{} has no index.html: build the front end first (`npm ci && npm run build` in ui/, or scripts/setup.sh)",
        dist.display()
    );
    let mut out = String::from("/// The built front end (`ui/dist`): (path below the site root, contents).\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        writeln!(out, "    ({rel:?}, include_bytes!({abs:?})),").expect("write to a String");
    }
    out.push_str("];\n\n");
    writeln!(
        out,
        "/// The desktop app's CSP (`src-tauri/tauri.conf.json`), its Tauri-only sources read as this server's origin,\n\
         /// plus `frame-ancestors 'none'` (a window is never framed; a page could be).\npub const CSP: &str = {:?};",
        csp(&conf)
    )
    .expect("write to a String");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    std::fs::write(&dest, out).expect("write embedded.rs");
}

/// Every file under `dir`: (path relative to `base` with `/`, absolute path).
fn collect(base: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}; build the front end first (`npm ci && npm run build` in ui/, or scripts/setup.sh)", dir.display())
    });
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(base, &path, files);
            continue;
        }
        let rel = path.strip_prefix(base).expect("below ui/dist");
        let rel: Vec<&str> = rel.components().map(|c| c.as_os_str().to_str().expect("UTF-8 file names in ui/dist")).collect();
        let abs = path.canonicalize().expect("canonical path");
        files.push((rel.join("/"), abs.to_str().expect("UTF-8 path to ui/dist").to_string()));
    }
}

/// The CSP header of the desktop app's `app.security.csp`, for a page served over HTTP.
fn csp(conf: &Path) -> String {
    let text = std::fs::read_to_string(conf).unwrap_or_else(|e| panic!("cannot read {}: {e}", conf.display()));
    let conf: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
    let directives = conf["app"]["security"]["csp"].as_object().expect("tauri.conf.json has app.security.csp as an object");
    let mut parts = Vec::new();
    for (name, sources) in directives {
        let mut kept: Vec<&str> = Vec::new();
        for source in sources.as_str().expect("a CSP directive is a string").split_whitespace() {
            let tauri_only = source == "ipc:" || source == "cliplab:" || (source.starts_with("http://") && source.ends_with(".localhost"));
            let source = if tauri_only { "'self'" } else { source };
            if !kept.contains(&source) {
                kept.push(source);
            }
        }
        parts.push(format!("{name} {}", kept.join(" ")));
    }
    parts.push("frame-ancestors 'none'".to_string());
    parts.join("; ")
}
