//! Human-readable printing shared by several commands: tables of metrics, a run's outcome and details.

use anyhow::Result;
use experiments::run::runner::RunOutcome;
use experiments::run::store::{RunDetail, RunMetrics};

/// `s` cut to `n` characters, the last one `~` when it was longer.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

/// Mean label probability and accuracy, before and after, for the train and held-out splits.
pub fn print_summary_table(m: &RunMetrics) {
    println!("                  mean p(label)        accuracy");
    println!("                  before   after      before   after");
    for (name, b, a) in [("train", m.train_before, m.train_after), ("held-out", m.heldout_before, m.heldout_after)] {
        let Some(b) = b else { continue };
        let (ap, aa) = a.map(|a| (format!("{:>6.3}", a.mean_label_prob), format!("{:>5.1}%", a.accuracy * 100.0)))
            .unwrap_or_else(|| ("     -".into(), "    -".into()));
        println!("{name:<10} {:>5}  {:>6.3}  {ap}     {:>5.1}%  {aa}", b.n, b.mean_label_prob, b.accuracy * 100.0);
    }
}

/// What `run` and `demo` print at the end: the outcome as JSON, or the summary table and checkpoint.
pub fn print_outcome(out: &RunOutcome, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(out)?);
        return Ok(());
    }
    println!();
    println!("run {} completed on {}", out.run_id, out.device);
    print_summary_table(&out.metrics);
    if let Some(c) = &out.checkpoint {
        println!("checkpoint: {}", c.display());
    }
    Ok(())
}

/// `runs show` without `--json`: settings, epoch losses, metrics.
pub fn print_run(d: &RunDetail) {
    let i = &d.info;
    println!("run {}  [{}]  experiment {} `{}`  dataset `{}`", i.id, i.status, i.experiment_id, i.experiment_name, i.dataset_name);
    println!("device {}  started {}  ended {}", i.device.as_deref().unwrap_or("-"), i.started_at.as_deref().unwrap_or("-"), i.ended_at.as_deref().unwrap_or("-"));
    println!(
        "lr {:e}  epochs {}  batch {}  optimizer {}  weight decay {}  seed {}  freeze: {}",
        d.spec.train.lr, d.spec.train.epochs, d.spec.train.batch_size, d.spec.train.optimizer, d.spec.train.weight_decay,
        d.spec.train.seed, d.spec.freeze.describe()
    );
    println!("samples: {} train, {} held-out (seed {})", d.train_ids.len(), d.heldout_ids.len(), d.spec.sample.seed);
    if let Some(e) = &i.error {
        println!("error: {e}");
    }
    if !d.epoch_losses.is_empty() {
        println!("epoch  train loss  held-out loss");
        for e in &d.epoch_losses {
            println!("{:>5}  {:>10.4}  {}", e.epoch, e.train_loss, e.heldout_loss.map(|l| format!("{l:>13.4}")).unwrap_or_else(|| "            -".into()));
        }
    }
    print_summary_table(&i.metrics);
    if let Some(s) = &d.system {
        println!("speed: {}", s.speed_line());
        println!("machine: {}", s.machine_line());
    }
    if let Some(c) = &d.checkpoint {
        println!("checkpoint: {}", c.display());
    }
}

