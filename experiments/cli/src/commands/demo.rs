//! `cliplab demo`: generated data, a tiny CLIP, a fine-tuning run, before/after metrics; no download.

use anyhow::Result;
use experiments::run::demo::{self, DemoOptions};

use super::Ctx;
use crate::output::print_outcome;

/// The demo's defaults with the flags given on the command line; fewer `images` hold out a fifth of them.
pub fn options(epochs: Option<usize>, images: Option<usize>, seed: Option<u64>) -> DemoOptions {
    let mut opts = DemoOptions::default();
    if let Some(e) = epochs {
        opts.epochs = e;
    }
    if let Some(n) = images {
        opts.images = n;
        opts.heldout = n / 5;
    }
    if let Some(s) = seed {
        opts.seed = s;
    }
    opts
}

/// Runs the demo in the home's store and prints the outcome (plus the time taken and the store's path).
pub fn run(opts: &DemoOptions, ctx: &Ctx, json: bool) -> Result<()> {
    let start = std::time::Instant::now();
    let mut progress = ctx.progress(json);
    let mut store = ctx.open()?;
    let out = demo::run_demo(&mut store, &ctx.home, opts, ctx.device(), &mut progress, ctx.cancel.clone())?;
    drop(progress); // the last bar ends before the summary prints
    print_outcome(&out, json)?;
    if !json {
        println!("(chance: 20%; {:.0} s; store: {})", start.elapsed().as_secs_f64(), store.path().display());
    }
    Ok(())
}
