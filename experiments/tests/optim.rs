//! Tests of the fused Adam / AdamW against `candle_nn::AdamW` and PyTorch reference values.
#![allow(clippy::unwrap_used)]

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use experiments::model::optim::{bench_step, AdamConfig, FusedAdam, OptimizerKind};
use experiments::Error;
use rand::{Rng, SeedableRng};

/// Deterministic uniform values in [-1, 1).
fn tensor(seed: u64, shape: &[usize]) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest `|a - b| / max(|a|, |b|, floor)` over all elements.
fn max_rel_diff(a: &[f32], b: &[f32], floor: f32) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(floor))
        .fold(0.0, f32::max)
}

/// Largest `|a - b|` relative to the largest magnitude in the tensor: an element that came close to 0 keeps
/// the rounding error it picked up while it was large, so element-wise relative errors mean little there.
fn max_scaled_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().chain(b).fold(0f32, |m, x| m.max(x.abs()));
    max_rel_diff(a, b, scale)
}

/// A small model: a linear layer `W x + b` fit to targets by least squares, plus a large matrix (big enough
/// for the threaded path) pulled towards far-away targets. Fresh vars with the same initial values every call.
///
/// The large matrix has an element-wise loss on purpose: a least-squares fit of many inputs has gradients that
/// are small differences of large sums, where the last-bit differences between two correct optimisers grow
/// (tried: after 2 steps at lr 0.05 one gradient element differed by 3e-3 relative). That tests the loss, not
/// the optimiser.
struct Problem {
    vars: Vec<Var>,
    x: Tensor,
    y: Tensor,
    target2: Tensor,
}

impl Problem {
    fn new() -> Self {
        let w = Var::from_tensor(&tensor(1, &[16, 8])).unwrap();
        let b = Var::from_tensor(&tensor(2, &[16])).unwrap();
        let w2 = Var::from_tensor(&(tensor(3, &[512, 300]) * 0.1).unwrap()).unwrap();
        Self {
            vars: vec![w, b, w2],
            x: tensor(4, &[8, 5]),
            y: tensor(5, &[16, 5]),
            target2: (tensor(6, &[512, 300]) + 3.0).unwrap(),
        }
    }

    fn loss(&self) -> Tensor {
        let [w, b, w2] = [&self.vars[0], &self.vars[1], &self.vars[2]].map(|v| v.as_tensor());
        let pred = w
            .matmul(&self.x)
            .unwrap()
            .broadcast_add(&b.unsqueeze(1).unwrap())
            .unwrap();
        let l1 = (pred - &self.y).unwrap().sqr().unwrap().sum_all().unwrap();
        let l2 = (w2 - &self.target2)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        (l1 + l2).unwrap()
    }

    fn values(&self) -> Vec<Vec<f32>> {
        self.vars.iter().map(|v| flat(v.as_tensor())).collect()
    }
}

#[test]
fn adamw_matches_candle_nn_adamw() {
    for (lr, wd) in [(1e-3, 0.01), (1e-2, 0.1), (5e-2, 0.0)] {
        let ours = Problem::new();
        let theirs = Problem::new();
        let mut fused = FusedAdam::new(ours.vars.clone(), AdamConfig::adamw(lr, wd)).unwrap();
        let params = ParamsAdamW {
            lr,
            weight_decay: wd,
            ..ParamsAdamW::default()
        };
        let mut reference = candle_nn::AdamW::new(theirs.vars.clone(), params).unwrap();
        for _ in 0..20 {
            fused.backward_step(&ours.loss()).unwrap();
            reference.backward_step(&theirs.loss()).unwrap();
        }
        assert_eq!(fused.step_count(), 20);
        for (i, (a, b)) in ours.values().iter().zip(theirs.values()).enumerate() {
            let d = max_scaled_diff(a, &b);
            assert!(
                d < 1e-6,
                "lr {lr} wd {wd}: var {i} differs by {d:e} (relative)"
            );
        }
    }
}

#[test]
fn adam_without_weight_decay_equals_adamw_without_weight_decay() {
    let a = Problem::new();
    let b = Problem::new();
    let mut adam = FusedAdam::new(a.vars.clone(), AdamConfig::adam(1e-2)).unwrap();
    let mut adamw = FusedAdam::new(b.vars.clone(), AdamConfig::adamw(1e-2, 0.0)).unwrap();
    for _ in 0..10 {
        adam.backward_step(&a.loss()).unwrap();
        adamw.backward_step(&b.loss()).unwrap();
    }
    assert_eq!(a.values(), b.values());
}

/// Three steps on a 2x3 parameter with the gradient `p^2 / 2 - c`, given directly.
fn three_steps(config: AdamConfig) -> Vec<Vec<f32>> {
    let dev = Device::Cpu;
    let p = Var::new(&[[1f32, -2., 3.], [0.5, -0.25, 4.]], &dev).unwrap();
    let c = Tensor::new(&[[0.1f32, 0.2, 0.3], [0.4, 0.5, 0.6]], &dev).unwrap();
    let mut opt = FusedAdam::new(vec![p.clone()], config).unwrap();
    for _ in 0..3 {
        let g = ((p.as_tensor().sqr().unwrap() * 0.5).unwrap() - &c).unwrap();
        let mut grads = GradStore::default();
        grads.insert(p.as_tensor(), g);
        opt.step(&grads).unwrap();
    }
    p.to_vec2::<f32>().unwrap()
}

fn assert_close_2d(got: &[Vec<f32>], want: [[f32; 3]; 2], what: &str) {
    for (g, w) in got.iter().zip(want.iter()) {
        let d = max_rel_diff(g, w, 1e-2);
        assert!(
            d < 1e-6,
            "{what}: got {got:?}, want {want:?} (relative difference {d:e})"
        );
    }
}

/* Reference values from PyTorch 2.15 (CPU, float32):

import torch
c = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
def run(opt_cls, **kw):
    p = torch.tensor([[1.0, -2.0, 3.0], [0.5, -0.25, 4.0]], requires_grad=True)
    opt = opt_cls([p], **kw)
    for _ in range(3):
        p.grad = p.detach() ** 2 * 0.5 - c
        opt.step()
    print(opt_cls.__name__, kw, [[float(x) for x in row] for row in p.detach()])
run(torch.optim.Adam, lr=0.1, weight_decay=0.3)
run(torch.optim.Adam, lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1)
run(torch.optim.AdamW, lr=0.1, weight_decay=0.3)

Adam {'lr': 0.1, 'weight_decay': 0.3}
  [[0.7037906646728516, -2.300461530685425, 2.700838327407837], [0.7309259176254272, 0.04972226917743683, 3.7006077766418457]]
Adam {'lr': 0.1, 'betas': (0.8, 0.95), 'eps': 0.001, 'weight_decay': 0.1}
  [[0.707127034664154, -2.300994396209717, 2.7014079093933105], [0.7850819230079651, 0.04958263039588928, 3.701011896133423]]
AdamW {'lr': 0.1, 'weight_decay': 0.3}
  [[0.6312339305877686, -2.1167595386505127, 2.449190378189087], [0.7436073422431946, 0.06319157779216766, 3.3614695072174072]]
*/
/// Adam (with L2 weight decay, and with other betas and eps) and AdamW match the PyTorch values above.
#[test]
fn adam_and_adamw_match_torch() {
    let cases = [
        (
            AdamConfig { weight_decay: 0.3, ..AdamConfig::adam(0.1) },
            [[0.703_790_66, -2.300_461_5, 2.700_838_3], [0.730_925_9, 0.049_722_27, 3.700_607_8]],
            "Adam wd 0.3",
        ),
        (
            AdamConfig { kind: OptimizerKind::Adam, lr: 0.1, beta1: 0.8, beta2: 0.95, eps: 1e-3, weight_decay: 0.1 },
            [[0.707_127_03, -2.300_994_4, 2.701_408], [0.785_081_9, 0.049_582_63, 3.701_012]],
            "Adam betas (0.8, 0.95) eps 1e-3 wd 0.1",
        ),
        (
            AdamConfig::adamw(0.1, 0.3),
            [[0.631_233_9, -2.116_759_5, 2.449_190_4], [0.743_607_3, 0.063_191_58, 3.361_469_5]],
            "AdamW wd 0.3",
        ),
    ];
    for (config, want, what) in cases {
        assert_close_2d(&three_steps(config), want, what);
    }
}

#[test]
fn vars_without_gradient_are_untouched_and_do_not_advance() {
    let dev = Device::Cpu;
    let a = Var::new(&[1f32, 2., 3.], &dev).unwrap();
    let b = Var::new(&[4f32, 5., 6.], &dev).unwrap();
    let config = AdamConfig::adamw(0.1, 0.01);
    let mut opt = FusedAdam::new(vec![a.clone(), b.clone()], config).unwrap();

    // The loss only involves `a`: `b` has no gradient.
    for _ in 0..3 {
        let loss = a.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.backward_step(&loss).unwrap();
    }
    assert_eq!(opt.step_count(), 3);
    assert_eq!(b.to_vec1::<f32>().unwrap(), [4., 5., 6.]);
    assert_ne!(a.to_vec1::<f32>().unwrap(), [1., 2., 3.]);

    // `b`'s first real step is a first step (bias corrections at t = 1), as for a fresh optimiser.
    let fresh = Var::new(&[4f32, 5., 6.], &dev).unwrap();
    let mut fresh_opt = FusedAdam::new(vec![fresh.clone()], config).unwrap();
    let grad = Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
    let mut grads = GradStore::default();
    grads.insert(b.as_tensor(), grad.clone());
    opt.step(&grads).unwrap();
    let mut fresh_grads = GradStore::default();
    fresh_grads.insert(fresh.as_tensor(), grad);
    fresh_opt.step(&fresh_grads).unwrap();
    assert_eq!(b.to_vec1::<f32>().unwrap(), fresh.to_vec1::<f32>().unwrap());
    assert_eq!(opt.step_count(), 4);

    // An empty gradient store changes nothing.
    let before = (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
    opt.step(&GradStore::default()).unwrap();
    assert_eq!(
        before,
        (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap())
    );
}

fn invalid(config: AdamConfig) -> String {
    let var = Var::new(&[1f32], &Device::Cpu).unwrap();
    match FusedAdam::new(vec![var], config) {
        Err(Error::Invalid(msg)) => msg,
        Err(e) => panic!("expected Error::Invalid, got {e}"),
        Ok(_) => panic!("config {config:?} was accepted"),
    }
}

#[test]
fn invalid_configs_give_readable_errors() {
    let base = AdamConfig::adamw(1e-3, 0.01);
    for (config, words) in [
        (
            AdamConfig { lr: 0.0, ..base },
            "learning rate must be a positive",
        ),
        (AdamConfig { lr: -1e-3, ..base }, "learning rate"),
        (
            AdamConfig {
                lr: f64::NAN,
                ..base
            },
            "learning rate",
        ),
        (
            AdamConfig {
                lr: f64::INFINITY,
                ..base
            },
            "learning rate",
        ),
        (
            AdamConfig { beta1: 1.0, ..base },
            "beta1 must be in [0, 1), got 1",
        ),
        (
            AdamConfig {
                beta1: -0.1,
                ..base
            },
            "beta1",
        ),
        (AdamConfig { beta2: 1.5, ..base }, "beta2 must be in [0, 1)"),
        (
            AdamConfig {
                beta2: f64::NAN,
                ..base
            },
            "beta2",
        ),
        (AdamConfig { eps: 0.0, ..base }, "eps must be a positive"),
        (
            AdamConfig {
                weight_decay: -0.01,
                ..base
            },
            "weight decay must be",
        ),
        (
            AdamConfig {
                weight_decay: f64::NAN,
                ..base
            },
            "weight decay",
        ),
    ] {
        let msg = invalid(config);
        assert!(msg.contains(words), "{msg:?} does not say {words:?}");
        assert!(msg.starts_with("adamw optimizer: "), "{msg:?}");
    }
    assert!(invalid(AdamConfig::adam(0.0)).starts_with("adam optimizer: learning rate"));
    assert!(AdamConfig::adam(1e-3).validate().is_ok());
    // beta1 = 0 is allowed (no momentum), as in PyTorch.
    assert!(AdamConfig { beta1: 0.0, ..base }.validate().is_ok());
}

#[test]
fn bad_learning_rate_or_gradient_at_step_time() {
    let dev = Device::Cpu;
    let p = Var::new(&[1f32, 2.], &dev).unwrap();
    let q = Var::new(&[3f32, 4.], &dev).unwrap();
    let mut opt = FusedAdam::new(vec![q.clone(), p.clone()], AdamConfig::adam(1e-3)).unwrap();

    // A gradient of the wrong shape fails the step before any parameter moves.
    let mut grads = GradStore::default();
    grads.insert(q.as_tensor(), Tensor::new(&[1f32, 1.], &dev).unwrap());
    grads.insert(p.as_tensor(), Tensor::new(&[1f32, 2., 3.], &dev).unwrap());
    match opt.step(&grads) {
        Err(Error::Invalid(msg)) => assert!(
            msg.contains("shape [3]") && msg.contains("shape [2]"),
            "{msg}"
        ),
        other => panic!("expected a shape error, got {other:?}"),
    }
    assert_eq!(q.to_vec1::<f32>().unwrap(), [3., 4.]);
    assert_eq!(opt.step_count(), 0);

    opt.set_learning_rate(-1.0);
    let loss = p.as_tensor().sum_all().unwrap();
    match opt.backward_step(&loss) {
        Err(Error::Invalid(msg)) => assert!(msg.contains("learning rate"), "{msg}"),
        other => panic!("expected a learning-rate error, got {other:?}"),
    }
    assert_eq!(p.to_vec1::<f32>().unwrap(), [1., 2.]);

    // lr = 0 (start of a warm-up) is a valid no-op step.
    opt.set_learning_rate(0.0);
    opt.backward_step(&loss).unwrap();
    assert_eq!(p.to_vec1::<f32>().unwrap(), [1., 2.]);
}

#[test]
fn loss_decreases_on_linear_regression() {
    // y = 3 x1 + x2 - 2
    let dev = Device::Cpu;
    let xs = Tensor::new(&[[2f32, 1.], [7., 4.], [-4., 12.], [5., 8.]], &dev).unwrap();
    let w_gen = Tensor::new(&[[3f32], [1.]], &dev).unwrap();
    let ys = (xs.matmul(&w_gen).unwrap() - 2.0).unwrap();
    for config in [AdamConfig::adam(0.1), AdamConfig::adamw(0.1, 0.0)] {
        let w = Var::zeros((2, 1), DType::F32, &dev).unwrap();
        let b = Var::zeros(1, DType::F32, &dev).unwrap();
        let mut opt = FusedAdam::new(vec![w.clone(), b.clone()], config).unwrap();
        let loss = || {
            let pred = xs
                .matmul(w.as_tensor())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap();
            (pred - &ys).unwrap().sqr().unwrap().mean_all().unwrap()
        };
        let first = loss().to_scalar::<f32>().unwrap();
        for _ in 0..500 {
            opt.backward_step(&loss()).unwrap();
        }
        let last = loss().to_scalar::<f32>().unwrap();
        assert!(
            last < first * 1e-3,
            "{:?}: loss {first} -> {last}",
            config.kind
        );
        let w = w.to_vec2::<f32>().unwrap();
        assert!(
            (w[0][0] - 3.0).abs() < 0.1 && (w[1][0] - 1.0).abs() < 0.1,
            "{w:?}"
        );
    }
}

#[test]
fn config_defaults_and_serde() {
    let d = AdamConfig::default();
    assert_eq!(d, AdamConfig::adam(1e-4));
    assert_eq!(d.kind, OptimizerKind::Adam);
    assert_eq!(
        (d.beta1, d.beta2, d.eps, d.weight_decay),
        (0.9, 0.999, 1e-8, 0.0)
    );
    let w = AdamConfig::adamw(1e-3, 0.01);
    assert_eq!(w.kind, OptimizerKind::AdamW);
    assert_eq!(
        (w.lr, w.beta1, w.beta2, w.eps, w.weight_decay),
        (1e-3, 0.9, 0.999, 1e-8, 0.01)
    );

    let json = serde_json::to_string(&w).unwrap();
    assert!(json.contains("\"kind\":\"adamw\""), "{json}");
    let back: AdamConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w);
    let kind: OptimizerKind = serde_json::from_str("\"adam\"").unwrap();
    assert_eq!(kind, OptimizerKind::Adam);
}

#[test]
fn learning_rate_accessors() {
    let p = Var::new(&[1f32], &Device::Cpu).unwrap();
    let mut opt = FusedAdam::new(vec![p], AdamConfig::adamw(1e-3, 0.01)).unwrap();
    assert_eq!(opt.learning_rate(), 1e-3);
    opt.set_learning_rate(5e-4);
    assert_eq!(opt.learning_rate(), 5e-4);
    assert_eq!(opt.config().lr, 5e-4);
    assert_eq!(opt.step_count(), 0);
}

#[test]
fn bench_step_runs_small() {
    let (fused, candle) = bench_step(300_000).unwrap();
    assert!(fused.is_finite() && fused > 0.0, "{fused}");
    assert!(candle.is_finite() && candle > 0.0, "{candle}");
    assert!(matches!(bench_step(0), Err(Error::Invalid(_))));
}

#[test]
fn half_precision_params_take_the_tensor_path_with_f32_moments() {
    let dev = Device::Cpu;
    for dtype in [DType::BF16, DType::F16] {
        let p = Var::from_tensor(
            &Tensor::new(&[1f32, 2., -3.], &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap();
        let mut opt = FusedAdam::new(vec![p.clone()], AdamConfig::adamw(0.25, 0.0)).unwrap();
        for _ in 0..2 {
            let loss = p
                .as_tensor()
                .to_dtype(DType::F32)
                .unwrap()
                .sum_all()
                .unwrap();
            opt.backward_step(&loss).unwrap();
        }
        assert_eq!(p.dtype(), dtype);
        // Two steps of size lr against a constant gradient of 1.
        let got = p
            .as_tensor()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(got, [0.5, 1.5, -3.5], "{dtype:?}");
    }
}

#[test]
fn gradient_sharing_the_parameter_storage() {
    // A gradient that is the parameter's own tensor cannot be read while the parameter is written in place;
    // the optimiser copies it first.
    let dev = Device::Cpu;
    let p = Var::new(&[1f32, -2., 3.], &dev).unwrap();
    let q = Var::new(&[1f32, -2., 3.], &dev).unwrap();
    let config = AdamConfig::adamw(0.1, 0.01);
    let mut opt_p = FusedAdam::new(vec![p.clone()], config).unwrap();
    let mut opt_q = FusedAdam::new(vec![q.clone()], config).unwrap();
    for _ in 0..3 {
        let mut gp = GradStore::default();
        gp.insert(p.as_tensor(), p.as_tensor().clone());
        opt_p.step(&gp).unwrap();
        let mut gq = GradStore::default();
        gq.insert(q.as_tensor(), q.as_tensor().copy().unwrap());
        opt_q.step(&gq).unwrap();
    }
    assert_eq!(p.to_vec1::<f32>().unwrap(), q.to_vec1::<f32>().unwrap());
    assert_ne!(p.to_vec1::<f32>().unwrap(), [1., -2., 3.]);
}
