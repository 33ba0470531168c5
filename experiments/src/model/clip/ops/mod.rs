//! Differentiable fused ops for the CLIP modules.
//!
//! candle 0.11's fused `candle_nn::ops::layer_norm` and `softmax_last_dim` have no backward pass: used in a
//! model that is trained, they silently cut the gradient (only what comes after them learns, and the loss still
//! falls, so nothing looks wrong). The ops here run a fused forward AND a fused backward on the CPU (one pass per
//! row, few temporaries), so gradients flow everywhere. On other devices, or for other dtypes, they fall back
//! to the composite formulation, which candle differentiates itself.
//!
//! Why fuse so much on the CPU: every large element-wise candle op (bias add, residual add, activation pieces,
//! the dozen ops of a composite layer-norm backward...) is a separate pass over memory, a fresh allocation and a
//! dispatch to candle's spinning barrier pool, which competes with gemm's rayon threads for the cores. The ops
//! here do each of those jobs in one pass, on the calling thread (or split over scoped threads when large):
//! - [`layer_norm`]: forward and backward (dx, and dweight/dbias in one pass);
//! - [`linear_product`]: a linear layer's `x · wᵀ` through OpenBLAS or `gemm`, backward without transposed copies;
//!   [`linear_bias`] with the bias written under the product, [`quick_gelu_linear`] on the MLP's activation, which
//!   it recomputes in the backward pass instead of keeping;
//! - [`bias_add`], [`bias_add_residual`], [`bias_quick_gelu`]: what follows a linear layer's matrix product;
//! - [`attention`]: multi-head attention from the `q`, `k`, `v` projections, each head's products through BLAS on
//!   the head's columns in place, the scale and the causal mask inside the softmax, forward and backward;
//! - [`embed_tokens`] and [`vision_embed`]: the embedding sums (token gather + positions; class token + patches +
//!   positions) whose backward scatters straight into the gradients.
//!
//! The ops keep nothing for their backward pass beyond what candle records: candle keeps an op's inputs only when
//! one of them tracks ops (a `Var` or a tensor computed from one), and the attention recomputes its probabilities
//! in the backward pass instead of keeping them. So on the model's detached view
//! ([`super::ClipModel::detached`], what scoring runs) every activation is freed as soon as it is used.
//!
//! One file per op, each a [`Kernel`]; the shared CPU pieces (candle's custom-op plumbing in [`Fused`], the
//! contiguous inputs, the thread split, the vectorisable reductions) are here.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, WithDType};

mod attention;
mod bias;
mod embed;
#[cfg(test)]
mod fallback_tests;
mod layer_norm;
mod linear;
mod softmax;

pub use attention::{attention, attention_qkv};
pub use bias::{bias_add, bias_add_residual, bias_quick_gelu, quick_gelu};
pub use embed::{embed_tokens, vision_embed};
pub use layer_norm::layer_norm;
pub use linear::{linear_bias, linear_product, pack_weight, packed_linear, packed_linear_residual, quick_gelu_linear};
pub use softmax::softmax_last_dim;

fn fused_ok(x: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32
}

/// One input of a fused op as candle hands it to the CPU: its storage and its layout.
type Arg<'a> = (&'a CpuStorage, &'a Layout);

/// A contiguous CPU input: its elements (the slice it derefs to) and its dims.
#[derive(Clone, Copy)]
struct Input<'a, T> {
    data: &'a [T],
    dims: &'a [usize],
    shape: &'a Shape,
}

impl<T> std::ops::Deref for Input<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.data
    }
}

/// The elements of a contiguous input, with its dims (`op` and `name` name it in the error).
fn input<'a, T: WithDType>((s, l): Arg<'a>, op: &str, name: &str) -> Result<Input<'a, T>> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(Input { data: &data[a..b], dims: l.dims(), shape: l.shape() }),
        None if name.is_empty() => candle_core::bail!("{op}: input must be contiguous"),
        None => candle_core::bail!("{op} {name}: input must be contiguous"),
    }
}

/// [`input`] for each of the `N` f32 inputs of the op `op`, `names` naming them in order.
fn f32_inputs<'a, const N: usize>(args: [Arg<'a>; N], op: &str, names: [&str; N]) -> Result<[Input<'a, f32>; N]> {
    let mut inputs = Vec::with_capacity(N);
    for (arg, name) in args.into_iter().zip(names) {
        inputs.push(input::<f32>(arg, op, name)?);
    }
    Ok(std::array::from_fn(|i| inputs[i]))
}

/// A fused CPU kernel with `N` inputs, run by candle through [`Fused`] (which implements `CustomOp{N}`):
/// the kernel only says what the op computes, the wrapper does candle's plumbing.
trait Kernel<const N: usize> {
    /// The op's name in candle's errors.
    const NAME: &'static str;

    /// The forward pass on the CPU: the output's elements and shape.
    fn cpu(&self, args: [Arg<'_>; N]) -> Result<(Vec<f32>, Shape)>;

    /// The gradients of the `N` inputs, from the inputs, the op's output `out` and the (contiguous) gradient
    /// `g` of the output. By default the op has no backward pass.
    fn grads(&self, _inputs: [&Tensor; N], _out: &Tensor, _g: &Tensor) -> Result<[Option<Tensor>; N]> {
        Err(candle_core::Error::BackwardNotSupported { op: Self::NAME })
    }
}

/// A [`Kernel`] as a candle custom op.
struct Fused<K>(K);

impl<K: Kernel<1>> CustomOp1 for Fused<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (out, shape) = self.0.cpu([(s, l)])?;
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, x: &Tensor, out: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let [dx] = self.0.grads([x], out, &g.contiguous()?)?;
        Ok(dx)
    }
}

impl<K: Kernel<2>> CustomOp2 for Fused<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (out, shape) = self.0.cpu([(s1, l1), (s2, l2)])?;
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, out: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [da, db] = self.0.grads([a, b], out, &g.contiguous()?)?;
        Ok((da, db))
    }
}

impl<K: Kernel<3>> CustomOp3 for Fused<K> {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (out, shape) = self.0.cpu([(s1, l1), (s2, l2), (s3, l3)])?;
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        out: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [da, db, dc] = self.0.grads([a, b, c], out, &g.contiguous()?)?;
        Ok((da, db, dc))
    }
}

/// The one input of a row-wise op and the length of its rows (its last dimension, which must not be empty).
fn row_input<'a>([arg]: [Arg<'a>; 1], op: &str) -> Result<(Input<'a, f32>, usize)> {
    let x = input::<f32>(arg, op, "")?;
    match x.dims.last() {
        Some(&d) if d > 0 => Ok((x, d)),
        _ => candle_core::bail!("{op}: empty last dimension"),
    }
}

/// Below this much work (elements touched, roughly), one thread is faster than waking the pool (as candle's own
/// element-wise ops: `PAR_ELEMWISE_MIN`).
const PAR_MIN_WORK: usize = 1 << 16;

/// Runs `f(first_item, out_chunk)` over `out` split into items of `item_len` elements, in contiguous runs of
/// items over candle's CPU worker pool when `work` (an estimate of the elements touched) is large enough.
///
/// The pool's workers are already running (no thread spawn per call, which cost tens of microseconds and a fresh
/// stack's page faults each time) and they are the ones candle's own parallel ops use, so the two never compete
/// for the cores. Runs of items are handed out through a shared cursor (a thread that finishes early takes the
/// next run), each run behind its own lock so that the split stays safe code.
fn par_items<F>(out: &mut [f32], item_len: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    if item_len == 0 || out.is_empty() {
        return;
    }
    let items = out.len() / item_len;
    let pool = candle_core::utils::barrier_pool();
    let threads = (pool.n_workers() + 1).min(items).min(work / PAR_MIN_WORK).max(1);
    if threads <= 1 {
        f(0, out);
        return;
    }
    // A few runs per thread: a straggler's share is taken over by the others.
    let per = items.div_ceil(threads * 4);
    let runs: Vec<std::sync::Mutex<Option<&mut [f32]>>> =
        out.chunks_mut(per * item_len).map(|c| std::sync::Mutex::new(Some(c))).collect();
    pool.execute_chunked(runs.len(), |range| {
        for i in range {
            // Each run is taken exactly once (the cursor hands out every index once); a poisoned lock means `f`
            // panicked in another run, which the pool propagates to the caller.
            let run = runs[i].lock().ok().and_then(|mut r| r.take());
            if let Some(c) = run {
                f(i * per, c);
            }
        }
    });
}


wide! {
    /// `out[i] = quick_gelu(z[i])`.
    fn quick_gelu_into(out: &mut [f32], z: &[f32]) {
        for (o, &v) in out.iter_mut().zip(z) {
            *o = bias::quick_gelu_value(v);
        }
    }
}

wide! {
    /// The softmax of `row[..n]` scaled by `scale`, in place, and zeros after it (a causal row's masked part).
    /// Written in blocks of 16 lanes, as [`sum`]: the rows are short (a causal row of 77 tokens holds 1 to 77
    /// live entries), and a plain loop would leave most of them to its scalar tail.
    fn softmax_prefix(row: &mut [f32], n: usize, scale: f32) {
        let (live, masked) = row.split_at_mut(n.min(row.len()));
        let mut lanes = [f32::NEG_INFINITY; 16];
        let mut blocks = live.chunks_exact_mut(16);
        for b in &mut blocks {
            for l in 0..16 {
                b[l] *= scale;
                lanes[l] = lanes[l].max(b[l]);
            }
        }
        let mut max = f32::NEG_INFINITY;
        for v in blocks.into_remainder() {
            *v *= scale;
            max = max.max(*v);
        }
        let max = lanes.iter().fold(max, |a, &b| a.max(b));
        let mut blocks = live.chunks_exact_mut(16);
        for b in &mut blocks {
            for v in b.iter_mut() {
                *v = exp(*v - max);
            }
        }
        for v in blocks.into_remainder() {
            *v = exp(*v - max);
        }
        let inv = 1.0 / sum(live);
        live.iter_mut().for_each(|v| *v *= inv);
        masked.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// Dot product with independent lanes, so that it vectorises without fast-math.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s + acc.iter().sum::<f32>()
}

#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let c = a.chunks_exact(16);
    let r = c.remainder();
    for x in c {
        for l in 0..16 {
            acc[l] += x[l];
        }
    }
    r.iter().sum::<f32>() + acc.iter().sum::<f32>()
}

/// `e^x` in single precision without a call into libm, so that the loops over it vectorise (glibc's `expf` is a
/// call per element, which the quick GELU and the softmaxes make millions of times a step). Cody-Waite range
/// reduction `x = n ln 2 + r` with `|r| <= ln 2 / 2`, Cephes' degree-6 polynomial for `e^r`, and `2^n` made from
/// the exponent bits. Within 2 units in the last place of `f32::exp` (tested); `x` is clamped to [-87.3, 88.3],
/// where `e^x` is still a normal f32, and NaN stays NaN.
///
/// Branch-free, with no float-to-int conversion (`n` is read from the bits of `x log2 e + 1.5 · 2^23`, which
/// rounds it to an integer) and wrapping integer arithmetic, so that it vectorises on the baseline x86-64 target
/// and with overflow checks on (dev builds).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let k = x * std::f32::consts::LOG2_E + ROUND;
    let n = k.to_bits().wrapping_sub(ROUND.to_bits());
    let nf = k - ROUND;
    let r = x - nf * LN2_HI - nf * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    // n is in [-126, 127] after the clamp (two's complement in the low bits): a normal power of two.
    y * f32::from_bits(n.wrapping_add(127) << 23)
}

/// Mean and 1/std of one row.
#[inline(always)]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let d = row.len() as f32;
    let mean = sum(row) / d;
    let mut acc = [0f32; 16];
    let c = row.chunks_exact(16);
    let r = c.remainder();
    for x in c {
        for l in 0..16 {
            let v = x[l] - mean;
            acc[l] += v * v;
        }
    }
    let var = (r.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() + acc.iter().sum::<f32>()) / d;
    (mean, 1.0 / (var + eps).sqrt())
}

#[cfg(test)]
mod exp_tests {
    /// [`super::exp`] against `f32::exp` over the whole range the model uses (softmax arguments <= 0, sigmoid
    /// arguments of either sign), within 2 units in the last place (relative error under 2 epsilon), and its
    /// edges: exact at 0, tiny at the bottom, NaN kept.
    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut worst = 0f64;
        for i in 0..=2_000_000u32 {
            let x = -87.0 + 175.0 * i as f32 / 2_000_000.0;
            let (got, want) = (super::exp(x), x.exp());
            let rel = ((got as f64 - want as f64) / want as f64).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 2.0 * f32::EPSILON as f64, "relative error {worst:e}");
        assert_eq!(super::exp(0.0), 1.0);
        assert!(super::exp(-1000.0) < 1e-37);
        assert!(super::exp(f32::NAN).is_nan());
    }
}

#[cfg(test)]
mod test_util {
    use super::*;

    pub(super) fn rand(shape: &[usize], seed: u64) -> Tensor {
        // A deterministic pattern is enough here.
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }

    pub(super) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("diff")
    }
}
