//! [`bench_step`]: [`FusedAdam`] against `candle_nn::AdamW` on CLIP-shaped parameters (the
//! `adam_bench` example runs it at ViT-B/32 size).

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use super::{AdamConfig, FusedAdam};
use crate::{Error, Result};

/// Shapes of one CLIP ViT-B/32 vision layer (width 768, MLP 3072): big matrices and many small vectors.
const CLIP_LAYER_SHAPES: &[&[usize]] = &[
    &[768],
    &[768],
    &[768, 768],
    &[768],
    &[768, 768],
    &[768],
    &[768, 768],
    &[768],
    &[768, 768],
    &[768],
    &[768],
    &[768],
    &[3072, 768],
    &[3072],
    &[768, 3072],
    &[768],
];

/// Random f32 CPU parameters totalling `num_params` elements, shaped like CLIP layers (the last one cut short).
fn bench_vars(num_params: usize) -> Result<Vec<Var>> {
    let mut vars = Vec::new();
    let mut left = num_params;
    for shape in CLIP_LAYER_SHAPES.iter().cycle() {
        if left == 0 {
            break;
        }
        let n: usize = shape.iter().product();
        let var = if n <= left {
            Var::rand_f64(-0.05, 0.05, *shape, DType::F32, &Device::Cpu)?
        } else {
            Var::rand_f64(-0.05, 0.05, left, DType::F32, &Device::Cpu)?
        };
        left -= n.min(left);
        vars.push(var);
    }
    Ok(vars)
}

/// Seconds per step of [`FusedAdam`] (AdamW) and of `candle_nn::AdamW` on the CPU, on random parameters
/// totalling `num_params` f32 elements shaped like CLIP layers, with random gradients. Each optimiser takes
/// one untimed warm-up step first; at 151M parameters this needs about 4 GB of memory and takes a while
/// (candle's step is several seconds).
pub fn bench_step(num_params: usize) -> Result<(f64, f64)> {
    use candle_nn::Optimizer;
    if num_params == 0 {
        return Err(Error::Invalid(
            "bench: the number of parameters must be > 0".into(),
        ));
    }
    let vars = bench_vars(num_params)?;
    let mut grads = GradStore::default();
    for var in &vars {
        let g = Tensor::rand(-1e-3f32, 1e-3f32, var.shape(), &Device::Cpu)?;
        grads.insert(var.as_tensor(), g);
    }
    // Fewer timed steps for big models: candle's step takes seconds there.
    let (fused_reps, candle_reps) = if num_params >= 10_000_000 {
        (3, 1)
    } else {
        (10, 5)
    };

    let config = AdamConfig::adamw(1e-4, 0.01);
    let fused_secs = {
        let mut opt = FusedAdam::new(vars.clone(), config)?;
        opt.step(&grads)?;
        let start = Instant::now();
        for _ in 0..fused_reps {
            opt.step(&grads)?;
        }
        start.elapsed().as_secs_f64() / fused_reps as f64
    };
    let candle_secs = {
        let params = candle_nn::ParamsAdamW {
            lr: config.lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
        };
        let mut opt = candle_nn::AdamW::new(vars, params)?;
        opt.step(&grads)?;
        let start = Instant::now();
        for _ in 0..candle_reps {
            opt.step(&grads)?;
        }
        start.elapsed().as_secs_f64() / candle_reps as f64
    };
    Ok((fused_secs, candle_secs))
}
