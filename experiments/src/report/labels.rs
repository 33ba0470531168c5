//! Run labels for legends and tables, by what differs between the runs shown together: fifty runs that differ
//! only in their sample seed are `run 7 · seed=3`, `run 8 · seed=4`, ..., not fifty "adamw lr 1e-3". A run's
//! tags follow its label; experiment names are shown where they differ (sweep points' generated names, which
//! only repeat the swept values, are not).

use serde_json::Value;

use crate::report::analysis::{format_value, json_diff};

/// At most this many differing keys are named in one label; more end in `…`.
const MAX_KEYS: usize = 4;

/// What a label is made from: the run's id, its hyperparameters (`compare::run_hyperparameters`) and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelInput<'a> {
    pub id: i64,
    pub hyperparameters: &'a Value,
    pub tags: &'a [String],
}

/// One label per run, in order: `run <id> · <what differs> [<tags>]`. The keys are named by their last part
/// (`sample.seed` → `seed`) unless two of them share it. `None` where there is nothing to tell the runs apart
/// by (a single run, or identical settings and no tags): the caller keeps its own label.
pub fn labels_by_difference(runs: &[LabelInput<'_>]) -> Vec<Option<String>> {
    if runs.len() < 2 {
        return vec![None; runs.len()];
    }
    let specs: Vec<&Value> = runs.iter().map(|r| r.hyperparameters).collect();
    let diff = json_diff(&specs);
    let (names, keys): (Vec<_>, Vec<_>) = diff.into_iter().partition(|d| d.key == "name");
    let short = |key: &str| -> String {
        let last = key.rsplit('.').next().unwrap_or(key);
        let shared = keys.iter().filter(|d| d.key.rsplit('.').next() == Some(last)).count() > 1;
        if shared { key.to_string() } else { last.to_string() }
    };
    // A sweep point's name is `<spec name> · lr=1e-5 ...`: it only repeats the swept values.
    let show_names = names.first().is_some_and(|n| {
        keys.is_empty() || !n.values.iter().flatten().all(|v| v.as_str().is_some_and(|s| s.contains(" · ")))
    });
    runs.iter()
        .enumerate()
        .map(|(i, r)| {
            let mut parts: Vec<String> = Vec::new();
            if show_names {
                parts.extend(names.iter().map(|n| format_value(n.values.get(i).and_then(Option::as_ref))));
            }
            let mut kv: Vec<String> = keys
                .iter()
                .take(MAX_KEYS)
                .map(|d| format!("{}={}", short(&d.key), format_value(d.values.get(i).and_then(Option::as_ref))))
                .collect();
            if keys.len() > MAX_KEYS {
                kv.push("…".into());
            }
            if !kv.is_empty() {
                parts.push(kv.join(" "));
            }
            if !r.tags.is_empty() {
                parts.push(format!("[{}]", r.tags.join(", ")));
            }
            (!parts.is_empty()).then(|| format!("run {} · {}", r.id, parts.join(" · ")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(name: &str, seed: u64, lr: f64) -> Value {
        json!({ "name": name, "sample": { "seed": seed, "train": 10 }, "train": { "lr": lr, "seed": 42 } })
    }

    fn label(specs: &[Value], tags: &[Vec<String>]) -> Vec<Option<String>> {
        let inputs: Vec<LabelInput<'_>> = specs
            .iter()
            .zip(tags)
            .enumerate()
            .map(|(i, (s, t))| LabelInput { id: i as i64 + 1, hyperparameters: s, tags: t })
            .collect();
        labels_by_difference(&inputs)
    }

    #[test]
    fn runs_that_differ_only_in_their_seed_are_named_by_it() {
        let specs: Vec<Value> = (0..3).map(|s| spec("base", s, 1e-3)).collect();
        let got = label(&specs, &[vec![], vec![], vec!["best".into()]]);
        assert_eq!(
            got,
            [Some("run 1 · seed=0".into()), Some("run 2 · seed=1".into()), Some("run 3 · seed=2 · [best]".into())]
        );
    }

    #[test]
    fn shared_key_names_are_spelled_out_sweep_names_are_dropped_and_user_names_kept() {
        let mut a = spec("t · lr=0.001", 1, 1e-3);
        let mut b = spec("t · lr=0.0001", 1, 1e-4);
        let got = label(&[a.clone(), b.clone()], &[vec![], vec![]]);
        assert_eq!(got, [Some("run 1 · lr=0.001".into()), Some("run 2 · lr=0.0001".into())]);
        a["train"]["seed"] = json!(1);
        b["sample"]["seed"] = json!(2);
        let got = label(&[a, b], &[vec![], vec![]]);
        assert_eq!(got[0].as_deref(), Some("run 1 · sample.seed=1 lr=0.001 train.seed=1"));
        let got = label(&[spec("baseline", 1, 1e-3), spec("frozen", 1, 1e-3)], &[vec![], vec![]]);
        assert_eq!(got, [Some("run 1 · baseline".into()), Some("run 2 · frozen".into())]);
        assert_eq!(label(&[spec("x", 1, 1e-3)], &[vec![]]), [None], "one run: the caller's label");
    }
}
