//! From the store to the analysis and the charts: what `cliplab compare` / `cliplab plot` and the GUI's compare
//! view use.

use std::collections::{BTreeMap, HashMap};

use crate::analysis::{RunData, SampleResult, Split};
use crate::store::{self, ScorePhase, Store};
use crate::Result;

/// A run's legend name: `run 3 · adamw lr 1e-4`.
pub fn run_label(info: &store::RunInfo) -> String {
    format!("run {} · {} lr {:e}", info.id, info.optimizer, info.lr)
}

/// Everything the analysis and the charts need about one run, read from the store.
pub fn load_run_data(store: &Store, run_id: i64) -> Result<RunData> {
    let detail = store.run(run_id)?;
    let samples: HashMap<i64, store::StoredSample> =
        store.dataset_samples(detail.info.dataset_id)?.into_iter().map(|s| (s.id, s)).collect();
    let mut by_sample: BTreeMap<(u8, usize, i64), SampleResult> = BTreeMap::new();
    let order: HashMap<i64, (u8, usize)> = detail
        .train_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, (0u8, i)))
        .chain(detail.heldout_ids.iter().enumerate().map(|(i, id)| (*id, (1u8, i))))
        .collect();
    for sc in store.run_scores(run_id)? {
        let Some(s) = samples.get(&sc.sample_id) else { continue };
        let (side, pos) = order.get(&sc.sample_id).copied().unwrap_or((2, 0));
        let entry = by_sample.entry((side, pos, sc.sample_id)).or_insert_with(|| SampleResult {
            sample_id: sc.sample_id,
            split: match sc.split {
                store::Split::Train => Split::Train,
                store::Split::Heldout => Split::Heldout,
            },
            label: s.label,
            choices: s.choices.clone(),
            filename: s.filename.clone(),
            before: None,
            after: None,
        });
        match sc.phase {
            ScorePhase::Before => entry.before = Some(sc.probs),
            ScorePhase::After => entry.after = Some(sc.probs),
        }
    }
    let mut hyper = serde_json::to_value(&detail.spec)?;
    if let Some(o) = hyper.as_object_mut() {
        o.remove("notes");
        o.insert("device".into(), serde_json::json!(detail.info.device));
    }
    Ok(RunData {
        id: run_id,
        label: run_label(&detail.info),
        hyperparameters: hyper,
        step_losses: detail.step_losses.iter().map(|s| (s.step, s.epoch, s.loss)).collect(),
        epoch_losses: detail.epoch_losses.iter().map(|e| (e.epoch, e.train_loss, e.heldout_loss)).collect(),
        samples: by_sample.into_values().collect(),
    })
}

/// Loads several runs, in the order given.
pub fn load_runs(store: &Store, ids: &[i64]) -> Result<Vec<RunData>> {
    ids.iter().map(|&id| load_run_data(store, id)).collect()
}
