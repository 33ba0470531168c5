//! Declares the app's commands to Tauri's permission system: the page may call only those its capability file
//! (`capabilities/default.json`) allows, and that file allows exactly these (a test checks it). The names come
//! from the one command list, `experiments/app-api/src/command_list.rs` (shared with `cliplab serve`).

include!("../experiments/app-api/src/command_list.rs");

/// The names of the listed commands (their types and bodies are only tokens here).
macro_rules! command_names {
    ($( $(#[$doc:meta])* fn $name:ident($app:ident $(, $arg:ident: $ty:ty)*) -> $ret:ty $body:block )*) => {
        &[$(stringify!($name)),*]
    };
}

const COMMANDS: &[&str] = with_commands!(command_names);

fn main() {
    println!("cargo:rerun-if-changed=../experiments/app-api/src/command_list.rs");
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)))
        .expect("tauri build script");
}
