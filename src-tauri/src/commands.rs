//! The Tauri commands: each one line over [`App`]. They run off the main thread (`async`), so long work
//! (validation, scoring) never freezes the window. The list here, [`crate::bindings::COMMANDS`] and the
//! capability file name the same commands.

use std::sync::Arc;

use experiments::data::ColumnMap;
use experiments::run::spec::ExperimentSpec;
use experiments::run::store::{DatasetInfo, ExperimentInfo, RunInfo};
use tauri::State;

use crate::app::App;
use crate::views::*;
use crate::{Error, Result};

/// The app, or why it could not start (shown in the window instead of a blank page).
pub struct Shared(pub std::result::Result<Arc<App>, String>);

impl Shared {
    fn get(&self) -> Result<Arc<App>> {
        self.0.clone().map_err(Error::Invalid)
    }
}

type S<'a> = State<'a, Shared>;

#[tauri::command(async)]
pub fn app_info(s: S<'_>) -> Result<AppInfo> {
    Ok(s.get()?.info())
}

#[tauri::command(async)]
pub fn list_datasets(s: S<'_>) -> Result<Vec<DatasetInfo>> {
    s.get()?.datasets()
}

#[tauri::command(async)]
pub fn dataset_samples(s: S<'_>, dataset_id: i64, query: SampleQuery) -> Result<SamplePage> {
    s.get()?.samples(dataset_id, &query)
}

#[tauri::command(async)]
pub fn pick_import(s: S<'_>) -> Result<Option<ImportDraft>> {
    s.get()?.pick_import()
}

#[tauri::command(async)]
pub fn demo_import(s: S<'_>, images: usize) -> Result<ImportDraft> {
    s.get()?.demo_import(images)
}

#[tauri::command(async)]
pub fn preview_import(s: S<'_>, token: u64, name: String, columns: ColumnMap) -> Result<ImportPreview> {
    s.get()?.preview_import(token, &name, columns)
}

#[tauri::command(async)]
pub fn confirm_import(s: S<'_>, token: u64, skip_bad_rows: bool) -> Result<DatasetInfo> {
    s.get()?.confirm_import(token, skip_bad_rows)
}

#[tauri::command(async)]
pub fn cancel_import(s: S<'_>, token: u64) -> Result<()> {
    s.get()?.cancel_import(token);
    Ok(())
}

#[tauri::command(async)]
pub fn list_experiments(s: S<'_>) -> Result<Vec<ExperimentInfo>> {
    s.get()?.experiments()
}

#[tauri::command(async)]
pub fn list_models(s: S<'_>) -> Result<Vec<ModelChoice>> {
    s.get()?.models()
}

#[tauri::command(async)]
pub fn pick_model(s: S<'_>) -> Result<Option<ModelChoice>> {
    s.get()?.pick_model()
}

#[tauri::command(async)]
pub fn default_spec(s: S<'_>) -> Result<ExperimentSpec> {
    s.get()?.default_spec()
}

#[tauri::command(async)]
pub fn check_spec(s: S<'_>, spec: ExperimentSpec) -> Result<Vec<FieldError>> {
    s.get()?.check_spec(&spec)
}

#[tauri::command(async)]
pub fn create_experiment(s: S<'_>, spec: ExperimentSpec) -> Result<ExperimentInfo> {
    s.get()?.create_experiment(&spec)
}

#[tauri::command(async)]
pub fn start_run(s: S<'_>, experiment_id: i64) -> Result<RunInfo> {
    s.get()?.start_run(experiment_id)
}

#[tauri::command(async)]
pub fn cancel_run(s: S<'_>, run_id: i64) -> Result<()> {
    s.get()?.cancel_run(run_id)
}

#[tauri::command(async)]
pub fn list_runs(s: S<'_>) -> Result<Vec<RunInfo>> {
    s.get()?.runs()
}

#[tauri::command(async)]
pub fn active_runs(s: S<'_>) -> Result<Vec<i64>> {
    Ok(s.get()?.active_runs())
}

#[tauri::command(async)]
pub fn run_view(s: S<'_>, run_id: i64) -> Result<RunView> {
    s.get()?.run_view(run_id)
}

#[tauri::command(async)]
pub fn run_samples(s: S<'_>, run_id: i64, query: RunSampleQuery) -> Result<SampleCardPage> {
    s.get()?.run_samples(run_id, &query)
}

#[tauri::command(async)]
pub fn compare_runs(s: S<'_>, run_ids: Vec<i64>) -> Result<CompareView> {
    s.get()?.compare(&run_ids)
}

#[tauri::command(async)]
pub fn export_checkpoint(s: S<'_>, run_id: i64) -> Result<Option<Exported>> {
    s.get()?.export_checkpoint(run_id)
}

#[tauri::command(async)]
pub fn export_report(s: S<'_>, run_ids: Vec<i64>) -> Result<Option<Exported>> {
    s.get()?.export_report(&run_ids)
}
