//! Seconds per optimiser step of [`FusedAdam`](experiments::model::optim::FusedAdam) against
//! `candle_nn::AdamW` on the CPU, at CLIP ViT-B/32 size (151M parameters; about 4 GB of memory, and candle's
//! step takes seconds). Run it in release mode:
//!
//! ```text
//! cargo run --release -p experiments --example adam_bench [NUM_PARAMS]
//! ```

use experiments::model::optim::bench_step;

fn main() -> experiments::Result<()> {
    let num_params = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| experiments::Error::Invalid(format!("NUM_PARAMS must be a count, not `{arg}`")))?,
        None => 151_000_000,
    };
    let (fused, candle) = bench_step(num_params)?;
    println!("{num_params} params: fused {fused:.3} s/step, candle_nn::AdamW {candle:.3} s/step");
    Ok(())
}
