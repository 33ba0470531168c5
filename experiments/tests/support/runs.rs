//! Synthetic, deterministic runs for the chart tests (`tests/plots.rs`) and the chart tool
//! (`examples/charts.rs`), which include this file with `#[path]`.

use experiments::report::analysis::{RunData, SampleResult};
use experiments::vocab::Split;
use serde_json::json;

/// A small deterministic generator (64-bit LCG), uniform in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn softmax(logits: &[f64]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// Run `id`: `n` samples (every fifth held out), `steps` optimizer steps over `epochs` epochs. How much
/// fine-tuning helps grows with `id`; run 2 learns a bias towards letter B.
pub fn synth_run(id: i64, n: usize, steps: usize, epochs: usize) -> RunData {
    let mut rng = Rng(0x5EED ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let boost = 0.6 + 0.35 * (id % 7) as f64;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let label = ((rng.next() * 5.0) as usize).min(4);
        let split = if i % 5 == 0 { Split::Heldout } else { Split::Train };
        let base: Vec<f64> = (0..5).map(|_| rng.next() * 2.0).collect();
        let before: Vec<f64> = base.iter().enumerate().map(|(c, &b)| b + if c == label { 0.5 } else { 0.0 }).collect();
        let gain = if split == Split::Train { boost } else { boost * 0.5 };
        let after: Vec<f64> = before
            .iter()
            .enumerate()
            .map(|(c, &b)| {
                let noise = (rng.next() - 0.5) * 1.5;
                b + noise + if c == label { gain } else { 0.0 } + if id == 2 && c == 1 { 1.0 } else { 0.0 }
            })
            .collect();
        samples.push(SampleResult {
            sample_id: 1000 + i as i64,
            split,
            label,
            choices: (0..5).map(|c| format!("caption {c} of image {i}")).collect(),
            filename: format!("images/img_{i:05}.jpg"),
            before: Some(softmax(&before)),
            after: Some(softmax(&after)),
        });
    }
    let per_epoch = steps.div_ceil(epochs.max(1)).max(1);
    let step_losses = (0..steps)
        .map(|s| {
            let t = s as f64 / steps.max(1) as f64;
            (s + 1, s / per_epoch + 1, 1.6 * (-t * boost).exp() + 0.2 + (rng.next() - 0.5) * 0.3)
        })
        .collect();
    let epoch_losses = (1..=epochs)
        .map(|e| {
            let t = e as f64 / epochs as f64;
            (e, 1.6 * (-t * boost).exp() + 0.2, Some(1.6 * (-t * boost * 0.6).exp() + 0.35))
        })
        .collect();
    let optimizer = if id % 2 == 0 { "adamw" } else { "adam" };
    let lr = [1e-4, 3e-5, 1e-5][id as usize % 3];
    RunData {
        id,
        label: format!("run {id} · {optimizer} lr {lr:e}"),
        hyperparameters: json!({
            "lr": lr, "epochs": epochs, "batch_size": 16, "optimizer": optimizer, "weight_decay": 0.0,
            "seed": 42, "freeze": {"vision": true, "text": id == 1}
        }),
        step_losses,
        epoch_losses,
        samples,
    }
}

pub fn three_runs() -> Vec<RunData> {
    (0..3).map(|i| synth_run(i + 1, 300, 240, 6)).collect()
}
