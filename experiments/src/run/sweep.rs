//! Sweeps: one spec run over a grid of hyperparameters (`--grid train.lr=1e-5,3e-5 --grid train.epochs=3,5`).
//!
//! [`GridAxis::parse`] reads one axis as typed; [`expand`] makes the cartesian product, one spec per grid point,
//! each checked with [`ExperimentSpec::problems`]; [`create_sweep`] also checks each against the store and the
//! disk and only then records the sweep, its experiments and runs (in the queue, or owned by this process to be
//! run by [`run_sweep`] in the foreground). An unknown key or a bad value is one error naming the key, and
//! records nothing.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::events::{CancelToken, Observer};
use crate::run::runner::{self, RunOutcome};
use crate::run::spec::ExperimentSpec;
use crate::run::store::{NewRun, RunStatus, Store};
use crate::{Error, Result};

/// The most runs one sweep may make (a typo such as a 100-value axis should not queue thousands of runs).
pub const MAX_SWEEP_RUNS: usize = 1000;

/// One swept key with its values, as typed (`train.lr` and `["1e-5", "3e-5"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct GridAxis {
    /// A key of the spec file, dotted (`train.lr`, `freeze.vision`, `sample.seed`).
    pub key: String,
    /// Each value as TOML (`1e-5`, `true`, `3`); a word that is not TOML is a string (`adamw`).
    pub values: Vec<String>,
}

/// The axes of a sweep, in order (the last varies fastest).
pub type Grid = Vec<GridAxis>;

impl GridAxis {
    /// Parses `key=v1,v2,...`.
    pub fn parse(arg: &str) -> Result<GridAxis> {
        let Some((key, values)) = arg.split_once('=') else {
            return Err(Error::Invalid(format!("--grid `{arg}`: write KEY=V1,V2,... (e.g. train.lr=1e-5,3e-5)")));
        };
        let key = key.trim().to_string();
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        if key.is_empty() || values.iter().any(String::is_empty) {
            return Err(Error::Invalid(format!("--grid `{arg}`: a key and one or more values, separated by commas")));
        }
        Ok(GridAxis { key, values })
    }

    /// The JSON value of the `i`th value: its TOML reading, or the text itself.
    fn value(&self, i: usize) -> serde_json::Value {
        let text = &self.values[i];
        toml::from_str::<toml::Table>(&format!("v = {text}"))
            .ok()
            .and_then(|t| t.get("v").cloned())
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or_else(|| serde_json::Value::String(text.clone()))
    }

    /// The last part of the key (`lr` for `train.lr`), for names and labels.
    pub fn short_key(&self) -> &str {
        self.key.rsplit('.').next().unwrap_or(&self.key)
    }
}

/// One grid point: its spec and the value of each axis (as typed), in axis order.
#[derive(Debug, Clone, PartialEq)]
pub struct GridPoint {
    pub spec: ExperimentSpec,
    pub values: Vec<String>,
}

/// How many runs `grid` makes (`None`: more than [`MAX_SWEEP_RUNS`]).
pub fn grid_size(grid: &[GridAxis]) -> Option<usize> {
    grid.iter().try_fold(1usize, |n, a| n.checked_mul(a.values.len())).filter(|&n| n <= MAX_SWEEP_RUNS)
}

/// Expands `spec` over `grid`: one spec per grid point (the last axis varies fastest), each named
/// `<name> · lr=1e-5 epochs=3` and checked with [`ExperimentSpec::problems`].
pub fn expand(spec: &ExperimentSpec, grid: &[GridAxis]) -> Result<Vec<GridPoint>> {
    if grid.is_empty() {
        return Err(Error::Invalid("a sweep needs at least one --grid KEY=V1,V2,...".into()));
    }
    let base = serde_json::to_value(spec)?;
    for (i, axis) in grid.iter().enumerate() {
        if grid[..i].iter().any(|a| a.key == axis.key) {
            return Err(Error::Invalid(format!("--grid `{}`: the key is given twice", axis.key)));
        }
        check_key(&base, &axis.key)?;
        // Each value alone, so that a value of the wrong type is named with its key.
        for (k, text) in axis.values.iter().enumerate() {
            let mut v = base.clone();
            set(&mut v, &axis.key, axis.value(k));
            serde_json::from_value::<ExperimentSpec>(v)
                .map_err(|e| Error::Invalid(format!("--grid `{}={text}`: {e}", axis.key)))?;
        }
    }
    let n = grid_size(grid).ok_or_else(|| {
        Error::Invalid(format!("the grid makes more than {MAX_SWEEP_RUNS} runs; sweep fewer values at once"))
    })?;
    let mut points = Vec::with_capacity(n);
    for index in 0..n {
        let picks = picks(grid, index);
        let mut v = base.clone();
        for (axis, &k) in grid.iter().zip(&picks) {
            set(&mut v, &axis.key, axis.value(k));
        }
        let values: Vec<String> = grid.iter().zip(&picks).map(|(a, &k)| a.values[k].clone()).collect();
        let mut point: ExperimentSpec = serde_json::from_value(v)?;
        let label: Vec<String> = grid.iter().zip(&values).map(|(a, v)| format!("{}={v}", a.short_key())).collect();
        point.name = format!("{} · {}", spec.name, label.join(" "));
        if let Some(p) = point.problems().first() {
            let related = |a: &GridAxis| {
                p.field == a.key || p.field.starts_with(&format!("{}.", a.key)) || a.key.starts_with(&format!("{}.", p.field))
            };
            let at = grid.iter().zip(&values).find(|(a, _)| related(a));
            return Err(Error::Invalid(match at {
                Some((a, v)) => format!("--grid `{}={v}`: {}", a.key, p.message),
                None => format!("grid point {}: {p}", label.join(" ")),
            }));
        }
        points.push(GridPoint { spec: point, values });
    }
    Ok(points)
}

/// The values (as typed) of every grid point, in the order [`expand`] makes them (the last axis fastest).
pub fn expand_values(grid: &[GridAxis]) -> Vec<Vec<String>> {
    let Some(n) = grid_size(grid).filter(|_| !grid.is_empty()) else { return Vec::new() };
    (0..n).map(|index| picks(grid, index).into_iter().zip(grid).map(|(k, a)| a.values[k].clone()).collect()).collect()
}

/// The value index of each axis at grid point `index` (mixed radix: the last axis is the lowest digit).
fn picks(grid: &[GridAxis], index: usize) -> Vec<usize> {
    let mut rest = index;
    let mut picks = vec![0; grid.len()];
    for (a, axis) in grid.iter().enumerate().rev() {
        let len = axis.values.len().max(1);
        picks[a] = rest % len;
        rest /= len;
    }
    picks
}

/// Errors unless `key` names a value of the spec (not a whole table), listing the keys there are.
fn check_key(spec: &serde_json::Value, key: &str) -> Result<()> {
    let found = spec.pointer(&pointer(key));
    if found.is_some_and(|v| !v.is_object()) {
        return Ok(());
    }
    let mut keys = Vec::new();
    leaf_keys(spec, "", &mut keys);
    Err(Error::Invalid(format!("--grid `{key}`: no such key in the spec (keys: {})", keys.join(", "))))
}

fn leaf_keys(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if let Some(o) = v.as_object() {
        for (k, child) in o {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            if child.is_object() {
                leaf_keys(child, &key, out);
            } else {
                out.push(key);
            }
        }
    }
}

fn pointer(key: &str) -> String {
    key.split('.').map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1"))).collect()
}

/// Sets `key` (known to exist: see [`check_key`]) to `value`.
fn set(spec: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    if let Some(slot) = spec.pointer_mut(&pointer(key)) {
        *slot = value;
    }
}

/// A recorded sweep: its id and its runs in grid order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedSweep {
    pub sweep_id: i64,
    pub run_ids: Vec<i64>,
}

/// Expands `spec` over `grid`, checks every grid point as `runner::check_experiment` checks one experiment
/// (dataset, split, device, model folder), then records the sweep (named after the spec) with one experiment
/// and one run per point, in one transaction. `enqueue`: the runs wait in the queue for a worker; otherwise
/// this process owns them, to run them with [`run_sweep`].
pub fn create_sweep(store: &mut Store, spec: &ExperimentSpec, grid: &[GridAxis], enqueue: bool) -> Result<CreatedSweep> {
    let points = expand(spec, grid)?;
    let mut runs = Vec::with_capacity(points.len());
    for p in points {
        let ds = runner::check_experiment(store, &p.spec)
            .map_err(|e| Error::Invalid(format!("grid point {}: {e}", p.spec.name)))?;
        runs.push(NewRun { spec: p.spec, dataset_id: ds.id });
    }
    let grid_json = serde_json::to_value(grid)?;
    let (sweep_id, run_ids) = store.create_sweep(&spec.name, &grid_json, &runs, enqueue)?;
    Ok(CreatedSweep { sweep_id, run_ids })
}

/// Runs a sweep's runs (created by [`create_sweep`] without `enqueue`) one after another, each observed by
/// `observer(run id)`. A failed run does not stop the sweep; a cancel does: the runs not started yet are marked
/// `cancelled`. Returns each run's outcome, in order.
pub fn run_sweep(
    store: &mut Store,
    home: &Path,
    run_ids: &[i64],
    observer: &mut dyn FnMut(i64) -> Box<dyn Observer>,
    cancel: CancelToken,
) -> Result<Vec<(i64, Result<RunOutcome>)>> {
    let mut out = Vec::with_capacity(run_ids.len());
    for &run in run_ids {
        if cancel.is_cancelled() {
            store.finish_run(run, RunStatus::Cancelled, None)?;
            out.push((run, Err(Error::Cancelled)));
            continue;
        }
        let mut obs = observer(run);
        let result = runner::execute_run(store, home, run, &mut *obs, cancel.clone());
        out.push((run, result));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ExperimentSpec {
        let text = "name = \"t\"\ndataset = \"d\"\nmodel = \"/m\"\n[sample]\ntrain = 10\n";
        ExperimentSpec::from_toml(text, None).expect("spec")
    }

    fn axes(args: &[&str]) -> Grid {
        args.iter().map(|a| GridAxis::parse(a).expect("axis")).collect()
    }

    #[test]
    fn the_grid_is_the_cartesian_product_in_order_and_names_each_point() {
        let points = expand(&spec(), &axes(&["train.lr=1e-5,3e-5,1e-4", "train.epochs=3,5"])).expect("expand");
        assert_eq!(points.len(), 6);
        let got: Vec<(f64, usize)> = points.iter().map(|p| (p.spec.train.lr, p.spec.train.epochs)).collect();
        assert_eq!(got, [(1e-5, 3), (1e-5, 5), (3e-5, 3), (3e-5, 5), (1e-4, 3), (1e-4, 5)]);
        assert_eq!(points[3].spec.name, "t · lr=3e-5 epochs=5");
        assert_eq!(points[3].values, ["3e-5", "5"]);
        // Everything else is the base spec's.
        let mut same = points[3].spec.clone();
        same.name = "t".into();
        same.train.lr = spec().train.lr;
        same.train.epochs = spec().train.epochs;
        assert_eq!(same, spec());
        let p = expand(&spec(), &axes(&["freeze.vision=true,false", "train.optimizer=adam,adamw"])).expect("bools");
        assert!(p[0].spec.freeze.vision && !p[2].spec.freeze.vision);
        assert_eq!(p[1].spec.train.optimizer, crate::model::optim::OptimizerKind::AdamW);
    }

    #[test]
    fn unknown_keys_bad_values_and_bad_points_are_one_error_naming_the_key() {
        let err = |args: &[&str]| expand(&spec(), &axes(args)).expect_err("refused").to_string();
        let e = err(&["train.lrr=1e-5"]);
        assert!(e.starts_with("--grid `train.lrr`: no such key") && e.contains("train.lr"), "{e}");
        let e = err(&["train=1"]);
        assert!(e.contains("`train`: no such key"), "a table is no key: {e}");
        let e = err(&["train.epochs=3,abc"]);
        assert!(e.starts_with("--grid `train.epochs=abc`"), "{e}");
        let e = err(&["train.epochs=2.5"]);
        assert!(e.starts_with("--grid `train.epochs=2.5`"), "{e}");
        let e = err(&["train.lr=1e-5,-1"]);
        assert_eq!(e, "--grid `train.lr=-1`: the learning rate must be a positive number");
        let e = err(&["train.epochs=1", "train.epochs=2"]);
        assert!(e.contains("given twice"), "{e}");
        assert!(GridAxis::parse("train.lr").is_err() && GridAxis::parse("train.lr=1,,2").is_err());
        let big: Vec<String> = (0..4).map(|i| format!("sample.seed={}", (0..40).map(|s| (s + i * 40).to_string()).collect::<Vec<_>>().join(","))).collect();
        let mut g = axes(&[&big[0], &big[1]]);
        g[1].key = "train.seed".into();
        assert_eq!(grid_size(&g), None, "1600 runs is over the cap");
        assert!(expand(&spec(), &g).expect_err("too big").to_string().contains("more than"));
    }
}
