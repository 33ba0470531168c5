//! Tags, notes, archiving and deletion: `cliplab runs tag|untag|note|archive|unarchive|delete`,
//! `cliplab experiment tag|untag|note|delete` and `cliplab dataset delete`.

use anyhow::{bail, Result};
use experiments::run::store::{Deleted, Labelled, Store};

use super::Ctx;
use crate::args::{ExperimentCmd, LabelCmd, RunsCmd};

/// `runs tag|untag|note|delete|archive|unarchive` (`list` and `show` are in `runs`, `delete-checkpoint` in `disk`).
pub fn runs(cmd: RunsCmd, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open()?;
    match cmd {
        RunsCmd::Label(cmd) => label(&mut store, cmd, Labelled::Run)?,
        RunsCmd::Delete { runs, yes } => {
            let plan = store.delete_runs(&runs, yes)?;
            return done(&plan);
        }
        RunsCmd::Archive { runs } => {
            store.set_archived(&runs, true)?;
            println!("archived {} (shown by `runs list --all`)", ids(&runs));
        }
        RunsCmd::Unarchive { runs } => {
            store.set_archived(&runs, false)?;
            println!("unarchived {}", ids(&runs));
        }
        RunsCmd::List { .. } | RunsCmd::Show { .. } | RunsCmd::DeleteCheckpoint { .. } => {
            bail!("handled by `runs` and `disk`")
        }
    }
    Ok(())
}

/// `experiment tag|untag|note|delete`.
pub fn experiment(cmd: ExperimentCmd, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open()?;
    match cmd {
        ExperimentCmd::Label(cmd) => label(&mut store, cmd, Labelled::Experiment)?,
        ExperimentCmd::Delete { id, yes } => {
            let plan = store.delete_experiment(id, yes)?;
            return done(&plan);
        }
        ExperimentCmd::Create { .. } | ExperimentCmd::List { .. } => bail!("handled by `experiment`"),
    }
    Ok(())
}

/// `runs|experiment tag|untag|note`; `on` names what the id is.
fn label(store: &mut Store, cmd: LabelCmd, on: fn(i64) -> Labelled) -> Result<()> {
    match cmd {
        LabelCmd::Tag { id, tag } => set_tag(store, on(id), &tag, true),
        LabelCmd::Untag { id, tag } => set_tag(store, on(id), &tag, false),
        LabelCmd::Note { id, text } => set_note(store, on(id), &text),
    }
}

/// "run 3 tagged `best`", "experiment 2: tag `best` removed".
fn set_tag(store: &mut Store, on: Labelled, tag: &str, add: bool) -> Result<()> {
    store.set_tag(on, tag, add)?;
    if add {
        println!("{on} tagged `{}`", tag.trim());
    } else {
        println!("{on}: tag `{}` removed", tag.trim());
    }
    Ok(())
}

/// `runs|experiment note`.
fn set_note(store: &mut Store, on: Labelled, text: &str) -> Result<()> {
    store.set_note(on, text)?;
    println!("{on}: note saved");
    Ok(())
}

/// `dataset delete`.
pub fn dataset(dataset: &str, with_runs: bool, yes: bool, ctx: &Ctx) -> Result<()> {
    let plan = ctx.open()?.delete_dataset(dataset, with_runs, yes)?;
    done(&plan)
}

/// "run 3" or "runs 3, 4".
fn ids(runs: &[i64]) -> String {
    let list = runs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    if runs.len() == 1 {
        format!("run {list}")
    } else {
        format!("runs {list}")
    }
}

/// Says what was deleted, or (without `--yes`) refuses, naming what would be.
fn done(d: &Deleted) -> Result<()> {
    let list = |what: &str, ids: &[i64]| {
        (!ids.is_empty()).then(|| format!("{what} {}", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")))
    };
    let mut parts: Vec<String> = [list("runs", &d.runs), list("experiments", &d.experiments), list("datasets", &d.datasets)]
        .into_iter()
        .flatten()
        .collect();
    parts.extend(d.folders.iter().map(|f| f.display().to_string()));
    let what = parts.join("; ");
    if !d.applied {
        bail!("would delete {} ({what}); add --yes to delete", d.describe());
    }
    println!("deleted {} ({what})", d.describe());
    Ok(())
}
