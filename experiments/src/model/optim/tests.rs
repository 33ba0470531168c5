//! Tests of the optimizers: the fused CPU kernel against the tensor path, the update inside the backward pass, threads.
#![allow(clippy::unwrap_used)]
use super::*;

fn flat(v: &Var) -> Vec<f32> {
    v.as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// `f(a i + b)` for `i` in `0..n`, shaped `shape`: deterministic data.
fn wave(n: f32, a: f64, b: f64, f: fn(&Tensor) -> candle_core::Result<Tensor>, shape: &[usize]) -> Tensor {
    let t = Tensor::arange(0f32, n, &Device::Cpu).unwrap().affine(a, b).unwrap();
    f(&t).unwrap().reshape(shape).unwrap()
}

/// Runs `steps` steps of `sum((W x - y)^2) + sum(b^2)` (W large enough to take the threaded path) and
/// returns the final parameters.
fn run(config: AdamConfig, allow_fused: bool, steps: usize) -> (Vec<Vec<f32>>, usize) {
    // Deterministic data, so that both runs of a comparison see the same problem.
    let w0 = wave(150_000., 1e-4, -6.0, Tensor::sin, &[300, 500]);
    let b0 = wave(300., 0.1, 0.0, Tensor::cos, &[300]);
    let x = wave(1500., 0.37, 0.0, Tensor::sin, &[500, 3]);
    let y = wave(900., 0.11, 0.0, Tensor::cos, &[300, 3]);
    let w = Var::from_tensor(&w0).unwrap();
    let b = Var::from_tensor(&b0).unwrap();
    let mut opt = FusedAdam::build(vec![w.clone(), b.clone()], config, allow_fused).unwrap();
    let fused = opt.fused_params();
    for _ in 0..steps {
        let pred = w.as_tensor().matmul(&x).unwrap();
        let loss = (pred - &y).unwrap().sqr().unwrap().sum_all().unwrap();
        let loss = (loss + b.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        opt.backward_step(&loss).unwrap();
    }
    (vec![flat(&w), flat(&b)], fused)
}

#[test]
fn fallback_matches_fused() {
    for config in [
        AdamConfig::adamw(1e-2, 0.1),
        AdamConfig {
            weight_decay: 0.05,
            ..AdamConfig::adam(1e-2)
        },
    ] {
        let (fused, n_fused) = run(config, true, 10);
        let (tensors, n_tensor) = run(config, false, 10);
        assert_eq!(n_fused, 2);
        assert_eq!(n_tensor, 0);
        // Same operations in the same order, in f32: the two paths agree to the last bit.
        assert_eq!(fused, tensors, "{config:?}");
    }
}

/// `backward_step` (each update inside the backward pass) against `backward` then `step`: the same parameters to
/// the last bit after several steps, with one weight read by two ops (its gradient has two parts, so it must not
/// be updated before both are in), one variable the optimiser does not own, and the fused and tensor paths.
#[test]
fn backward_step_matches_backward_then_step() {
    let run = |inside: bool, allow_fused: bool| -> Vec<Vec<f32>> {
        let w = Var::from_tensor(&wave(150_000., 1e-4, -6.0, Tensor::sin, &[300, 500])).unwrap();
        let b = Var::from_tensor(&wave(300., 0.1, 0.0, Tensor::cos, &[300, 1])).unwrap();
        let other = Var::from_tensor(&wave(3., 0.5, 0.1, Tensor::cos, &[3])).unwrap();
        let x = wave(1500., 0.37, 0.0, Tensor::sin, &[500, 3]);
        let y = wave(900., 0.11, 0.0, Tensor::cos, &[300, 3]);
        let mut opt =
            FusedAdam::build(vec![w.clone(), b.clone()], AdamConfig::adamw(1e-2, 0.1), allow_fused).unwrap();
        for _ in 0..4 {
            let pred = w.as_tensor().matmul(&x).unwrap().broadcast_add(b.as_tensor()).unwrap();
            let pred = pred.broadcast_mul(other.as_tensor()).unwrap();
            let fit = (pred - &y).unwrap().sqr().unwrap().sum_all().unwrap();
            let loss = (fit + (w.as_tensor().sqr().unwrap().sum_all().unwrap() * 1e-3).unwrap()).unwrap();
            if inside {
                opt.backward_step(&loss).unwrap();
            } else {
                opt.step(&loss.backward().unwrap()).unwrap();
            }
        }
        assert_eq!(opt.step_count(), 4);
        vec![flat(&w), flat(&b), flat(&other)]
    };
    for allow_fused in [true, false] {
        let inside = run(true, allow_fused);
        assert_eq!(inside, run(false, allow_fused), "fused path allowed: {allow_fused}");
        // The steps moved the owned parameters and not the other variable.
        let start = |t: Tensor| flat(&Var::from_tensor(&t).unwrap());
        assert_ne!(inside[0], start(wave(150_000., 1e-4, -6.0, Tensor::sin, &[300, 500])));
        assert_eq!(inside[2], start(wave(3., 0.5, 0.1, Tensor::cos, &[3])));
    }
}

#[test]
fn threaded_matches_single_thread() {
    let n = 5 * MIN_ELEMS_PER_THREAD + 123;
    let g: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.01).sin()).collect();
    let p0: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.007).cos()).collect();
    let c: Coeffs32 = Coeffs::new(&AdamConfig::adam(1e-3), 1e-3, 1).into();
    let (mut p1, mut m1, mut v1) = (p0.clone(), vec![0.0; n], vec![0.0; n]);
    let (mut p4, mut m4, mut v4) = (p0, vec![0.0; n], vec![0.0; n]);
    fused_update(&mut p1, &g, &mut m1, &mut v1, c, 1);
    fused_update(&mut p4, &g, &mut m4, &mut v4, c, 4);
    assert_eq!(p1, p4);
    assert_eq!(m1, m4);
    assert_eq!(v1, v4);
}

#[test]
fn non_contiguous_gradient_and_f64_fallback() {
    let dev = Device::Cpu;
    // f64 parameters take the tensor path; f32 the fused one. A gradient given transposed is made contiguous.
    let p32 = Var::new(&[[1f32, 2., 3.], [4., 5., 6.]], &dev).unwrap();
    let p64 = Var::new(&[[1f64, 2., 3.], [4., 5., 6.]], &dev).unwrap();
    let mut opt =
        FusedAdam::new(vec![p32.clone(), p64.clone()], AdamConfig::adamw(0.1, 0.0)).unwrap();
    assert_eq!(opt.fused_params(), 1);
    let g = Tensor::new(&[[1f32, -1.], [2., -2.], [3., -3.]], &dev)
        .unwrap()
        .t()
        .unwrap();
    assert!(!g.is_contiguous());
    let mut grads = GradStore::default();
    grads.insert(p32.as_tensor(), g.clone());
    grads.insert(p64.as_tensor(), g.to_dtype(DType::F64).unwrap());
    opt.step(&grads).unwrap();
    // First Adam step moves each element by lr * sign(g) (up to eps).
    let a = p32.to_vec2::<f32>().unwrap();
    let b = p64.to_vec2::<f64>().unwrap();
    let want = [[0.9f64, 1.9, 2.9], [4.1, 5.1, 6.1]];
    for r in 0..2 {
        for c in 0..3 {
            assert!((a[r][c] as f64 - want[r][c]).abs() < 1e-5);
            assert!((b[r][c] - want[r][c]).abs() < 1e-9);
        }
    }
}
