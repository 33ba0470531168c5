//! Fused in-place Adam / AdamW.
//!
//! `candle_nn::AdamW` builds about a dozen temporary tensors per parameter per step; for CLIP ViT-B/32
//! (151M parameters) that is most of a CPU training step. [`FusedAdam`] updates the parameter and both moment
//! buffers in one pass, in place, with no temporaries, split over the CPU threads for large tensors.
//!
//! - On the CPU, for contiguous `f32` parameters, the update runs as a custom in-place op
//!   ([`candle_core::InplaceOp2`]) over the parameter's own storage; the moments are plain `Vec<f32>`.
//! - Anywhere else (CUDA, Metal, other dtypes) it falls back to tensor ops with the moments held as tensors on
//!   the parameter's device (in `f32`, or `f64` for `f64` parameters, so `f16`/`bf16` parameters keep
//!   full-precision moments). This path allocates, but gives the same numbers.
//!
//! The arithmetic is PyTorch's (`torch.optim.Adam` / `torch.optim.AdamW`, `foreach=False`, `amsgrad=False`):
//!
//! ```text
//! g  = grad (+ weight_decay * p, for Adam only: L2 penalty)
//! p  = p * (1 - lr * weight_decay)            (AdamW only: decoupled decay)
//! m  = beta1 * m + (1 - beta1) * g
//! v  = beta2 * v + (1 - beta2) * g^2
//! p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! `t` counts the steps in which the parameter had a gradient, as `state["step"]` does in PyTorch: a
//! parameter missing from the gradient store is skipped and its moments and step count stay as they are.

mod bench;

pub use bench::bench_step;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use candle_core::backend::BackendStorage;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Tensor, TensorId, Var};

use crate::{Error, Result};

/// Which Adam variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// `torch.optim.Adam`: the weight decay is an L2 penalty added to the gradient (`g += wd * p`).
    Adam,
    /// `torch.optim.AdamW` / `candle_nn::AdamW`: decoupled weight decay (`p *= 1 - lr * wd`).
    AdamW,
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        })
    }
}

/// Hyper-parameters of [`FusedAdam`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamConfig {
    /// `torch.optim.Adam` defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    pub fn adam(lr: f64) -> Self {
        Self {
            kind: OptimizerKind::Adam,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// `torch.optim.AdamW` defaults: betas (0.9, 0.999), eps 1e-8 (PyTorch's default weight decay is 0.01).
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        Self {
            kind: OptimizerKind::AdamW,
            weight_decay,
            ..Self::adam(lr)
        }
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, value: f64, rule: &str| {
            Err(Error::Invalid(format!(
                "{} optimizer: {what} must be {rule}, got {value}",
                self.kind
            )))
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("learning rate", self.lr, "a positive finite number");
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return bad("beta1", self.beta1, "in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return bad("beta2", self.beta2, "in [0, 1)");
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", self.eps, "a positive finite number");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight decay", self.weight_decay, "a finite number >= 0");
        }
        Ok(())
    }
}

impl Default for AdamConfig {
    /// `AdamConfig::adam(1e-4)`.
    fn default() -> Self {
        Self::adam(1e-4)
    }
}

/// The per-step scalars of one parameter's update, bias corrections hoisted out of the loop.
#[derive(Debug, Clone, Copy)]
struct Coeffs {
    /// Added to the gradient times the parameter (Adam's L2 penalty); 0 for AdamW.
    l2: f64,
    /// The parameter is first multiplied by this (AdamW's decoupled decay); 1 for Adam.
    decay: f64,
    beta1: f64,
    beta2: f64,
    /// `lr / (1 - beta1^t)`.
    step_size: f64,
    /// `1 / sqrt(1 - beta2^t)`.
    inv_sqrt_bc2: f64,
    eps: f64,
}

impl Coeffs {
    fn new(c: &AdamConfig, lr: f64, t: usize) -> Self {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let (l2, decay) = match c.kind {
            OptimizerKind::Adam => (c.weight_decay, 1.0),
            OptimizerKind::AdamW => (0.0, 1.0 - lr * c.weight_decay),
        };
        Self {
            l2,
            decay,
            beta1: c.beta1,
            beta2: c.beta2,
            step_size: lr / bc1,
            inv_sqrt_bc2: 1.0 / bc2.sqrt(),
            eps: c.eps,
        }
    }
}

/// [`Coeffs`] in `f32`, for the fused kernel.
#[derive(Debug, Clone, Copy)]
struct Coeffs32 {
    l2: f32,
    decay: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
    eps: f32,
}

impl From<Coeffs> for Coeffs32 {
    fn from(c: Coeffs) -> Self {
        Self {
            l2: c.l2 as f32,
            decay: c.decay as f32,
            beta1: c.beta1 as f32,
            one_minus_beta1: (1.0 - c.beta1) as f32,
            beta2: c.beta2 as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            step_size: c.step_size as f32,
            inv_sqrt_bc2: c.inv_sqrt_bc2 as f32,
            eps: c.eps as f32,
        }
    }
}

/// The whole update of one stretch of elements, in one pass. `L2`: add `l2 * p` to the gradient first.
#[inline(always)]
fn adam_kernel<const L2: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: Coeffs32,
) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if L2 { g + c.l2 * *p } else { g };
        let mi = c.beta1 * *m + c.one_minus_beta1 * g;
        let vi = c.beta2 * *v + c.one_minus_beta2 * (g * g);
        *m = mi;
        *v = vi;
        let denom = vi.sqrt() * c.inv_sqrt_bc2 + c.eps;
        *p = *p * c.decay - c.step_size * (mi / denom);
    }
}

wide! {
    fn run_kernel(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: Coeffs32) {
        if c.l2 != 0.0 {
            adam_kernel::<true>(p, g, m, v, c)
        } else {
            adam_kernel::<false>(p, g, m, v, c)
        }
    }
}

/// Below this many elements per thread, waking the worker pool costs more than it saves.
const MIN_ELEMS_PER_THREAD: usize = 1 << 16;

/// Runs the kernel over all elements, split into `threads` contiguous chunks for large tensors.
fn fused_update(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: Coeffs32,
    threads: usize,
) {
    let n = p.len();
    let threads = threads.min(n / MIN_ELEMS_PER_THREAD).max(1);
    if threads <= 1 {
        run_kernel(p, g, m, v, c);
        return;
    }
    // Chunks of whole cache lines (16 f32), so that no two threads write the same line; run on candle's worker pool
    // (already running, shared with candle's own parallel ops: no thread spawn per parameter tensor).
    let chunk = n.div_ceil(threads * 4).div_ceil(16) * 16;
    type Part<'a> = std::sync::Mutex<Option<(&'a mut [f32], &'a [f32], &'a mut [f32], &'a mut [f32])>>;
    let parts: Vec<Part<'_>> = p
        .chunks_mut(chunk)
        .zip(g.chunks(chunk))
        .zip(m.chunks_mut(chunk))
        .zip(v.chunks_mut(chunk))
        .map(|(((p, g), m), v)| std::sync::Mutex::new(Some((p, g, m, v))))
        .collect();
    candle_core::utils::barrier_pool().execute_chunked(parts.len(), |range| {
        for i in range {
            // Each part is handed out once; a poisoned lock means the kernel panicked elsewhere (the pool re-raises).
            if let Some((p, g, m, v)) = parts[i].lock().ok().and_then(|mut part| part.take()) {
                run_kernel(p, g, m, v, c);
            }
        }
    });
}

/// The fused update as an in-place op on the parameter (`s1`), reading the gradient (`s2`). The moments are
/// borrowed for the one call; the `Mutex` only lets `cpu_fwd` (which takes `&self`) write them.
struct FusedAdamOp<'a> {
    moments: Mutex<(&'a mut [f32], &'a mut [f32])>,
    coeffs: Coeffs32,
    threads: usize,
}

impl InplaceOp2 for FusedAdamOp<'_> {
    fn name(&self) -> &'static str {
        "cliplab-fused-adam"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let Some((p_start, p_end)) = l1.contiguous_offsets() else {
            candle_core::bail!("fused adam: the parameter must be contiguous");
        };
        let Some((g_start, g_end)) = l2.contiguous_offsets() else {
            candle_core::bail!("fused adam: the gradient must be contiguous");
        };
        let CpuStorage::F32(p) = s1 else {
            candle_core::bail!(
                "fused adam: the parameter must be f32, got {:?}",
                s1.dtype()
            );
        };
        let CpuStorage::F32(g) = s2 else {
            candle_core::bail!("fused adam: the gradient must be f32, got {:?}", s2.dtype());
        };
        let mut guard = self
            .moments
            .lock()
            .map_err(|_| candle_core::Error::msg("fused adam: moment buffers poisoned"))?;
        let (m, v) = &mut *guard;
        let n = m.len();
        let (Some(p), Some(g)) = (p.get_mut(p_start..p_end), g.get(g_start..g_end)) else {
            candle_core::bail!("fused adam: layout outside its storage");
        };
        if p.len() != n || g.len() != n || v.len() != n {
            candle_core::bail!(
                "fused adam: size mismatch: parameter {}, gradient {}, moments {n}/{}",
                p.len(),
                g.len(),
                v.len()
            );
        }
        fused_update(p, g, m, v, self.coeffs, self.threads);
        Ok(())
    }
}

/// The moments of one parameter.
enum Moments {
    /// CPU, f32, contiguous: plain buffers for the fused kernel.
    Fused { m: Vec<f32>, v: Vec<f32> },
    /// Anything else: tensors on the parameter's device (f32, or f64 for f64 parameters).
    Tensors { m: Tensor, v: Tensor },
}

impl Moments {
    fn zeros(var: &Var, fused: bool) -> Result<Self> {
        if fused {
            let n = var.elem_count();
            return Ok(Moments::Fused {
                m: vec![0.0; n],
                v: vec![0.0; n],
            });
        }
        let dtype = state_dtype(var.dtype());
        Ok(Moments::Tensors {
            m: Tensor::zeros(var.shape(), dtype, var.device())?,
            v: Tensor::zeros(var.shape(), dtype, var.device())?,
        })
    }
}

/// The dtype the tensor fallback keeps the moments and does its arithmetic in.
fn state_dtype(param: DType) -> DType {
    if param == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// The fused path applies: CPU, f32 (a `Var` is always contiguous: candle copies a tensor to make one).
fn fusable(var: &Var) -> bool {
    matches!(var.device(), Device::Cpu) && var.dtype() == DType::F32
}

struct Param {
    var: Var,
    /// Steps in which this parameter had a gradient.
    steps: usize,
    moments: Moments,
}

/// Adam / AdamW with the update fused into one in-place pass per parameter (see the module docs).
pub struct FusedAdam {
    params: Vec<Param>,
    /// Each parameter's index in `params`, by its tensor's id (for [`FusedAdam::backward_step`]).
    index: HashMap<TensorId, usize>,
    config: AdamConfig,
    step_t: usize,
    threads: usize,
    /// Time spent in the updates of the last step.
    update_time: Duration,
}

impl std::fmt::Debug for FusedAdam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedAdam")
            .field("config", &self.config)
            .field("params", &self.params.len())
            .field("step_t", &self.step_t)
            .finish()
    }
}

impl FusedAdam {
    /// An optimiser over `vars` (non-float vars are left out, as `candle_nn::AdamW` does). Fails with
    /// [`Error::Invalid`] when a hyper-parameter is out of range.
    pub fn new(vars: Vec<Var>, config: AdamConfig) -> Result<Self> {
        Self::build(vars, config, true)
    }

    /// `allow_fused: false` forces the tensor-op path everywhere (for tests).
    fn build(vars: Vec<Var>, config: AdamConfig, allow_fused: bool) -> Result<Self> {
        config.validate()?;
        let params = vars
            .into_iter()
            .filter(|var| var.dtype().is_float())
            .map(|var| {
                let moments = Moments::zeros(&var, allow_fused && fusable(&var))?;
                Ok(Param {
                    var,
                    steps: 0,
                    moments,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let index = params.iter().enumerate().map(|(i, p)| (p.var.as_tensor().id(), i)).collect();
        Ok(Self {
            params,
            index,
            config,
            step_t: 0,
            threads: candle_core::utils::get_num_threads().max(1),
            update_time: Duration::ZERO,
        })
    }

    /// The learning rate, checked before a step.
    fn step_lr(&self) -> Result<f64> {
        let lr = self.config.lr;
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::Invalid(format!(
                "{} optimizer: learning rate must be a finite number >= 0, got {lr}",
                self.config.kind
            )));
        }
        Ok(lr)
    }

    /// One update of every parameter that has a gradient in `grads`; the others are skipped and their state
    /// does not advance.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let lr = self.step_lr()?;
        // Check every gradient first, so that a bad one leaves all parameters as they were.
        for param in &self.params {
            if let Some(grad) = grads.get(param.var.as_tensor()) {
                check_shape(param, grad, &self.config)?;
            }
        }
        let started = Instant::now();
        self.step_t += 1;
        for param in &mut self.params {
            if let Some(grad) = grads.get(param.var.as_tensor()) {
                update(param, grad, &self.config, lr, self.threads)?;
            }
        }
        self.update_time = started.elapsed();
        Ok(())
    }

    /// Back-propagates `loss` and takes one step, updating each parameter as soon as the backward pass has its
    /// whole gradient (`Tensor::backward_with`, the vendored candle-core's patch) and dropping the gradient there:
    /// the pass never holds every gradient at once (577 MiB for ViT-B/32), and each update reads a gradient that
    /// was just written. The same numbers as `loss.backward()` then [`FusedAdam::step`] (tested), except that a
    /// failure part-way (a gradient of the wrong shape, which candle's own checks make unreachable) leaves the
    /// parameters updated so far updated. Parameters without a gradient are skipped, as in `step`.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let lr = self.step_lr()?;
        self.step_t += 1;
        let Self { params, index, config, threads, update_time, .. } = self;
        let mut spent = Duration::ZERO;
        let mut failed = None;
        let pass = loss.backward_with(&mut |node, grad| {
            // A variable this optimiser does not own keeps its gradient in the store (dropped below).
            let Some(param) = index.get(&node.id()).and_then(|&i| params.get_mut(i)) else {
                return Ok(Some(grad));
            };
            let started = Instant::now();
            let updated = check_shape(param, &grad, config).and_then(|()| update(param, &grad, config, lr, *threads));
            if let Err(e) = updated {
                let message = e.to_string();
                failed = Some(e);
                return Err(candle_core::Error::Msg(message));
            }
            spent += started.elapsed();
            Ok(None)
        });
        *update_time = spent;
        match (pass, failed) {
            (_, Some(e)) => Err(e),
            (Err(e), None) => Err(e.into()),
            (Ok(_), None) => Ok(()),
        }
    }

    /// Seconds spent in the parameter updates of the last step (inside the backward pass for
    /// [`FusedAdam::backward_step`]).
    pub fn last_update_seconds(&self) -> f64 {
        self.update_time.as_secs_f64()
    }

    pub fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate for the next steps (0 is allowed, e.g. at the start of a warm-up; a negative or
    /// non-finite rate makes [`FusedAdam::step`] fail).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Number of calls to [`FusedAdam::step`] so far.
    pub fn step_count(&self) -> usize {
        self.step_t
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// How many parameters take the fused path (the rest use tensor ops).
    #[cfg(test)]
    fn fused_params(&self) -> usize {
        self.params
            .iter()
            .filter(|p| matches!(p.moments, Moments::Fused { .. }))
            .count()
    }
}

/// Fails when `grad` does not have `param`'s shape.
fn check_shape(param: &Param, grad: &Tensor, config: &AdamConfig) -> Result<()> {
    if grad.shape() != param.var.shape() {
        return Err(Error::Invalid(format!(
            "{} optimizer: gradient of shape {:?} for a parameter of shape {:?}",
            config.kind,
            grad.dims(),
            param.var.dims()
        )));
    }
    Ok(())
}

/// One update of `param` with `grad` at learning rate `lr`; advances its step count.
fn update(param: &mut Param, grad: &Tensor, config: &AdamConfig, lr: f64, threads: usize) -> Result<()> {
    let coeffs = Coeffs::new(config, lr, param.steps + 1);
    match &mut param.moments {
        Moments::Fused { m, v } => fused_step(&param.var, grad, m, v, coeffs, threads)?,
        Moments::Tensors { m, v } => tensor_step(&param.var, grad, m, v, coeffs)?,
    }
    param.steps += 1;
    Ok(())
}

/// One parameter's update through the fused in-place op.
fn fused_step(
    var: &Var,
    grad: &Tensor,
    m: &mut [f32],
    v: &mut [f32],
    c: Coeffs,
    threads: usize,
) -> Result<()> {
    let param = var.as_tensor();
    let mut grad = grad.to_dtype(DType::F32)?.contiguous()?;
    if shares_storage(param, &grad) {
        // The in-place op cannot read and write one buffer; `copy` gives the gradient its own.
        grad = grad.copy()?;
    }
    let op = FusedAdamOp {
        moments: Mutex::new((m, v)),
        coeffs: c.into(),
        threads,
    };
    param.inplace_op2(&grad, &op)?;
    Ok(())
}

/// Whether two tensors are views of one storage (one read lock at a time, never two on one storage).
fn shares_storage(a: &Tensor, b: &Tensor) -> bool {
    fn address(t: &Tensor) -> usize {
        let (storage, _) = t.storage_and_layout();
        &*storage as *const candle_core::Storage as usize
    }
    address(a) == address(b)
}

/// One parameter's update with tensor ops (any device, any float dtype).
fn tensor_step(var: &Var, grad: &Tensor, m: &mut Tensor, v: &mut Tensor, c: Coeffs) -> Result<()> {
    let dtype = m.dtype();
    let p = var.as_tensor().detach().to_dtype(dtype)?;
    let mut g = grad.detach().to_dtype(dtype)?;
    if c.l2 != 0.0 {
        g = (g + (&p * c.l2)?)?;
    }
    let next_m = ((&*m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
    let next_v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
    let denom = ((next_v.sqrt()? * c.inv_sqrt_bc2)? + c.eps)?;
    let update = ((&next_m / &denom)? * c.step_size)?;
    let next_p = ((&p * c.decay)? - update)?.to_dtype(var.dtype())?;
    var.set(&next_p)?;
    *m = next_m;
    *v = next_v;
    Ok(())
}

#[cfg(test)]
mod tests;
