//! Single-precision matrix products at CLIP ViT-B/32's shapes: candle's `matmul` (the `gemm` crate, as the model
//! used it before), `gemm` called with strides (no transposed copies), and OpenBLAS loaded at run time, side by
//! side in GFLOP/s. The figures behind the choice in `docs/performance.md`.
//!
//! `cargo run --release -p experiments --example matmul_shapes [-- REPS]`

use std::time::Instant;

use candle_core::{Device, Tensor};
use experiments::model::blas::{self, Mat};

/// (label, m, k, n, a transposed, b transposed): the forward `x · wᵀ` and the backward's `g · w` and `gᵀ · x`.
const SHAPES: &[(&str, usize, usize, usize, bool, bool)] = &[
    ("vision qkv fwd, 2 img", 100, 768, 768, false, true),
    ("vision mlp up, 2 img", 100, 768, 3072, false, true),
    ("vision mlp down, 2 img", 100, 3072, 768, false, true),
    ("vision qkv fwd, 16 img", 800, 768, 768, false, true),
    ("vision mlp up, 16 img", 800, 768, 3072, false, true),
    ("text mlp up, 10x20 tok", 200, 512, 2048, false, true),
    ("text mlp up, 10x77 tok", 770, 512, 2048, false, true),
    ("text mlp up, 80x20 tok", 1600, 512, 2048, false, true),
    ("bwd dx = g·w, 2 img", 100, 3072, 768, false, false),
    ("bwd dw = gᵀ·x, 2 img", 3072, 100, 768, true, false),
    ("bwd dw = gᵀ·x, 10x77", 2048, 770, 512, true, false),
    ("square 768", 768, 768, 768, false, false),
];

fn best<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> candle_core::Result<()> {
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    println!(
        "threads: {}  OpenBLAS: {}",
        candle_core::utils::get_num_threads(),
        if blas::backend() == blas::Backend::OpenBlas { blas::describe() } else { "not found".into() }
    );
    println!("{:<26} {:>16} {:>10} {:>10} {:>10}", "shape", "m x k x n", "candle", "gemm", "OpenBLAS");
    for &(label, m, k, n, ta, tb) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| ((i % 97) as f32 - 48.0) / 97.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i % 89) as f32 - 44.0) / 89.0).collect();
        let flops = 2.0 * (m * n * k) as f64 / 1e9;
        // candle: stored shapes, then `.t()` views where an operand is read transposed (what the model did).
        let at = if ta { Tensor::from_slice(&a, (k, m), &Device::Cpu)?.t()? } else { Tensor::from_slice(&a, (m, k), &Device::Cpu)? };
        let bt = if tb { Tensor::from_slice(&b, (n, k), &Device::Cpu)?.t()? } else { Tensor::from_slice(&b, (k, n), &Device::Cpu)? };
        let candle = best(reps, || {
            let _ = at.matmul(&bt).map(|c| c.dims().len());
        });
        let mut c = vec![0f32; m * n];
        let gemm = best(reps, || blas::gemm_only(m, n, k, Mat { data: &a, t: ta }, Mat { data: &b, t: tb }, 0.0, &mut c));
        let open = if blas::backend() == blas::Backend::OpenBlas {
            let t = best(reps, || blas::sgemm(m, n, k, Mat { data: &a, t: ta }, Mat { data: &b, t: tb }, 0.0, &mut c));
            format!("{:>10.0}", flops / t)
        } else {
            format!("{:>10}", "-")
        };
        println!("{label:<26} {:>16} {:>10.0} {:>10.0} {open}", format!("{m}x{k}x{n}"), flops / candle, flops / gemm);
    }
    Ok(())
}
