//! The app's state and the logic behind each command: small calls into `experiments` (store, runner, dataset,
//! compare, plots). Nothing here needs a window, so the command layer is tested against a temporary store
//! (`tests/commands.rs`) with a scripted picker and a recording event sink.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use experiments::report::analysis::{self, RunData, SampleResult};
use experiments::vocab::Stage;
use experiments::data::{self, ColumnMap, ImportOptions, ImportedDataset, OnError};
use experiments::run::demo::{self, DemoOptions};
use experiments::events::{Event, Observer};
use experiments::report::plots::{self, Chart};
use experiments::run::runner;
use experiments::run::spec::{ExperimentSpec, SampleSpec, TrainSpec};
use experiments::run::store::{DatasetInfo, ExperimentInfo, RunInfo, RunStatus, Store, StoredSample};

use crate::picker::Picker;
use crate::views::*;
use crate::{Error, Result};

/// Locks a mutex, recovering the data if a thread panicked while holding it (the data are caches and queues
/// that stay consistent between statements).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where events for the window go (the Tauri window in the app, a list in tests).
pub trait EventSink: Send + Sync {
    fn emit(&self, event: AppEvent);
}

/// Keeps every event (tests).
#[derive(Default)]
pub struct RecordingSink {
    pub events: Mutex<Vec<AppEvent>>,
}

impl EventSink for RecordingSink {
    fn emit(&self, event: AppEvent) {
        lock(&self.events).push(event);
    }
}

/// A picked import, and its validated data once previewed.
struct Draft {
    name: String,
    metadata: PathBuf,
    images_dir: Option<PathBuf>,
    columns: ColumnMap,
    validated: Option<ImportedDataset>,
}

/// The desktop app's state, shared by every command.
pub struct App {
    home: PathBuf,
    store: Mutex<Store>,
    picker: Box<dyn Picker>,
    sink: Arc<dyn EventSink>,
    /// Cancel flags of the runs this process is running.
    active: Mutex<HashMap<i64, Arc<AtomicBool>>>,
    drafts: Mutex<HashMap<u64, Draft>>,
    next_token: AtomicU64,
    /// Model folders the user picked in a dialog (or the app knows from experiments and the demo): the only
    /// ones an experiment may name.
    models: Mutex<BTreeSet<ModelChoice>>,
    samples: Mutex<HashMap<i64, Arc<Vec<StoredSample>>>>,
    finished_runs: Mutex<HashMap<i64, Arc<RunData>>>,
    recovered: Vec<i64>,
    /// Demo size used by the "demo data" button (overridable for tests).
    pub demo: DemoOptions,
}

/// Page size cap: a page is what a screen shows at once.
const MAX_PAGE: usize = 500;

impl App {
    /// Opens the store in `home` (creating it), marking runs whose process died as interrupted.
    pub fn open(home: &Path, picker: Box<dyn Picker>, sink: Arc<dyn EventSink>) -> Result<Arc<App>> {
        let mut store = Store::open(home)?;
        let recovered = store.recover_interrupted()?;
        let app = App {
            home: home.to_path_buf(),
            store: Mutex::new(store),
            picker,
            sink,
            active: Mutex::default(),
            drafts: Mutex::default(),
            next_token: AtomicU64::new(1),
            models: Mutex::default(),
            samples: Mutex::default(),
            finished_runs: Mutex::default(),
            recovered,
            demo: DemoOptions::default(),
        };
        app.refresh_models()?;
        Ok(Arc::new(app))
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    pub fn info(&self) -> AppInfo {
        let mut devices = Vec::new();
        if experiments::model::device::select(experiments::model::device::DeviceChoice::Cuda).is_ok() {
            devices.push("cuda".to_string());
        }
        if experiments::model::device::select(experiments::model::device::DeviceChoice::Metal).is_ok() {
            devices.push("metal".to_string());
        }
        devices.push("cpu".to_string());
        AppInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            home: self.home.clone(),
            store: self.store().path().to_path_buf(),
            devices,
            recovered: self.recovered.clone(),
        }
    }

    // ---- datasets -------------------------------------------------------------------------------------------

    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        Ok(self.store().datasets()?)
    }

    fn dataset_samples(&self, dataset_id: i64) -> Result<Arc<Vec<StoredSample>>> {
        if let Some(s) = lock(&self.samples).get(&dataset_id) {
            return Ok(s.clone());
        }
        // Datasets never change once imported, so their samples are cached for paging.
        let s = Arc::new(self.store().dataset_samples(dataset_id)?);
        lock(&self.samples).insert(dataset_id, s.clone());
        Ok(s)
    }

    /// A page of a dataset's samples, filtered by text and answer letter.
    pub fn samples(&self, dataset_id: i64, q: &SampleQuery) -> Result<SamplePage> {
        let all = self.dataset_samples(dataset_id)?;
        let text = q.text.trim().to_lowercase();
        let matches = |s: &&StoredSample| {
            q.label.is_none_or(|l| s.label == l)
                && (text.is_empty()
                    || s.filename.to_lowercase().contains(&text)
                    || s.choices.iter().any(|c| c.to_lowercase().contains(&text)))
        };
        let mut total = 0;
        let mut items = Vec::new();
        let limit = q.limit.clamp(1, MAX_PAGE);
        for s in all.iter().filter(matches) {
            if total >= q.offset && items.len() < limit {
                items.push(s.clone());
            }
            total += 1;
        }
        Ok(SamplePage { total, offset: q.offset, items })
    }

    fn new_draft(&self, name: String, metadata: PathBuf, images_dir: Option<PathBuf>) -> ImportDraft {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let columns = ColumnMap::default();
        lock(&self.drafts).insert(
            token,
            Draft { name: name.clone(), metadata: metadata.clone(), images_dir: images_dir.clone(), columns: columns.clone(), validated: None },
        );
        ImportDraft { token, name, metadata, images_dir, columns }
    }

    /// Asks for the metadata file, then the image folder (cancel: images next to the metadata file or embedded).
    pub fn pick_import(&self) -> Result<Option<ImportDraft>> {
        let Some(metadata) = self.picker.pick_file(
            "Metadata file (filename, caption_choices, label)",
            &[("Metadata", &["parquet", "csv", "jsonl", "ndjson", "json"])],
        ) else {
            return Ok(None);
        };
        let images_dir = self.picker.pick_folder("Image folder (cancel: images sit next to the metadata file)");
        let name = metadata.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "dataset".into());
        Ok(Some(self.new_draft(name, metadata, images_dir)))
    }

    /// Writes the embedded demo data (generated drawings and a tiny random CLIP) and starts an import of it.
    pub fn demo_import(&self, images: usize) -> Result<ImportDraft> {
        let opts = DemoOptions { images, heldout: (images / 5).max(1), ..self.demo.clone() };
        let files = demo::prepare(&self.home, &opts, &mut experiments::events::NullObserver)?;
        self.allow_model(&files.model, "demo");
        Ok(self.new_draft(files.dataset_name, files.metadata, Some(files.images_dir)))
    }

    /// Reads and validates a draft (every row; bad rows are reported, not stored) and keeps the result until
    /// the user confirms or drops it.
    pub fn preview_import(&self, token: u64, name: &str, columns: ColumnMap) -> Result<ImportPreview> {
        let (metadata, images_dir) = {
            let drafts = lock(&self.drafts);
            let d = drafts.get(&token).ok_or_else(|| Error::Invalid(format!("no import in progress with token {token}")))?;
            (d.metadata.clone(), d.images_dir.clone())
        };
        let opts = ImportOptions {
            name: name.trim().to_string(),
            metadata: metadata.clone(),
            images_dir: images_dir.clone(),
            columns: columns.clone(),
            on_error: OnError::Skip,
            extract_dir: Some(self.home.join("extracted").join(format!("import-{token}"))),
        };
        let mut obs = ImportEvents { sink: self.sink.as_ref(), token, last: None };
        let (report, validated) = match data::import(&opts, &mut obs) {
            Ok(d) => (d.report.clone(), Some(d)),
            Err(experiments::Error::Rejected { report, .. }) => (*report, None),
            Err(e) => return Err(e.into()),
        };
        let mut kinds: Vec<KindCount> =
            report.counts_by_kind().into_iter().map(|(kind, count)| KindCount { kind, count }).collect();
        kinds.sort_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(&b.kind)));
        let examples = validated
            .as_ref()
            .map(|d| {
                d.rows
                    .iter()
                    .take(5)
                    .map(|r| PreviewRow { row: r.row, filename: r.filename.clone(), choices: r.choices.clone(), label: r.label })
                    .collect()
            })
            .unwrap_or_default();
        let preview = ImportPreview {
            token,
            name: opts.name.clone(),
            metadata,
            images_dir,
            importable: validated.is_some(),
            n_images: validated.as_ref().map_or(0, |d| d.images.len()),
            report,
            problem_kinds: kinds,
            examples,
        };
        if let Some(d) = lock(&self.drafts).get_mut(&token) {
            d.name = opts.name;
            d.columns = columns;
            d.validated = validated;
        }
        Ok(preview)
    }

    /// Stores a previewed import. With problems in it, `skip_bad_rows` must be true (the valid rows are stored,
    /// the bad ones counted as skipped); nothing is stored otherwise.
    pub fn confirm_import(&self, token: u64, skip_bad_rows: bool) -> Result<DatasetInfo> {
        let mut drafts = lock(&self.drafts);
        let d = drafts.get(&token).ok_or_else(|| Error::Invalid(format!("no import in progress with token {token}")))?;
        let Some(data) = &d.validated else {
            return Err(Error::Invalid("nothing to import: check the validation report first".into()));
        };
        let bad = data.report.problems.len();
        if bad > 0 && !skip_bad_rows {
            return Err(Error::Invalid(format!(
                "{bad} problem(s) in {}: import again with \"skip bad rows\" to store the {} valid rows",
                d.metadata.display(),
                data.report.valid_rows
            )));
        }
        let id = self.store().insert_dataset(data)?;
        drafts.remove(&token);
        drop(drafts);
        Ok(self.store().dataset(&id.to_string())?)
    }

    /// Forgets a draft the user dropped.
    pub fn cancel_import(&self, token: u64) {
        lock(&self.drafts).remove(&token);
    }

    // ---- experiments ----------------------------------------------------------------------------------------

    pub fn experiments(&self) -> Result<Vec<ExperimentInfo>> {
        Ok(self.store().experiments()?)
    }

    fn allow_model(&self, path: &Path, source: &str) {
        let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        let mut models = lock(&self.models);
        if !models.iter().any(|m| m.path == path) {
            models.insert(ModelChoice { path: path.to_path_buf(), name, source: source.into() });
        }
    }

    /// Re-reads the model folders the app knows: those of earlier experiments and the demo's.
    fn refresh_models(&self) -> Result<()> {
        for e in self.store().experiments()? {
            if e.spec.model.is_dir() {
                self.allow_model(&e.spec.model, "experiment");
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.home.join("demo")) {
            for entry in rd.flatten() {
                let p = entry.path();
                if p.join(experiments::model::engine::CONFIG_FILE).is_file() && p.join(experiments::model::engine::WEIGHTS_FILE).is_file() {
                    self.allow_model(&p, "demo");
                }
            }
        }
        Ok(())
    }

    pub fn models(&self) -> Result<Vec<ModelChoice>> {
        self.refresh_models()?;
        Ok(lock(&self.models).iter().cloned().collect())
    }

    /// Asks for a Hugging Face CLIP folder (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub fn pick_model(&self) -> Result<Option<ModelChoice>> {
        let Some(dir) = self.picker.pick_folder("CLIP model folder (config.json, model.safetensors, tokenizer.json)") else {
            return Ok(None);
        };
        for f in [experiments::model::engine::CONFIG_FILE, experiments::model::engine::WEIGHTS_FILE, experiments::model::engine::TOKENIZER_FILE] {
            if !dir.join(f).is_file() {
                return Err(Error::Invalid(format!("{}: not a CLIP model folder ({f} is missing)", dir.display())));
            }
        }
        self.allow_model(&dir, "picked");
        Ok(lock(&self.models).iter().find(|m| m.path == dir).cloned())
    }

    /// The tutorial's spec, on the first dataset and model the app knows.
    pub fn default_spec(&self) -> Result<ExperimentSpec> {
        let dataset = self.datasets()?.into_iter().last().map(|d| d.name).unwrap_or_default();
        let model = self.models()?.into_iter().next().map(|m| m.path).unwrap_or_default();
        Ok(ExperimentSpec {
            name: String::new(),
            dataset,
            model,
            device: Default::default(),
            sample: SampleSpec { train: 10, heldout: 10, seed: 42 },
            train: TrainSpec::default(),
            freeze: Default::default(),
            save_checkpoint: true,
            notes: String::new(),
        })
    }

    /// Every problem with a spec, per form field (empty: it can run).
    pub fn check_spec(&self, spec: &ExperimentSpec) -> Result<Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut err = |field: &str, message: String| errs.push(FieldError { field: field.into(), message });
        if spec.name.trim().is_empty() {
            err("name", "give the experiment a name".into());
        }
        let t = &spec.train;
        if !(t.lr.is_finite() && t.lr > 0.0) {
            err("train.lr", "the learning rate must be a positive number".into());
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            err("train.weight_decay", "weight decay must be zero or more".into());
        }
        if t.epochs == 0 {
            err("train.epochs", "at least one epoch".into());
        }
        if t.batch_size == 0 {
            err("train.batch_size", "the batch size must be at least 1".into());
        }
        if t.eval_batch_size == 0 {
            err("train.eval_batch_size", "the scoring batch size must be at least 1".into());
        }
        if spec.sample.train == 0 {
            err("sample.train", "at least one training sample".into());
        }
        if spec.freeze.vision && spec.freeze.text && spec.freeze.logit_scale {
            err("freeze", "everything is frozen: nothing would be trained".into());
        }
        if !lock(&self.models).iter().any(|m| m.path == spec.model) {
            err("model", "pick the model folder with \"Browse…\" (or one the app already knows)".into());
        } else if !spec.model.join(experiments::model::engine::WEIGHTS_FILE).is_file() {
            err("model", format!("{}: no {} in it", spec.model.display(), experiments::model::engine::WEIGHTS_FILE));
        }
        // (The store lock is released before `dataset_samples` takes it again.)
        let dataset = self.store().dataset(&spec.dataset);
        match dataset {
            Err(_) => err("dataset", "choose an imported dataset".into()),
            Ok(ds) => {
                let samples = self.dataset_samples(ds.id)?;
                if let Err(e) = runner::draw_splits(&samples, spec.sample.train, spec.sample.heldout, spec.sample.seed) {
                    err("sample.heldout", e.to_string());
                }
            }
        }
        if errs.is_empty() {
            if let Err(e) = spec.validate() {
                errs.push(FieldError { field: String::new(), message: e.to_string() });
            }
        }
        Ok(errs)
    }

    /// Records an experiment after [`App::check_spec`] finds nothing wrong.
    pub fn create_experiment(&self, spec: &ExperimentSpec) -> Result<ExperimentInfo> {
        let errs = self.check_spec(spec)?;
        if let Some(first) = errs.first() {
            let field = if first.field.is_empty() { String::new() } else { format!("{}: ", first.field) };
            return Err(Error::Invalid(format!("{field}{}", first.message)));
        }
        let mut store = self.store();
        let id = runner::create_experiment(&mut store, spec)?;
        Ok(store.experiment(id)?)
    }

    // ---- runs -----------------------------------------------------------------------------------------------

    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        Ok(self.store().runs()?)
    }

    /// Creates a run of `experiment_id` and starts it on a worker thread; its events go to the window and the
    /// store. The run row exists (queued) when this returns.
    pub fn start_run(self: &Arc<Self>, experiment_id: i64) -> Result<RunInfo> {
        let run_id = {
            let mut store = self.store();
            store.experiment(experiment_id)?;
            store.create_run(experiment_id)?
        };
        let cancel = Arc::new(AtomicBool::new(false));
        lock(&self.active).insert(run_id, cancel.clone());
        let app = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("run-{run_id}")).spawn(move || app.execute(run_id, cancel));
        if let Err(e) = spawned {
            lock(&self.active).remove(&run_id);
            let msg = format!("could not start a worker thread: {e}");
            self.store().finish_run(run_id, RunStatus::Failed, Some(&msg))?;
            return Err(Error::Invalid(msg));
        }
        Ok(self.store().run(run_id)?.info)
    }

    fn execute(&self, run_id: i64, cancel: Arc<AtomicBool>) {
        let work = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> experiments::Result<()> {
            let mut store = Store::open(&self.home)?;
            let mut obs = RunEvents { sink: self.sink.as_ref(), run_id, last: None };
            runner::execute_run(&mut store, &self.home, run_id, &mut obs, cancel).map(|_| ())
        }));
        let panic_message = match &work {
            Err(p) => Some(
                p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default(),
            ),
            Ok(_) => None,
        };
        let mut store = self.store();
        if let Some(m) = panic_message {
            // The runner did not get to record an end: record it here, so the run does not stay "running".
            let _ = store.finish_run(run_id, RunStatus::Failed, Some(&format!("internal error: {m}")));
        } else if let Ok(Err(e)) = &work {
            // Failures before the runner could record them (the store would not open): keep the message.
            if store.run(run_id).map(|d| !d.info.status.is_finished()).unwrap_or(false) {
                let _ = store.finish_run(run_id, RunStatus::Failed, Some(&e.to_string()));
            }
        }
        let (status, error) = match store.run(run_id) {
            Ok(d) => (d.info.status, d.info.error),
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        drop(store);
        lock(&self.active).remove(&run_id);
        self.sink.emit(AppEvent::RunFinished { run_id, status, error });
    }

    /// Asks a running run to stop after its current step; it ends `cancelled`, keeping what it recorded.
    pub fn cancel_run(&self, run_id: i64) -> Result<()> {
        match lock(&self.active).get(&run_id) {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
                Ok(())
            }
            None => Err(Error::Invalid(format!("run {run_id} is not running in this window"))),
        }
    }

    /// Ids of the runs this process is running.
    pub fn active_runs(&self) -> Vec<i64> {
        let mut v: Vec<i64> = lock(&self.active).keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn run_data(&self, run_id: i64) -> Result<Arc<RunData>> {
        if let Some(d) = lock(&self.finished_runs).get(&run_id) {
            return Ok(d.clone());
        }
        let store = self.store();
        let data = Arc::new(experiments::report::compare::load_run_data(&store, run_id)?);
        // Only a finished run's data are final.
        if store.run(run_id)?.info.status.is_finished() {
            lock(&self.finished_runs).insert(run_id, data.clone());
        }
        Ok(data)
    }

    fn image_ids(&self, dataset_id: i64) -> Result<HashMap<i64, i64>> {
        Ok(self.dataset_samples(dataset_id)?.iter().map(|s| (s.id, s.image_id)).collect())
    }

    /// The run-detail screen: the record, headline numbers and charts.
    pub fn run_view(&self, run_id: i64) -> Result<RunView> {
        let detail = self.store().run(run_id)?;
        let data = self.run_data(run_id)?;
        let has_scores = !data.samples.is_empty();
        let runs = [(0usize, data.as_ref())];
        let mut charts = Vec::new();
        let wanted: &[Chart] = if has_scores { &Chart::ALL } else { &[Chart::LossSteps, Chart::LossEpochs] };
        for &c in wanted {
            charts.push(ChartSvg { name: c.name().into(), title: c.title().into(), svg: plots::chart_svg(c, &runs)? });
        }
        Ok(RunView {
            summary: has_scores.then(|| analysis::summarize(&data)),
            detail,
            charts,
            colour: plots::palette_hex(0),
        })
    }

    /// A page of a run's samples as cards, sorted and filtered.
    pub fn run_samples(&self, run_id: i64, q: &RunSampleQuery) -> Result<SampleCardPage> {
        let data = self.run_data(run_id)?;
        let dataset_id = self.store().run(run_id)?.info.dataset_id;
        let images = self.image_ids(dataset_id)?;
        let text = q.text.trim().to_lowercase();
        let mut picked: Vec<&SampleResult> = data
            .samples
            .iter()
            .filter(|s| q.split.is_none_or(|sp| s.split == sp))
            .filter(|s| !q.flipped_only || matches!((s.correct(Stage::Before), s.correct(Stage::After)), (Some(a), Some(b)) if a != b))
            .filter(|s| {
                text.is_empty() || s.filename.to_lowercase().contains(&text) || s.choices.iter().any(|c| c.to_lowercase().contains(&text))
            })
            .collect();
        let key = |s: &SampleResult| s.delta().unwrap_or(0.0);
        match q.sort {
            SampleSort::Gain => picked.sort_by(|a, b| key(b).total_cmp(&key(a))),
            SampleSort::Loss => picked.sort_by(|a, b| key(a).total_cmp(&key(b))),
            SampleSort::Hardest => picked.sort_by(|a, b| {
                let p = |s: &SampleResult| s.label_prob(Stage::After).or(s.label_prob(Stage::Before)).unwrap_or(1.0);
                p(a).total_cmp(&p(b))
            }),
            SampleSort::Order => {}
        }
        let total = picked.len();
        let limit = q.limit.clamp(1, MAX_PAGE);
        let items = picked
            .into_iter()
            .skip(q.offset)
            .take(limit)
            .map(|s| SampleCard {
                sample_id: s.sample_id,
                image_id: images.get(&s.sample_id).copied().unwrap_or(-1),
                split: s.split,
                filename: s.filename.clone(),
                choices: s.choices.clone(),
                label: s.label,
                before: s.before.clone(),
                after: s.after.clone(),
                delta: s.delta(),
            })
            .collect();
        Ok(SampleCardPage { total, offset: q.offset, items })
    }

    /// Two or more runs side by side (each run one colour everywhere, in the order given).
    pub fn compare(&self, run_ids: &[i64]) -> Result<CompareView> {
        if run_ids.len() < 2 {
            return Err(Error::Invalid("pick at least two runs to compare".into()));
        }
        let data: Vec<Arc<RunData>> = run_ids.iter().map(|&id| self.run_data(id)).collect::<Result<_>>()?;
        let owned: Vec<RunData> = data.iter().map(|d| (**d).clone()).collect();
        let indexed = plots::indexed(&owned);
        let mut charts = Vec::new();
        for c in [Chart::LossSteps, Chart::LossEpochs, Chart::Metrics, Chart::LabelProbSlope, Chart::Calibration, Chart::Letters] {
            charts.push(ChartSvg { name: c.name().into(), title: c.title().into(), svg: plots::chart_svg(c, &indexed)? });
        }
        let mut runs = Vec::new();
        {
            let store = self.store();
            for (i, d) in owned.iter().enumerate() {
                runs.push(CompareRun { info: store.run(d.id)?.info, summary: analysis::summarize(d), colour: plots::palette_hex(i) });
            }
        }
        let (a, b) = (&owned[0], &owned[1]);
        let flips = analysis::flips_between_runs(a, b, None);
        let images = self.image_ids(runs[0].info.dataset_id)?;
        let find = |r: &RunData, id: i64| r.samples.iter().find(|s| s.sample_id == id).and_then(|s| s.after.clone());
        let mut flip_cards = Vec::new();
        for (gained, list) in [(true, &flips.gained), (false, &flips.lost)] {
            for f in list.iter().take(24) {
                let Some(s) = a.samples.iter().find(|s| s.sample_id == f.sample_id) else { continue };
                let (Some(pa), Some(pb)) = (find(a, f.sample_id), find(b, f.sample_id)) else { continue };
                flip_cards.push(FlipCard {
                    sample_id: f.sample_id,
                    image_id: images.get(&f.sample_id).copied().unwrap_or(-1),
                    split: f.split,
                    filename: f.filename.clone(),
                    choices: s.choices.clone(),
                    label: f.label,
                    probs_a: pa,
                    probs_b: pb,
                    gained,
                });
            }
        }
        Ok(CompareView { runs, charts, diff: analysis::hyperparameter_diff(&owned), flips, flip_cards })
    }

    // ---- export ---------------------------------------------------------------------------------------------

    /// Asks for a folder and copies the run's checkpoint into `<folder>/cliplab-run-<id>`.
    pub fn export_checkpoint(&self, run_id: i64) -> Result<Option<Exported>> {
        let Some(dir) = self.picker.pick_folder(&format!("Export run {run_id}'s fine-tuned checkpoint into…")) else {
            return Ok(None);
        };
        let out = dir.join(format!("cliplab-run-{run_id}"));
        runner::export_checkpoint(&self.store(), run_id, &out)?;
        Ok(Some(Exported { files: list_files(&out), dir: out }))
    }

    /// Asks for a folder and writes the runs' charts (SVG + PNG) and per-sample CSV into
    /// `<folder>/cliplab-runs-<ids>`.
    pub fn export_report(&self, run_ids: &[i64]) -> Result<Option<Exported>> {
        if run_ids.is_empty() {
            return Err(Error::Invalid("no run to export".into()));
        }
        let Some(dir) = self.picker.pick_folder("Export charts and CSV into…") else {
            return Ok(None);
        };
        let ids: Vec<String> = run_ids.iter().map(i64::to_string).collect();
        let out = dir.join(format!("cliplab-runs-{}", ids.join("-")));
        let report = experiments::report::compare::compare_runs(&self.store(), run_ids, &out)?;
        Ok(Some(Exported { dir: out, files: report.files }))
    }

    // ---- images ---------------------------------------------------------------------------------------------

    /// A JPEG thumbnail (longest side `size`) of a stored image, cached under `home/thumbs` by content hash.
    pub fn thumbnail(&self, image_id: i64, size: u32) -> Result<Vec<u8>> {
        let size = size.clamp(32, 1024);
        let img = self.store().image(image_id)?;
        let cache = self.home.join("thumbs").join(format!("{}-{size}.jpg", img.sha256));
        if let Ok(bytes) = std::fs::read(&cache) {
            return Ok(bytes);
        }
        let decoded = image::open(&img.path)
            .map_err(|e| experiments::Error::BadImage { path: img.path.clone(), message: e.to_string() })?;
        let thumb = decoded.thumbnail(size, size).to_rgb8();
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
            .encode_image(&thumb)
            .map_err(|e| experiments::Error::BadImage { path: img.path.clone(), message: e.to_string() })?;
        // Best effort: a cache that cannot be written (full disk) only costs time.
        if let Some(parent) = cache.parent() {
            if std::fs::create_dir_all(parent).is_ok() {
                let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
                if std::fs::write(&tmp, &bytes).is_ok() {
                    let _ = std::fs::rename(&tmp, &cache);
                }
            }
        }
        Ok(bytes)
    }
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// Progress events are many (one per batch): pass at most ~10 a second, and always the last of a phase.
fn throttle(last: &mut Option<Instant>, event: &Event) -> bool {
    if let Event::Progress { done, total, .. } = event {
        let now = Instant::now();
        if done < total && last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
            return false;
        }
        *last = Some(now);
    }
    true
}

struct RunEvents<'a> {
    sink: &'a dyn EventSink,
    run_id: i64,
    last: Option<Instant>,
}

impl Observer for RunEvents<'_> {
    fn on_event(&mut self, event: &Event) {
        if throttle(&mut self.last, event) {
            self.sink.emit(AppEvent::Run { run_id: self.run_id, event: event.clone() });
        }
    }
}

struct ImportEvents<'a> {
    sink: &'a dyn EventSink,
    token: u64,
    last: Option<Instant>,
}

impl Observer for ImportEvents<'_> {
    fn on_event(&mut self, event: &Event) {
        if throttle(&mut self.last, event) {
            self.sink.emit(AppEvent::Import { token: self.token, event: event.clone() });
        }
    }
}
