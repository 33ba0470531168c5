//! Fault injection: `cliplab` killed with SIGKILL at random moments of a dataset import and of a run, then the
//! store is opened and checked. Nothing may be corrupted or lost:
//!
//! - `PRAGMA integrity_check` is `ok` and `PRAGMA foreign_key_check` finds nothing, every time;
//! - no dataset is half imported (each has all its images and samples), and a killed import's name is free again;
//! - every run ends `completed`, `cancelled`, `failed` or `interrupted`, with its steps numbered 1..n (none lost
//!   in the middle); what was stored before a kill (a whole dataset, a completed run's steps, scores and
//!   checkpoint) is unchanged after it;
//! - only completed runs point at a checkpoint, and it loads: nothing a later command trusts is half written.
//!
//! The moments are drawn from a seeded generator (`CLIPLAB_FAULT_SEED` to replay one) over the length of an
//! uninterrupted import or run measured first. The figures (moments tried, stores corrupted, records lost) are
//! printed; run with `--nocapture` to see them.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cliplab_e2e::{cliplab_bin, Dir};
use experiments::data::synth;
use experiments::model::clip::FreezeSpec;
use experiments::model::engine::ClipBundle;
use experiments::model::preprocess::ImageProcessorConfig;
use experiments::run::store::{RunStatus, Store, DB_FILE};

/// Kills per kind of job.
const MOMENTS: usize = 20;
/// The dataset every import imports: images x rows per image.
const IMAGES: usize = 600;
const ROWS_PER_IMAGE: usize = 2;

/// splitmix64: a few lines instead of a dependency for 40 numbers.
struct Moments(u64);

impl Moments {
    fn next_fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Lab {
    dir: Dir,
    home: PathBuf,
    metadata: PathBuf,
    images: PathBuf,
    spec: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let dir = Dir::new();
        let home = dir.path().join("home");
        let data = dir.path().join("data");
        let metadata =
            synth::write_dataset(&data, &synth::caption_contest(IMAGES, 5, ROWS_PER_IMAGE, 128, 11)).expect("dataset");
        let model = dir.path().join("model");
        let cfg = experiments::model::clip::ClipConfig::tiny(synth::vocabulary().len() + 3, 32, 1, 32, 8);
        let tok = serde_json::to_vec(&synth::tiny_tokenizer_json()).expect("tokenizer");
        ClipBundle::write_random(&model, &cfg, tok, ImageProcessorConfig::with_size(32), 1).expect("model");
        let spec = dir.path().join("spec.toml");
        let text = format!(
            "name = \"faults\"\ndataset = \"base\"\nmodel = {model:?}\ndevice = \"cpu\"\n[sample]\ntrain = 60\n\
             heldout = 20\nseed = 3\n[train]\nepochs = 3\nbatch_size = 4\n"
        );
        std::fs::write(&spec, text).expect("spec");
        Lab { images: data.join(synth::IMAGES_DIR), dir, home, metadata, spec }
    }

    fn import_args(&self, name: &str) -> Vec<String> {
        let p = |p: &Path| p.to_str().expect("utf8").to_string();
        vec!["dataset".into(), "import".into(), "--name".into(), name.into(), "--metadata".into(), p(&self.metadata),
             "--images".into(), p(&self.images)]
    }

    fn run_args(&self) -> Vec<String> {
        vec!["run".into(), "--spec".into(), self.spec.to_str().expect("utf8").into()]
    }

    /// Runs `cliplab ARGS` to the end; returns how long it took.
    fn finish(&self, args: &[String]) -> Duration {
        let started = Instant::now();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.dir.cliplab(&args).ok();
        started.elapsed()
    }

    /// Starts `cliplab ARGS` and kills it with SIGKILL after `after`; true if it was still running then.
    fn kill_after(&self, args: &[String], after: Duration) -> bool {
        let mut child = Command::new(cliplab_bin())
            .args(args)
            .current_dir(self.dir.path())
            .env("CLIPLAB_HOME", &self.home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cliplab");
        std::thread::sleep(after);
        let running = child.try_wait().expect("status").is_none();
        // `Child::kill` is SIGKILL on Unix: no handler, no cleanup runs.
        child.kill().expect("kill");
        child.wait().expect("wait");
        running
    }
}

/// What is stored and must never change: per dataset its image and sample counts, per completed run its steps,
/// scores and checkpoint.
#[derive(Debug, Default, PartialEq)]
struct Stored {
    datasets: Vec<(String, i64, i64)>,
    completed: Vec<(i64, usize, usize, PathBuf)>,
}

#[derive(Debug, Default)]
struct Tally {
    moments: usize,
    killed_mid_job: usize,
    corrupted: usize,
    lost: usize,
}

/// Checks the store after a kill (see the module docs); returns what it holds now.
fn check(home: &Path, before: &Stored, tally: &mut Tally, what: &str) -> Stored {
    let db = home.join(DB_FILE);
    {
        let raw = rusqlite::Connection::open(&db).expect("raw connection");
        let integrity: String = raw.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("integrity");
        let fk_problems: i64 =
            raw.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| r.get(0)).expect("fk check");
        if integrity != "ok" || fk_problems != 0 {
            tally.corrupted += 1;
            panic!("{what}: store corrupted: integrity {integrity}, {fk_problems} foreign key problem(s)");
        }
    }
    // Opening recovers the runs whose process was killed.
    let store = Store::open(home).expect("the store opens after a kill");
    let mut now = Stored::default();
    for d in store.datasets().expect("datasets") {
        let images = store.dataset_images(d.id).expect("images").len() as i64;
        let samples = store.dataset_samples(d.id).expect("samples").len() as i64;
        assert_eq!((images, samples), (IMAGES as i64, (IMAGES * ROWS_PER_IMAGE) as i64), "{what}: dataset {} is \
            half imported", d.name);
        now.datasets.push((d.name, images, samples));
    }
    for r in store.runs().expect("runs") {
        let d = store.run(r.id).expect("run");
        assert!(
            matches!(r.status, RunStatus::Completed | RunStatus::Cancelled | RunStatus::Failed | RunStatus::Interrupted),
            "{what}: run {} left {}",
            r.id,
            r.status
        );
        let steps: Vec<usize> = d.step_losses.iter().map(|s| s.step).collect();
        assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>(), "{what}: run {} has a gap in its steps", r.id);
        match (&r.status, &d.checkpoint) {
            (RunStatus::Completed, Some(ckpt)) => {
                ClipBundle::load(ckpt, &candle_core::Device::Cpu, &FreezeSpec::default())
                    .unwrap_or_else(|e| panic!("{what}: run {}'s checkpoint does not load: {e}", r.id));
                let scores = store.run_scores(r.id).expect("scores").len();
                now.completed.push((r.id, steps.len(), scores, ckpt.clone()));
            }
            (RunStatus::Completed, None) => panic!("{what}: completed run {} has no checkpoint", r.id),
            (_, Some(ckpt)) => panic!("{what}: run {} ({}) points at checkpoint {}", r.id, r.status, ckpt.display()),
            (_, None) => {}
        }
    }
    for d in &before.datasets {
        if !now.datasets.contains(d) {
            tally.lost += 1;
        }
    }
    for c in &before.completed {
        if !now.completed.contains(c) {
            tally.lost += 1;
        }
    }
    assert_eq!(tally.lost, 0, "{what}: stored records lost or changed\nbefore: {before:?}\nnow: {now:?}");
    now
}

#[test]
fn sigkill_at_random_moments_of_imports_and_runs_corrupts_and_loses_nothing() {
    let seed = std::env::var("CLIPLAB_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_201);
    let mut moments = Moments(seed);
    let lab = Lab::new();
    let mut tally = Tally::default();

    // Uninterrupted first: a dataset, a completed run, and how long each job takes.
    let import_time = lab.finish(&lab.import_args("base"));
    let run_time = lab.finish(&lab.run_args());
    let mut stored = check(&lab.home, &Stored::default(), &mut tally, "before any kill");
    assert_eq!((stored.datasets.len(), stored.completed.len()), (1, 1));

    for i in 0..MOMENTS {
        let name = format!("killed-{i}");
        let after = import_time.mul_f64(1.1 * moments.next_fraction());
        tally.killed_mid_job += usize::from(lab.kill_after(&lab.import_args(&name), after));
        tally.moments += 1;
        stored = check(&lab.home, &stored, &mut tally, &format!("import {name} killed after {after:?}"));
    }
    for i in 0..MOMENTS {
        let after = run_time.mul_f64(1.1 * moments.next_fraction());
        tally.killed_mid_job += usize::from(lab.kill_after(&lab.run_args(), after));
        tally.moments += 1;
        stored = check(&lab.home, &stored, &mut tally, &format!("run {i} killed after {after:?}"));
    }

    // Nothing left behind that a later command trusts: a killed import's name imports, and a run completes.
    let again = (0..MOMENTS).map(|i| format!("killed-{i}")).find(|n| !stored.datasets.iter().any(|d| &d.0 == n));
    if let Some(name) = again {
        lab.finish(&lab.import_args(&name));
    }
    lab.finish(&lab.run_args());
    let last = check(&lab.home, &stored, &mut tally, "after the kills");
    assert_eq!(last.completed.len(), stored.completed.len() + 1, "the last run completed");

    println!(
        "fault injection (seed {seed}): {} moments tried ({} while the job was running; import {:.2} s, run {:.2} s \
         uninterrupted), {} stores corrupted, {} records lost",
        tally.moments,
        tally.killed_mid_job,
        import_time.as_secs_f64(),
        run_time.as_secs_f64(),
        tally.corrupted,
        tally.lost
    );
    assert!(tally.killed_mid_job >= MOMENTS, "most kills must land while a job runs: {tally:?}");
}
