//! Declares the app's commands to Tauri's permission system: the page may call only those its capability file
//! (`capabilities/default.json`) allows, and that file allows exactly these (a test checks it).

const COMMANDS: &[&str] = &[
    "app_info",
    "list_datasets",
    "dataset_samples",
    "pick_import",
    "demo_import",
    "preview_import",
    "confirm_import",
    "cancel_import",
    "list_experiments",
    "list_models",
    "pick_model",
    "default_spec",
    "check_spec",
    "create_experiment",
    "start_run",
    "cancel_run",
    "list_runs",
    "active_runs",
    "run_view",
    "run_samples",
    "compare_runs",
    "export_checkpoint",
    "export_report",
];

fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)))
        .expect("tauri build script");
}
