//! Creating and running experiments: the one core API behind `cliplab run`, the desktop app and the demo.
//!
//! A run draws its sample (seeded, grouped by image so the held-out split shares no image with training),
//! scores before, fine-tunes, scores after and saves its checkpoint, recording everything in the store as it
//! goes: a run that fails, is cancelled or is killed keeps what it recorded until then.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::verify_images;
use crate::model::device::{gpu_info, peak_rss_mib, DeviceChoice, Machine};
use crate::model::engine::{ClipBundle, McqSample, Summary};
use crate::events::{CancelToken, Event, Observer, Phase, PhaseClock};
use crate::run::spec::ExperimentSpec;
use crate::run::store::{
    DatasetInfo, RunMetrics, RunRecorder, RunStatus, RunSystem, Store, StoredSample, BUSY_TIMEOUT, STORE_PATIENCE,
};
use crate::vocab::{Split, Stage};
use crate::{Error, Result};

/// Which stored samples a run uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawnSplits {
    pub train: Vec<i64>,
    pub heldout: Vec<i64>,
}

/// Draws `train` + `heldout` samples with `seed`, grouping by image: an image's rows are never on both sides.
pub fn draw_splits(samples: &[StoredSample], train: usize, heldout: usize, seed: u64) -> Result<DrawnSplits> {
    // Checked first, and the vectors below sized by the dataset: the counts are a user's (the app checks them on
    // every keystroke) and must never size an allocation.
    if train.checked_add(heldout).is_none_or(|wanted| wanted > samples.len()) {
        return Err(Error::Invalid(format!(
            "the dataset has {} samples; a split of {train} train + {heldout} held-out samples that share no image \
             does not fit",
            samples.len()
        )));
    }
    let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for s in samples {
        groups.entry(s.image_id).or_default().push(s.id);
    }
    let mut groups: Vec<Vec<i64>> = groups.into_values().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    groups.shuffle(&mut rng);
    for g in &mut groups {
        g.shuffle(&mut rng);
    }
    let mut out = DrawnSplits { train: Vec::with_capacity(train), heldout: Vec::with_capacity(heldout) };
    let mut it = groups.into_iter();
    for g in it.by_ref() {
        if out.train.len() >= train {
            // This group is untouched: it can go to the held-out side.
            take_into(&mut out.heldout, g, heldout);
            break;
        }
        take_into(&mut out.train, g, train);
    }
    for g in it {
        if out.heldout.len() >= heldout {
            break;
        }
        take_into(&mut out.heldout, g, heldout);
    }
    if out.train.len() < train || out.heldout.len() < heldout {
        return Err(Error::Invalid(format!(
            "the dataset has {} samples; a split of {train} train + {heldout} held-out samples that share no image \
             does not fit (got {} + {})",
            samples.len(),
            out.train.len(),
            out.heldout.len()
        )));
    }
    Ok(out)
}

fn take_into(dst: &mut Vec<i64>, group: Vec<i64>, cap: usize) {
    let room = cap.saturating_sub(dst.len());
    dst.extend(group.into_iter().take(room));
}

/// Forwards events to the caller's observer and persists them (queued while another process holds the store);
/// remembers the first store error.
struct Persist<'a> {
    store: &'a mut Store,
    recorder: RunRecorder,
    inner: &'a mut dyn Observer,
    cancel: CancelToken,
    error: Option<Error>,
    /// Optimizer steps seen so far (the step-time figure of [`RunSystem`]).
    steps: usize,
}

impl Observer for Persist<'_> {
    fn on_event(&mut self, event: &Event) {
        if matches!(event, Event::Step { .. }) {
            self.steps += 1;
        }
        if let Err(e) = self.recorder.record(self.store, event) {
            self.error.get_or_insert(e);
        }
        self.inner.on_event(event);
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.inner.cancelled() || self.error.is_some()
    }
}

/// The outcome of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub run_id: i64,
    pub device: String,
    pub metrics: RunMetrics,
    pub checkpoint: Option<PathBuf>,
}

/// Validates `spec` against the store and the disk (see [`check_experiment`]) and records the experiment: a
/// spec that cannot run records nothing.
pub fn create_experiment(store: &mut Store, spec: &ExperimentSpec) -> Result<i64> {
    let ds = check_experiment(store, spec)?;
    store.create_experiment(spec, ds.id)
}

/// Everything that can be known before a run starts, checked without loading the weights: the spec's values,
/// the dataset exists and the split fits it (drawn as the run will draw it), this build supports the device,
/// and the model folder is complete (config, tokenizer, preprocessor, the weights' header and shapes).
/// Returns the dataset.
pub fn check_experiment(store: &Store, spec: &ExperimentSpec) -> Result<DatasetInfo> {
    spec.validate()?;
    let ds = store.dataset(&spec.dataset)?;
    crate::model::device::check_supported(spec.device)?;
    crate::model::engine::check_model_folder(&spec.model)?;
    let samples = store.dataset_samples(ds.id)?;
    draw_splits(&samples, spec.sample.train, spec.sample.heldout, spec.sample.seed)
        .map_err(|e| Error::Invalid(format!("dataset `{}`: {e}", ds.name)))?;
    Ok(ds)
}

/// Runs experiment `experiment_id`: creates a run row and fills it. `cancel` stops it between steps.
pub fn run_experiment(
    store: &mut Store,
    home: &Path,
    experiment_id: i64,
    obs: &mut dyn Observer,
    cancel: CancelToken,
) -> Result<RunOutcome> {
    let run_id = store.create_run(experiment_id)?;
    execute_run(store, home, run_id, obs, cancel)
}

/// Fills run `run_id`, created with [`Store::create_run`] (the desktop app creates the row first, so that it
/// can show the run before it starts). The run ends completed, cancelled or failed, with what it recorded kept.
pub fn execute_run(
    store: &mut Store,
    home: &Path,
    run_id: i64,
    obs: &mut dyn Observer,
    cancel: CancelToken,
) -> Result<RunOutcome> {
    execute_run_on(store, home, run_id, None, obs, cancel)
}

/// [`execute_run`] on `device` when given (a queue worker's device), else on the spec's.
pub fn execute_run_on(
    store: &mut Store,
    home: &Path,
    run_id: i64,
    device: Option<DeviceChoice>,
    obs: &mut dyn Observer,
    cancel: CancelToken,
) -> Result<RunOutcome> {
    let experiment_id = store.run(run_id)?.info.experiment_id;
    obs.on_event(&Event::Info { message: format!("run {run_id} of experiment {experiment_id}") });
    // A run's own writes (splits, scores, its end) wait out another process's write lock as its steps do.
    store.set_busy_timeout(STORE_PATIENCE)?;
    let recorder = RunRecorder::new(run_id);
    let mut persist = Persist { store, recorder, inner: obs, cancel, error: None, steps: 0 };
    let result = execute(&mut persist, home, (experiment_id, run_id), device);
    let flushed = persist.recorder.flush(persist.store);
    let store_error = persist.error.take().or(flushed.err());
    let store = persist.store;
    let result = match (result, store_error) {
        (Err(Error::Cancelled), Some(e)) | (Ok(_), Some(e)) => Err(e),
        (r, _) => r,
    };
    let finished = match &result {
        Ok(_) => store.finish_run(run_id, RunStatus::Completed, None),
        Err(Error::Cancelled) => store.finish_run(run_id, RunStatus::Cancelled, None),
        Err(e) => store.finish_run(run_id, RunStatus::Failed, Some(&e.to_string())),
    };
    store.set_busy_timeout(BUSY_TIMEOUT)?;
    finished?;
    let mut result = result;
    if let Ok(out) = &mut result {
        keep_best(store, out, persist.inner);
    }
    result
}

/// Applies the spec's `keep_best` once run `out` completed. Its failure does not fail the run (its records and
/// checkpoint are whole): it is reported, and `cliplab gc` applies the policy again.
fn keep_best(store: &mut Store, out: &mut RunOutcome, obs: &mut dyn Observer) {
    match crate::run::checkpoint::apply_keep_best(store, out.run_id) {
        Ok(freed) => {
            for f in freed {
                if f.run_id == out.run_id {
                    out.checkpoint = None;
                }
                obs.on_event(&Event::Info {
                    message: format!(
                        "keep_best: run {}'s checkpoint deleted ({} bytes; not among the best)",
                        f.run_id, f.bytes
                    ),
                });
            }
        }
        Err(e) => obs.on_event(&Event::Info { message: format!("keep_best not applied (cliplab gc applies it): {e}") }),
    }
}

/// Exports run `run_id`'s checkpoint to `out` (which must not exist or be empty) as the whole Hugging Face folder
/// (see [`crate::run::checkpoint::export`]): one `model.safetensors`, however the run stored its tensors.
pub fn export_checkpoint(store: &Store, run_id: i64, out: &Path) -> Result<PathBuf> {
    crate::run::checkpoint::export(store, run_id, out)
}

/// Claims the folder run `run_id` writes its files to: `<home>/runs/<id>`, created now, before any work. A run's
/// id is new to its store, so a folder of that name that is already there belongs to no run of this store (it
/// was left by a store deleted with its `runs/` kept): it is never reused or written into. Rather than fail
/// (every later run would meet the next leftover), the run takes the first free `<id>-2`, `<id>-3`, ... and says
/// so; its store records where its checkpoint is.
fn claim_run_dir(home: &Path, run_id: i64, obs: &mut dyn Observer) -> Result<PathBuf> {
    let runs = home.join("runs");
    std::fs::create_dir_all(&runs).map_err(|e| Error::io(&runs, e))?;
    for n in 1..=1000 {
        let dir = if n == 1 { runs.join(run_id.to_string()) } else { runs.join(format!("{run_id}-{n}")) };
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                if n > 1 {
                    obs.on_event(&Event::Info {
                        message: format!(
                            "{} exists but is no run of this store (left by an earlier store?): left as it is; \
                             run {run_id} writes to {}",
                            runs.join(run_id.to_string()).display(),
                            dir.display()
                        ),
                    });
                }
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    Err(Error::Invalid(format!("{}: no free folder for run {run_id} (1000 tried)", runs.display())))
}

/// What a run reads from the store before it starts.
struct Inputs {
    spec: ExperimentSpec,
    dataset: DatasetInfo,
    samples: Vec<StoredSample>,
    splits: DrawnSplits,
}

/// Reads the experiment and its dataset, draws and records the splits, and checks that the images they use are
/// unchanged since import.
fn prepare(p: &mut Persist<'_>, experiment_id: i64, run_id: i64) -> Result<Inputs> {
    let exp = p.store.experiment(experiment_id)?;
    let spec = exp.spec;
    let dataset = p.store.dataset(&exp.dataset_id.to_string())?;
    let samples = p.store.dataset_samples(dataset.id)?;
    let images = p.store.dataset_images(dataset.id)?;

    let splits = draw_splits(&samples, spec.sample.train, spec.sample.heldout, spec.sample.seed)?;
    p.store.record_split(run_id, Split::Train, &splits.train)?;
    p.store.record_split(run_id, Split::Heldout, &splits.heldout)?;

    // Only the images this run uses must be unchanged since import.
    let used: HashSet<i64> = splits.train.iter().chain(&splits.heldout).copied().collect();
    let used_images: HashSet<&str> =
        samples.iter().filter(|s| used.contains(&s.id)).map(|s| s.filename.as_str()).collect();
    let to_check: Vec<_> = images.iter().filter(|i| used_images.contains(i.filename.as_str())).cloned().collect();
    let problems = verify_images(&to_check);
    if let Some(first) = problems.first() {
        return Err(Error::Invalid(format!(
            "dataset `{}`: {} image(s) changed or missing since import; first: {first}",
            dataset.name,
            problems.len()
        )));
    }
    Ok(Inputs { spec, dataset, samples, splits })
}

/// Preprocesses the train and held-out samples, each distinct image once.
fn load_samples(bundle: &ClipBundle, inputs: &Inputs, p: &mut Persist<'_>) -> Result<(Vec<McqSample>, Vec<McqSample>)> {
    let by_id: HashMap<i64, &StoredSample> = inputs.samples.iter().map(|s| (s.id, s)).collect();
    let splits = &inputs.splits;
    let mut pixels: HashMap<i64, Arc<Vec<f32>>> = HashMap::new();
    let used: HashSet<i64> = splits.train.iter().chain(&splits.heldout).copied().collect();
    let mut clock = PhaseClock::start(Phase::Load, used.len(), p);
    let mut build = |ids: &[i64], p: &mut Persist<'_>| -> Result<Vec<McqSample>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let s = by_id.get(id).ok_or_else(|| Error::NotFound {
                what: "sample".into(),
                key: format!("with id {id}"),
                hint: format!(" in dataset `{}`", inputs.dataset.name),
            })?;
            let px = match pixels.get(&s.image_id) {
                Some(px) => px.clone(),
                None => {
                    let px = Arc::new(bundle.load_image(&s.image_path)?);
                    pixels.insert(s.image_id, px.clone());
                    px
                }
            };
            out.push(McqSample::new(px, s.choices.clone(), s.label).map_err(|e| {
                Error::Invalid(format!("{}, row {}: {e}", inputs.dataset.metadata_path.display(), s.row))
            })?);
            clock.tick(p);
        }
        Ok(out)
    };
    let train = build(&splits.train, p)?;
    let heldout = build(&splits.heldout, p)?;
    Ok((train, heldout))
}

/// Scores both splits in `phase` (before or after training), records every score and returns the summaries
/// (held-out: `None` when the split is empty).
fn score_splits(
    bundle: &ClipBundle,
    samples: (&[McqSample], &[McqSample]),
    inputs: &Inputs,
    run_id: i64,
    phase: Phase,
    p: &mut Persist<'_>,
) -> Result<(Summary, Option<Summary>)> {
    let stage = if phase == Phase::ScoreBefore { Stage::Before } else { Stage::After };
    let eval_bs = inputs.spec.train.eval_batch_size.max(1);
    let score = |split: Split, set: &[McqSample], ids: &[i64], p: &mut Persist<'_>| -> Result<Summary> {
        let scores = bundle.score(set, eval_bs, phase, p)?;
        let rows: Vec<_> = ids.iter().copied().zip(scores.iter().cloned()).collect();
        p.store.record_scores(run_id, stage, split, &rows)?;
        Ok(Summary::of(&scores))
    };
    let (train, heldout) = samples;
    let t = score(Split::Train, train, &inputs.splits.train, p)?;
    let h = if heldout.is_empty() { None } else { Some(score(Split::Heldout, heldout, &inputs.splits.heldout, p)?) };
    Ok((t, h))
}

/// Saves the fine-tuned model in the run's folder (only what it changed; see [`crate::run::checkpoint`]), with
/// its provenance, and records the folder.
fn save_checkpoint(
    bundle: &ClipBundle,
    inputs: &Inputs,
    ids: (i64, i64),
    device_name: &str,
    metrics: &RunMetrics,
    (home, run_dir): (&Path, &Path),
    p: &mut Persist<'_>,
) -> Result<PathBuf> {
    let (experiment_id, run_id) = ids;
    let (spec, ds, splits) = (&inputs.spec, &inputs.dataset, &inputs.splits);
    let mut clock = PhaseClock::start(Phase::Export, 1, p);
    let dir = run_dir.join("checkpoint");
    let provenance = serde_json::json!({
        "cliplab_version": env!("CARGO_PKG_VERSION"),
        "run_id": run_id,
        "experiment_id": experiment_id,
        "experiment": spec.name,
        "source_model": spec.model,
        "dataset": { "name": ds.name, "content_hash": ds.content_hash },
        "splits": { "train": splits.train.len(), "heldout": splits.heldout.len(), "seed": spec.sample.seed },
        "hyperparameters": spec.train,
        "freeze": spec.freeze,
        "device": device_name,
        "metrics": metrics,
    });
    crate::run::checkpoint::save(bundle, home, &dir, &provenance)?;
    p.store.set_checkpoint(run_id, &dir)?;
    clock.tick(p);
    Ok(dir)
}

/// `n` per `seconds`, where both are measured.
fn per_second(n: usize, seconds: f64) -> Option<f64> {
    (n > 0 && seconds > 0.0).then(|| n as f64 / seconds)
}

fn execute(
    p: &mut Persist<'_>,
    home: &Path,
    (experiment_id, run_id): (i64, i64),
    device: Option<DeviceChoice>,
) -> Result<RunOutcome> {
    let inputs = prepare(p, experiment_id, run_id)?;
    let spec = &inputs.spec;
    let run_dir = if spec.save_checkpoint { Some(claim_run_dir(home, run_id, p)?) } else { None };
    if let Some(dir) = &run_dir {
        // Recorded before anything is written there: deleting the run removes exactly this folder.
        p.store.set_run_dir(run_id, dir)?;
    }

    let device = crate::model::device::select(device.unwrap_or(spec.device))?;
    let device_name = crate::model::device::device_name(&device);
    p.store.start_run(run_id, &device_name)?;
    p.on_event(&Event::Info { message: format!("device: {device_name}") });

    let config = spec.train_config();
    config.precision.check_device(&device)?;
    let mut bundle = ClipBundle::load(&spec.model, &device, &spec.freeze)?;
    bundle.set_precision(config.precision);
    let (all, trainable) = bundle.params.counts();
    p.on_event(&Event::Info {
        message: format!("model {}: {all} parameters, {trainable} trained ({})", spec.model.display(), spec.freeze.describe()),
    });
    let (train, heldout) = load_samples(&bundle, &inputs, p)?;

    let mut metrics = RunMetrics::default();
    let clock = Instant::now();
    let (tb, hb) = score_splits(&bundle, (&train, &heldout), &inputs, run_id, Phase::ScoreBefore, p)?;
    let score_rate = per_second(train.len() + heldout.len(), clock.elapsed().as_secs_f64());
    metrics.train_before = Some(tb);
    metrics.heldout_before = hb;
    p.store.record_summary(run_id, &metrics)?;

    let held = if heldout.is_empty() { None } else { Some(heldout.as_slice()) };
    let (clock, steps_before) = (Instant::now(), p.steps);
    bundle.train(&train, held, &config, p)?;
    let train_s = clock.elapsed().as_secs_f64();
    let steps = p.steps - steps_before;
    p.store.record_system(
        run_id,
        &RunSystem {
            machine: Machine::current(&device),
            score_images_per_s: score_rate,
            train_step_s: (steps > 0).then(|| train_s / steps as f64),
            train_images_per_s: per_second(train.len() * config.epochs, train_s),
            peak_rss_mib: peak_rss_mib(),
            gpu_memory_mib: gpu_info(&device).map(|(_, mib)| mib),
        },
    )?;

    let (ta, ha) = score_splits(&bundle, (&train, &heldout), &inputs, run_id, Phase::ScoreAfter, p)?;
    metrics.train_after = Some(ta);
    metrics.heldout_after = ha;
    p.store.record_summary(run_id, &metrics)?;

    let checkpoint = match &run_dir {
        Some(dir) => {
            let ids = (experiment_id, run_id);
            Some(save_checkpoint(&bundle, &inputs, ids, &device_name, &metrics, (home, dir), p)?)
        }
        None => None,
    };
    Ok(RunOutcome { run_id, device: device_name, metrics, checkpoint })
}
