// The app's command list, declared once. Included by `src-tauri/build.rs` (`include!`), so this file holds only
// the macro: no inner doc comment, no `use`.

/// Calls `$callback!` with every command of the app, in the form
///
/// ```text
/// /// doc
/// fn name(app, arg: RustType, ...) -> OkType { body using `app` (an `Arc<App>`) and the arguments }
/// ```
///
/// The body returns `Result<OkType>`. Everything about a command follows from its entry here (in the manner of
/// yaak's `with_commands!`), for both transports: the `#[tauri::command]` function (`src-tauri/src/commands.rs`),
/// the handler (`generate_handler!` in `src-tauri/src/lib.rs`), the permission list (`src-tauri/build.rs`) and the
/// capability file the tests hold to it; `POST /api/<name>` of `cliplab serve` (`experiments/serve`); and the
/// typed TypeScript wrapper with argument names and ts-rs types ([`crate::bindings`]). Exported so that the
/// transports and the tests can expand it (the types resolve where it is expanded).
#[macro_export]
macro_rules! with_commands {
    ($callback:ident) => {
        $callback! {
            /// The app's version, home, store and devices.
            fn app_info(app) -> AppInfo { Ok(app.info()) }
            /// Every imported dataset.
            fn list_datasets(app) -> Vec<DatasetInfo> { app.datasets() }
            /// A page of a dataset's samples.
            fn dataset_samples(app, dataset_id: i64, query: SampleQuery) -> SamplePage { app.samples(dataset_id, &query) }
            /// Asks for a metadata file and an image folder (`null`: cancelled).
            fn pick_import(app) -> Option<ImportDraft> { app.pick_import() }
            /// Starts an import from gs://, s3:// or https:// URLs (the preview downloads).
            fn import_url(app, metadata: String, images: Option<String>) -> ImportDraft { app.import_url(&metadata, images.as_deref()) }
            /// Writes the demo data and starts an import of it.
            fn demo_import(app, images: usize) -> ImportDraft { app.demo_import(images) }
            /// Validates a draft with this name and column map.
            fn preview_import(app, token: u64, name: String, columns: ColumnMap) -> ImportPreview {
                app.preview_import(token, &name, columns)
            }
            /// Stores a previewed draft.
            fn confirm_import(app, token: u64, skip_bad_rows: bool) -> DatasetInfo { app.confirm_import(token, skip_bad_rows) }
            /// Forgets a draft.
            fn cancel_import(app, token: u64) -> () {
                app.cancel_import(token);
                Ok(())
            }
            /// Every experiment.
            fn list_experiments(app) -> Vec<ExperimentInfo> { app.experiments() }
            /// The model folders an experiment may name.
            fn list_models(app) -> Vec<ModelChoice> { app.models() }
            /// Asks for a CLIP model folder (`null`: cancelled).
            fn pick_model(app) -> Option<ModelChoice> { app.pick_model() }
            /// Downloads a CLIP model from the Hugging Face hub (progress: `job` events) and offers it.
            fn pull_model(app, job: u64, repo: String) -> ModelChoice { app.pull_model(job, &repo) }
            /// The experiment form's starting values.
            fn default_spec(app) -> ExperimentSpec { app.default_spec() }
            /// Every problem with a spec, per form field.
            fn check_spec(app, spec: ExperimentSpec) -> Vec<FieldProblem> { app.check_spec(&spec) }
            /// Records an experiment.
            fn create_experiment(app, spec: ExperimentSpec) -> ExperimentInfo { app.create_experiment(&spec) }
            /// Starts a run of an experiment.
            fn start_run(app, experiment_id: i64) -> RunInfo { app.start_run(experiment_id) }
            /// Asks a running run to stop.
            fn cancel_run(app, run_id: i64) -> () { app.cancel_run(run_id) }
            /// Every run.
            fn list_runs(app) -> Vec<RunInfo> { app.runs() }
            /// Ids of the runs this window is running.
            fn active_runs(app) -> Vec<i64> { Ok(app.active_runs()) }
            /// The run-detail screen.
            fn run_view(app, run_id: i64) -> RunView { app.run_view(run_id) }
            /// A page of a run's sample cards.
            fn run_samples(app, run_id: i64, query: RunSampleQuery) -> SampleCardPage { app.run_samples(run_id, &query) }
            /// The MLflow dialogs' starting values (the remembered tracking server).
            fn mlflow_defaults(app) -> MlflowDefaults { app.mlflow_defaults() }
            /// Pushes runs to an MLflow tracking server (progress: `job` events).
            fn mlflow_push(app, job: u64, request: MlflowPushRequest) -> Vec<PushedRun> { app.mlflow_push(job, &request) }
            /// Pulls a team's runs from an MLflow experiment (progress: `job` events).
            fn mlflow_pull(app, job: u64, request: MlflowPullRequest) -> PulledRuns { app.mlflow_pull(job, &request) }
            /// Asks a job (push, pull, download) to stop.
            fn cancel_job(app, job: u64) -> () {
                app.cancel_job(job);
                Ok(())
            }
            /// Runs side by side.
            fn compare_runs(app, run_ids: Vec<i64>) -> CompareView { app.compare(&run_ids) }
            /// The runs table: every run with its labels, disk use and spec columns.
            fn runs_table(app) -> RunsTable { app.runs_table() }
            /// A run's and its experiment's tags and notes.
            fn run_labels(app, run_id: i64) -> LabelsView { app.labels(run_id) }
            /// Adds (`on`) or removes a run's tag.
            fn tag_run(app, run_id: i64, tag: String, on: bool) -> () { app.tag_run(run_id, &tag, on) }
            /// Adds (`on`) or removes an experiment's tag.
            fn tag_experiment(app, experiment_id: i64, tag: String, on: bool) -> () { app.tag_experiment(experiment_id, &tag, on) }
            /// Replaces a run's note.
            fn set_run_note(app, run_id: i64, note: String) -> () { app.set_run_note(run_id, &note) }
            /// Replaces an experiment's note.
            fn set_experiment_note(app, experiment_id: i64, note: String) -> () { app.set_experiment_note(experiment_id, &note) }
            /// Archives runs (hidden by default) or brings them back.
            fn set_archived(app, run_ids: Vec<i64>, archived: bool) -> () { app.set_archived(&run_ids, archived) }
            /// Deletes runs (`apply = false`: only says what would go).
            fn delete_runs(app, run_ids: Vec<i64>, apply: bool) -> DeletePlan { app.delete_runs(&run_ids, apply) }
            /// Deletes an experiment with its runs (`apply = false`: only says what would go).
            fn delete_experiment(app, experiment_id: i64, apply: bool) -> DeletePlan { app.delete_experiment(experiment_id, apply) }
            /// Deletes a dataset, with the runs that use it when `with_runs` (`apply = false`: only says what would go).
            fn delete_dataset(app, dataset_id: i64, with_runs: bool, apply: bool) -> DeletePlan {
                app.delete_dataset(dataset_id, with_runs, apply)
            }
            /// Deletes a run's checkpoint, keeping its records; the bytes freed.
            fn delete_checkpoint(app, run_id: i64) -> u64 { app.delete_checkpoint(run_id) }
            /// Queues a run of a spec, or a sweep over `grid`; the app's worker runs the queue.
            fn queue_runs(app, spec: ExperimentSpec, grid: Vec<GridAxis>) -> QueuedRuns { app.queue_runs(&spec, &grid) }
            /// The queued runs, next first.
            fn list_queue(app) -> Vec<QueuedRun> { app.queue() }
            /// Takes a run out of the queue (cancelled).
            fn cancel_queued(app, run_id: i64) -> () { app.cancel_queued(run_id) }
            /// Moves a queued run to 1-based place `to`.
            fn move_queued(app, run_id: i64, to: usize) -> () { app.move_queued(run_id, to) }
            /// The queue's settings (runs at once on the CPU).
            fn queue_settings(app) -> QueueSettings { app.queue_settings() }
            /// Sets the queue worker's runs at once on the CPU (1 to the maximum), kept in the home's settings.
            fn set_queue_concurrency(app, concurrency: usize) -> QueueSettings { app.set_queue_concurrency(concurrency) }
            /// Every sweep, newest first.
            fn list_sweeps(app) -> Vec<SweepInfo> { app.sweeps() }
            /// A sweep's results.
            fn sweep_view(app, sweep_id: i64) -> SweepView { app.sweep_view(sweep_id) }
            /// Asks for a folder and exports a run's checkpoint (`null`: cancelled).
            fn export_checkpoint(app, run_id: i64) -> Option<Exported> { app.export_checkpoint(run_id) }
            /// Asks for a folder and exports the runs' charts and CSV (`null`: cancelled).
            fn export_report(app, run_ids: Vec<i64>) -> Option<Exported> { app.export_report(&run_ids) }
        }
    };
}
