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
//! - [`bias_add`], [`bias_add_residual`], [`bias_quick_gelu`]: what follows a linear layer's matrix product;
//! - [`attention`]: multi-head attention from the packed `[q | k | v]` projections, with the scale and the
//!   causal mask inside the softmax, forward and backward (no per-head matmul dispatch, no transposes);
//! - [`embed_tokens`] and [`vision_embed`]: the embedding sums (token gather + positions; class token + patches +
//!   positions) whose backward scatters straight into the gradients.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, IndexOp, Layout, Result, Shape, Tensor, D,
};

fn fused_ok(x: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

fn contiguous_u32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [u32]> {
    let data = s.as_slice::<u32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// Below this much work (elements touched, roughly), one thread is faster than spawning a second (a thread
/// spawn costs tens of microseconds of system time, and on small VMs the second vCPU may share a core).
const PAR_MIN_WORK: usize = 1 << 22;

/// Runs `f(first_item, out_chunk)` over `out` split into items of `item_len` elements, in contiguous runs of
/// items over the CPU threads when `work` (an estimate of the elements touched) is large enough.
fn par_items<F>(out: &mut [f32], item_len: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    if item_len == 0 || out.is_empty() {
        return;
    }
    let items = out.len() / item_len;
    let threads = candle_core::utils::get_num_threads().clamp(1, 8).min(items).min(work / PAR_MIN_WORK).max(1);
    if threads <= 1 {
        f(0, out);
        return;
    }
    let per = items.div_ceil(threads);
    std::thread::scope(|s| {
        let f = &f;
        let mut chunks = out.chunks_mut(per * item_len).enumerate();
        let first = chunks.next();
        for (i, c) in chunks {
            s.spawn(move || f(i * per, c));
        }
        if let Some((_, c)) = first {
            f(0, c);
        }
    });
}

/// Dot product with independent lanes, so that it vectorises without fast-math.
#[inline]
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

#[inline]
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

/// `y += a * x`.
#[inline]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Mean and 1/std of one row.
#[inline]
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

// ---------------------------------------------------------------------------------------------------------------
// Layer norm

struct LayerNormOp {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "cliplab-layer-norm"
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
        let x = contiguous_f32(s1, l1, "layer_norm x")?;
        let w = contiguous_f32(s2, l2, "layer_norm weight")?;
        let b = contiguous_f32(s3, l3, "layer_norm bias")?;
        let d = w.len();
        if d == 0 || b.len() != d || l1.dims().last() != Some(&d) {
            candle_core::bail!("layer_norm: shape mismatch {:?} / {d}", l1.dims());
        }
        let mut out = vec![0f32; x.len()];
        let eps = self.eps;
        par_items(&mut out, d, x.len() * 3, |first, out| {
            for (r, o) in out.chunks_exact_mut(d).enumerate() {
                let row = &x[(first + r) * d..(first + r + 1) * d];
                let (mean, rstd) = row_stats(row, eps);
                for i in 0..d {
                    o[i] = (row[i] - mean) * rstd * w[i] + b[i];
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &g, &LayerNormBwdX { eps: self.eps })?;
        let dwb = x.apply_op2_no_bwd(&g, &LayerNormBwdWB { eps: self.eps })?;
        Ok((Some(dx), Some(dwb.i(0)?), Some(dwb.i(1)?)))
    }
}

/// `dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))` with `gw = g * w`, one row at a time.
struct LayerNormBwdX {
    eps: f32,
}

impl CustomOp3 for LayerNormBwdX {
    fn name(&self) -> &'static str {
        "cliplab-layer-norm-bwd-x"
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
        let x = contiguous_f32(s1, l1, "layer_norm bwd x")?;
        let w = contiguous_f32(s2, l2, "layer_norm bwd weight")?;
        let g = contiguous_f32(s3, l3, "layer_norm bwd grad")?;
        let d = w.len();
        if d == 0 || g.len() != x.len() || x.len() % d != 0 {
            candle_core::bail!("layer_norm bwd: shape mismatch {:?} / {d}", l1.dims());
        }
        let mut out = vec![0f32; x.len()];
        let eps = self.eps;
        par_items(&mut out, d, x.len() * 6, |first, out| {
            let mut gw = vec![0f32; d];
            for (r, o) in out.chunks_exact_mut(d).enumerate() {
                let row = &x[(first + r) * d..(first + r + 1) * d];
                let grow = &g[(first + r) * d..(first + r + 1) * d];
                let (mean, rstd) = row_stats(row, eps);
                for i in 0..d {
                    gw[i] = grow[i] * w[i];
                }
                // o temporarily holds xhat.
                for i in 0..d {
                    o[i] = (row[i] - mean) * rstd;
                }
                let m1 = sum(&gw) / d as f32;
                let m2 = dot(&gw, o) / d as f32;
                for i in 0..d {
                    o[i] = rstd * (gw[i] - m1 - o[i] * m2);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `[2, d]`: row 0 `dweight = sum_rows(g * xhat)`, row 1 `dbias = sum_rows(g)`.
struct LayerNormBwdWB {
    eps: f32,
}

impl CustomOp2 for LayerNormBwdWB {
    fn name(&self) -> &'static str {
        "cliplab-layer-norm-bwd-wb"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "layer_norm bwd x")?;
        let g = contiguous_f32(s2, l2, "layer_norm bwd grad")?;
        let d = match l1.dims().last() {
            Some(&d) if d > 0 && x.len() % d == 0 && g.len() == x.len() => d,
            _ => candle_core::bail!("layer_norm bwd: shape mismatch {:?}", l1.dims()),
        };
        let mut out = vec![0f32; 2 * d];
        let (dw, db) = out.split_at_mut(d);
        for (row, grow) in x.chunks_exact(d).zip(g.chunks_exact(d)) {
            let (mean, rstd) = row_stats(row, self.eps);
            for i in 0..d {
                dw[i] += grow[i] * ((row[i] - mean) * rstd);
                db[i] += grow[i];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((2, d))))
    }
}

/// Layer normalisation over the last dimension, differentiable with respect to all three inputs.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if fused_ok(x) {
        x.contiguous()?
            .apply_op3(&weight.contiguous()?, &bias.contiguous()?, LayerNormOp { eps: eps as f32 })
    } else {
        let dtype = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let mean = xf.mean_keepdim(D::Minus1)?;
        let xc = xf.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xhat = xc.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)?;
        xhat.broadcast_mul(weight)?.broadcast_add(bias)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Softmax (kept for general use; the attention op has its own).

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "cliplab-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "softmax")?;
        let d = match l.dims().last() {
            Some(&d) if d > 0 => d,
            _ => candle_core::bail!("softmax: empty last dimension"),
        };
        let mut out = vec![0f32; x.len()];
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (oi, &xi) in o.iter_mut().zip(row) {
                *oi = (xi - max).exp();
                sum += *oi;
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|v| *v *= inv);
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let gy = (g * y)?;
        let s = gy.sum_keepdim(D::Minus1)?;
        Ok(Some((gy - y.broadcast_mul(&s)?)?))
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fused_ok(x) {
        x.contiguous()?.apply_op1(SoftmaxOp)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// What follows a linear layer's matrix product: bias (+ residual) or bias + quick GELU.

/// `[n, d]` (rows) and `[d]` → the checked sizes.
fn rows_and_bias(ly: &Layout, lb: &Layout, what: &str) -> Result<usize> {
    let d = lb.shape().elem_count();
    match ly.dims().last() {
        Some(&last) if last == d && d > 0 && lb.dims().len() == 1 => Ok(d),
        _ => candle_core::bail!("{what}: shape mismatch {:?} + {:?}", ly.dims(), lb.dims()),
    }
}

/// `out = y + b (+ r)`, `b` broadcast over the rows of `y`.
struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "cliplab-bias-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = contiguous_f32(s1, l1, "bias_add y")?;
        let b = contiguous_f32(s2, l2, "bias_add bias")?;
        let d = rows_and_bias(l1, l2, "bias_add")?;
        let mut out = vec![0f32; y.len()];
        par_items(&mut out, d, y.len() * 2, |first, out| {
            for (r, o) in out.chunks_exact_mut(d).enumerate() {
                let yr = &y[(first + r) * d..(first + r + 1) * d];
                for i in 0..d {
                    o[i] = yr[i] + b[i];
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, _y: &Tensor, _b: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let db = g.apply_op1_no_bwd(&ColumnSum)?;
        Ok((Some(g), Some(db)))
    }
}

struct BiasAddResidual;

impl CustomOp3 for BiasAddResidual {
    fn name(&self) -> &'static str {
        "cliplab-bias-add-residual"
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
        let y = contiguous_f32(s1, l1, "bias_add_residual y")?;
        let b = contiguous_f32(s2, l2, "bias_add_residual bias")?;
        let res = contiguous_f32(s3, l3, "bias_add_residual residual")?;
        let d = rows_and_bias(l1, l2, "bias_add_residual")?;
        if res.len() != y.len() {
            candle_core::bail!("bias_add_residual: residual {:?} vs {:?}", l3.dims(), l1.dims());
        }
        let mut out = vec![0f32; y.len()];
        par_items(&mut out, d, y.len() * 3, |first, out| {
            for (r, o) in out.chunks_exact_mut(d).enumerate() {
                let yr = &y[(first + r) * d..(first + r + 1) * d];
                let rr = &res[(first + r) * d..(first + r + 1) * d];
                for i in 0..d {
                    o[i] = yr[i] + b[i] + rr[i];
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        _b: &Tensor,
        _r: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let db = g.apply_op1_no_bwd(&ColumnSum)?;
        Ok((Some(g.clone()), Some(db), Some(g)))
    }
}

/// `[n, d]` → `[d]`: the sum of the rows.
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "cliplab-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(s, l, "column_sum")?;
        let d = match l.dims().last() {
            Some(&d) if d > 0 => d,
            _ => candle_core::bail!("column_sum: empty last dimension"),
        };
        let mut out = vec![0f32; d];
        for row in g.chunks_exact(d) {
            for i in 0..d {
                out[i] += row[i];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(d)))
    }
}

const QUICK_GELU_K: f32 = 1.702;

#[inline]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// `out = quick_gelu(y + b)`.
struct BiasQuickGelu;

impl CustomOp2 for BiasQuickGelu {
    fn name(&self) -> &'static str {
        "cliplab-bias-quick-gelu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = contiguous_f32(s1, l1, "bias_quick_gelu y")?;
        let b = contiguous_f32(s2, l2, "bias_quick_gelu bias")?;
        let d = rows_and_bias(l1, l2, "bias_quick_gelu")?;
        let mut out = vec![0f32; y.len()];
        par_items(&mut out, d, y.len() * 8, |first, out| {
            for (r, o) in out.chunks_exact_mut(d).enumerate() {
                let yr = &y[(first + r) * d..(first + r + 1) * d];
                for i in 0..d {
                    let z = yr[i] + b[i];
                    o[i] = z * sigmoid(QUICK_GELU_K * z);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(&self, y: &Tensor, b: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let dz = y.apply_op3_no_bwd(b, &g, &BiasQuickGeluBwd)?;
        let db = dz.apply_op1_no_bwd(&ColumnSum)?;
        Ok((Some(dz), Some(db)))
    }
}

/// `dz = g * (s + k z s (1 - s))` with `z = y + b`, `s = sigmoid(k z)`.
struct BiasQuickGeluBwd;

impl CustomOp3 for BiasQuickGeluBwd {
    fn name(&self) -> &'static str {
        "cliplab-bias-quick-gelu-bwd"
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
        let y = contiguous_f32(s1, l1, "bias_quick_gelu bwd y")?;
        let b = contiguous_f32(s2, l2, "bias_quick_gelu bwd bias")?;
        let g = contiguous_f32(s3, l3, "bias_quick_gelu bwd grad")?;
        let d = rows_and_bias(l1, l2, "bias_quick_gelu bwd")?;
        if g.len() != y.len() {
            candle_core::bail!("bias_quick_gelu bwd: grad {:?} vs {:?}", l3.dims(), l1.dims());
        }
        let mut out = vec![0f32; y.len()];
        par_items(&mut out, d, y.len() * 8, |first, out| {
            for (r, o) in out.chunks_exact_mut(d).enumerate() {
                let yr = &y[(first + r) * d..(first + r + 1) * d];
                let gr = &g[(first + r) * d..(first + r + 1) * d];
                for i in 0..d {
                    let z = yr[i] + b[i];
                    let s = sigmoid(QUICK_GELU_K * z);
                    o[i] = gr[i] * (s + QUICK_GELU_K * z * s * (1.0 - s));
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `y + b`, `b` `[d]` broadcast over the rows of `y` `[.., d]`.
pub fn bias_add(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    if fused_ok(y) && b.dtype() == DType::F32 {
        y.contiguous()?.apply_op2(&b.contiguous()?, BiasAdd)
    } else {
        y.broadcast_add(b)
    }
}

/// `y + b + r`, `b` `[d]` broadcast over the rows of `y`, `r` shaped like `y`.
pub fn bias_add_residual(y: &Tensor, b: &Tensor, r: &Tensor) -> Result<Tensor> {
    if fused_ok(y) && b.dtype() == DType::F32 && r.dtype() == DType::F32 && r.dims() == y.dims() {
        y.contiguous()?.apply_op3(&b.contiguous()?, &r.contiguous()?, BiasAddResidual)
    } else {
        y.broadcast_add(b)? + r
    }
}

/// `quick_gelu(y + b)`.
pub fn bias_quick_gelu(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    if fused_ok(y) && b.dtype() == DType::F32 {
        y.contiguous()?.apply_op2(&b.contiguous()?, BiasQuickGelu)
    } else {
        quick_gelu(&y.broadcast_add(b)?)
    }
}

/// `x * sigmoid(1.702 x)`, the activation of OpenAI's CLIP checkpoints.
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    x * candle_nn::ops::sigmoid(&(x * 1.702)?)?
}

// ---------------------------------------------------------------------------------------------------------------
// Attention

/// Multi-head attention core on packed projections: `qkv` `[b, s, 3h]` (`q | k | v`, heads contiguous in each)
/// → `[b, s, h]` = `softmax(scale q k^T (+ causal mask)) v` per head, heads concatenated.
struct AttentionOp {
    heads: usize,
    scale: f32,
    causal: bool,
}

impl AttentionOp {
    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (b, s, h3) = l.shape().dims3()?;
        if h3 % 3 != 0 || (h3 / 3) % self.heads != 0 || s == 0 {
            candle_core::bail!("attention: packed qkv {:?} does not split into {} heads", l.dims(), self.heads);
        }
        let h = h3 / 3;
        Ok((b, s, h, h / self.heads))
    }

    /// Fills `p` (`[s, s]`) with the attention probabilities of one (batch, head).
    fn probs(&self, x: &[f32], s: usize, h: usize, hd: usize, head: usize, p: &mut [f32]) {
        let row = 3 * h;
        let (qo, ko) = (head * hd, h + head * hd);
        for i in 0..s {
            let q = &x[i * row + qo..i * row + qo + hd];
            let n = if self.causal { i + 1 } else { s };
            let pr = &mut p[i * s..(i + 1) * s];
            let mut max = f32::NEG_INFINITY;
            for j in 0..n {
                let v = self.scale * dot(q, &x[j * row + ko..j * row + ko + hd]);
                pr[j] = v;
                max = max.max(v);
            }
            let mut total = 0f32;
            for v in pr[..n].iter_mut() {
                *v = (*v - max).exp();
                total += *v;
            }
            let inv = 1.0 / total;
            pr[..n].iter_mut().for_each(|v| *v *= inv);
            pr[n..].iter_mut().for_each(|v| *v = 0.0);
        }
    }
}

/// `q`, `k`, `v` `[b, s, h]` each → `[b, s, 3h]`.
fn pack_qkv(q: &[f32], k: &[f32], v: &[f32], h: usize) -> Vec<f32> {
    let mut out = vec![0f32; 3 * q.len()];
    for (r, o) in out.chunks_exact_mut(3 * h).enumerate() {
        o[..h].copy_from_slice(&q[r * h..(r + 1) * h]);
        o[h..2 * h].copy_from_slice(&k[r * h..(r + 1) * h]);
        o[2 * h..].copy_from_slice(&v[r * h..(r + 1) * h]);
    }
    out
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "cliplab-attention"
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
        let q = contiguous_f32(s1, l1, "attention q")?;
        let k = contiguous_f32(s2, l2, "attention k")?;
        let v = contiguous_f32(s3, l3, "attention v")?;
        if l2.dims() != l1.dims() || l3.dims() != l1.dims() {
            candle_core::bail!("attention: q {:?}, k {:?}, v {:?}", l1.dims(), l2.dims(), l3.dims());
        }
        let (b, s, h) = l1.shape().dims3()?;
        let packed = pack_qkv(q, k, v, h);
        let x = packed.as_slice();
        let (b, s, h, hd) = self.dims(&Layout::contiguous((b, s, 3 * h)))?;
        let mut out = vec![0f32; b * s * h];
        let row = 3 * h;
        par_items(&mut out, s * h, b * self.heads * s * s * hd * 2, |first, out| {
            let mut p = vec![0f32; s * s];
            for (bi, o) in out.chunks_exact_mut(s * h).enumerate() {
                let xb = &x[(first + bi) * s * row..(first + bi + 1) * s * row];
                for head in 0..self.heads {
                    self.probs(xb, s, h, hd, head, &mut p);
                    let vo = 2 * h + head * hd;
                    for i in 0..s {
                        let n = if self.causal { i + 1 } else { s };
                        let oi = &mut o[i * h + head * hd..i * h + (head + 1) * hd];
                        for j in 0..n {
                            axpy(p[i * s + j], &xb[j * row + vo..j * row + vo + hd], oi);
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, s, h))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let qkv = Tensor::cat(&[q, k, v], 2)?;
        let op = AttentionBwd { fwd: AttentionOp { heads: self.heads, scale: self.scale, causal: self.causal } };
        // [3, b, s, h]: each gradient a contiguous block.
        let d = qkv.apply_op2_no_bwd(&g, &op)?;
        Ok((Some(d.i(0)?), Some(d.i(1)?), Some(d.i(2)?)))
    }
}

/// `(qkv, d out)` → `d qkv`, recomputing the probabilities.
struct AttentionBwd {
    fwd: AttentionOp,
}

impl CustomOp2 for AttentionBwd {
    fn name(&self) -> &'static str {
        "cliplab-attention-bwd"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, "attention bwd qkv")?;
        let g = contiguous_f32(s2, l2, "attention bwd grad")?;
        let (b, s, h, hd) = self.fwd.dims(l1)?;
        if g.len() != b * s * h {
            candle_core::bail!("attention bwd: grad {:?} for qkv {:?}", l2.dims(), l1.dims());
        }
        let heads = self.fwd.heads;
        let scale = self.fwd.scale;
        let causal = self.fwd.causal;
        let row = 3 * h;
        let mut out = vec![0f32; b * s * row];
        par_items(&mut out, s * row, b * heads * s * s * hd * 5, |first, out| {
            let mut p = vec![0f32; s * s];
            let mut dp = vec![0f32; s];
            for (bi, dx) in out.chunks_exact_mut(s * row).enumerate() {
                let xb = &x[(first + bi) * s * row..(first + bi + 1) * s * row];
                let gb = &g[(first + bi) * s * h..(first + bi + 1) * s * h];
                for head in 0..heads {
                    self.fwd.probs(xb, s, h, hd, head, &mut p);
                    let (qo, ko, vo) = (head * hd, h + head * hd, 2 * h + head * hd);
                    for i in 0..s {
                        let n = if causal { i + 1 } else { s };
                        let go = &gb[i * h + head * hd..i * h + (head + 1) * hd];
                        let pr = &p[i * s..i * s + n];
                        // dP_ij = dO_i . v_j ; dV_j += P_ij dO_i
                        for j in 0..n {
                            dp[j] = dot(go, &xb[j * row + vo..j * row + vo + hd]);
                            axpy(pr[j], go, &mut dx[j * row + vo..j * row + vo + hd]);
                        }
                        // dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij), times the scale.
                        let c = dot(pr, &dp[..n]);
                        for j in 0..n {
                            dp[j] = scale * pr[j] * (dp[j] - c);
                        }
                        // dQ_i = sum_j dS_ij k_j ; dK_j += dS_ij q_i
                        let dq = &mut dx[i * row + qo..i * row + qo + hd];
                        for j in 0..n {
                            axpy(dp[j], &xb[j * row + ko..j * row + ko + hd], dq);
                        }
                        let q = &xb[i * row + qo..i * row + qo + hd];
                        for j in 0..n {
                            axpy(dp[j], q, &mut dx[j * row + ko..j * row + ko + hd]);
                        }
                    }
                }
            }
        });
        // [b, s, 3h] → [3, b, s, h].
        let n = b * s;
        let mut split = vec![0f32; 3 * n * h];
        for (r, src) in out.chunks_exact(row).enumerate() {
            for part in 0..3 {
                split[(part * n + r) * h..(part * n + r + 1) * h].copy_from_slice(&src[part * h..(part + 1) * h]);
            }
        }
        Ok((CpuStorage::F32(split), Shape::from((3, b, s, h))))
    }
}

/// Multi-head self-attention from the projections `q`, `k`, `v` `[b, s, h]` → `[b, s, h]` (before the output
/// projection): `softmax(scale * q k^T + mask) v` per head, heads concatenated, `mask` causal when `causal`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64, causal: bool) -> Result<Tensor> {
    if fused_ok(q) && k.dtype() == DType::F32 && v.dtype() == DType::F32 {
        return q.contiguous()?.apply_op3(
            &k.contiguous()?,
            &v.contiguous()?,
            AttentionOp { heads, scale: scale as f32, causal },
        );
    }
    attention_composite(q, k, v, heads, scale, causal)
}

/// The same as [`attention`] with candle's own (differentiable) ops: the path off the CPU.
fn attention_composite(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64, causal: bool) -> Result<Tensor> {
    let (b, s, h) = q.dims3()?;
    let hd = h / heads;
    let split = |t: &Tensor| -> Result<Tensor> { t.reshape((b, s, heads, hd))?.transpose(1, 2)?.contiguous() };
    let q = (split(q)? * scale)?;
    let (k, v) = (split(k)?, split(v)?);
    let mut w = q.matmul(&k.t()?)?;
    if causal {
        let m: Vec<f32> = (0..s)
            .flat_map(|i| (0..s).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let m = Tensor::from_vec(m, (s, s), q.device())?.to_dtype(w.dtype())?;
        w = w.broadcast_add(&m)?;
    }
    let w = softmax_last_dim(&w)?;
    w.matmul(&v)?.transpose(1, 2)?.reshape((b, s, h))
}

// ---------------------------------------------------------------------------------------------------------------
// Embeddings

/// `out[r, t] = table[ids[r, t]] + pos[t]`: `table` `[V, h]`, `ids` `[n, s]` (u32), `pos` `[P >= s, h]`.
struct EmbedTokens;

impl CustomOp3 for EmbedTokens {
    fn name(&self) -> &'static str {
        "cliplab-embed-tokens"
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
        let table = contiguous_f32(s1, l1, "embed table")?;
        let ids = contiguous_u32(s2, l2, "embed ids")?;
        let pos = contiguous_f32(s3, l3, "embed positions")?;
        let (v, h) = l1.shape().dims2()?;
        let (n, s) = l2.shape().dims2()?;
        let (p, hp) = l3.shape().dims2()?;
        if hp != h || p < s {
            candle_core::bail!("embed: table {:?}, ids {:?}, positions {:?}", l1.dims(), l2.dims(), l3.dims());
        }
        let mut out = vec![0f32; n * s * h];
        for (k, o) in out.chunks_exact_mut(h).enumerate() {
            let id = ids[k] as usize;
            if id >= v {
                candle_core::bail!("embed: token id {id} out of range for a vocabulary of {v}");
            }
            let t = k % s;
            let e = &table[id * h..(id + 1) * h];
            let pr = &pos[t * h..(t + 1) * h];
            for i in 0..h {
                o[i] = e[i] + pr[i];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((n, s, h))))
    }

    fn bwd(
        &self,
        table: &Tensor,
        ids: &Tensor,
        pos: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let (v, _) = table.dims2()?;
        let (p, _) = pos.dims2()?;
        let dtable = ids.apply_op2_no_bwd(&g, &ScatterRows { rows: v, wrap: None })?;
        let dpos = ids.apply_op2_no_bwd(&g, &ScatterRows { rows: p, wrap: Some(()) })?;
        Ok((Some(dtable), None, Some(dpos)))
    }
}

/// `[rows, h]` gradient from `g` `[n, s, h]`: rows `ids[r, t]` (`wrap: None`) or positions `t` (`Some`)
/// accumulate `g[r, t]`. The buffer is allocated zeroed (fresh pages, only touched rows are written).
struct ScatterRows {
    rows: usize,
    wrap: Option<()>,
}

impl CustomOp2 for ScatterRows {
    fn name(&self) -> &'static str {
        "cliplab-scatter-rows"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let ids = contiguous_u32(s1, l1, "scatter ids")?;
        let g = contiguous_f32(s2, l2, "scatter grad")?;
        let (_, s) = l1.shape().dims2()?;
        let h = match l2.dims().last() {
            Some(&h) if h > 0 && g.len() == ids.len() * h => h,
            _ => candle_core::bail!("scatter: grad {:?} for ids {:?}", l2.dims(), l1.dims()),
        };
        let mut out = vec![0f32; self.rows * h];
        for (k, gr) in g.chunks_exact(h).enumerate() {
            let row = match self.wrap {
                None => ids[k] as usize,
                Some(()) => k % s,
            };
            if row >= self.rows {
                candle_core::bail!("scatter: row {row} out of range {}", self.rows);
            }
            for (o, x) in out[row * h..(row + 1) * h].iter_mut().zip(gr) {
                *o += x;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((self.rows, h))))
    }
}

/// Token embeddings plus position embeddings: `table` `[V, h]`, `ids` `[n, s]` (u32), `pos` `[P >= s, h]` →
/// `[n, s, h]`, differentiable with respect to `table` and `pos`.
pub fn embed_tokens(table: &Tensor, ids: &Tensor, pos: &Tensor) -> Result<Tensor> {
    if fused_ok(table) && pos.dtype() == DType::F32 && ids.dtype() == DType::U32 {
        table.contiguous()?.apply_op3(&ids.contiguous()?, &pos.contiguous()?, EmbedTokens)
    } else {
        let (n, s) = ids.dims2()?;
        let h = table.dim(1)?;
        let e = table.index_select(&ids.flatten_all()?, 0)?.reshape((n, s, h))?;
        e.broadcast_add(&pos.narrow(0, 0, s)?)
    }
}

/// `[cls; patches] + pos`: `patches` `[b, g, h]`, `cls` `[h]`, `pos` `[g + 1, h]` → `[b, g + 1, h]`.
struct VisionEmbed;

impl CustomOp3 for VisionEmbed {
    fn name(&self) -> &'static str {
        "cliplab-vision-embed"
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
        let patches = contiguous_f32(s1, l1, "vision embed patches")?;
        let cls = contiguous_f32(s2, l2, "vision embed class")?;
        let pos = contiguous_f32(s3, l3, "vision embed positions")?;
        let (b, g, h) = l1.shape().dims3()?;
        if cls.len() != h || l3.dims() != [g + 1, h] {
            candle_core::bail!("vision embed: {:?}, {:?}, {:?}", l1.dims(), l2.dims(), l3.dims());
        }
        let s = g + 1;
        let mut out = vec![0f32; b * s * h];
        for (k, o) in out.chunks_exact_mut(h).enumerate() {
            let (bi, t) = (k / s, k % s);
            let src = if t == 0 { cls } else { &patches[(bi * g + t - 1) * h..(bi * g + t) * h] };
            let pr = &pos[t * h..(t + 1) * h];
            for i in 0..h {
                o[i] = src[i] + pr[i];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, s, h))))
    }

    fn bwd(
        &self,
        patches: &Tensor,
        _cls: &Tensor,
        _pos: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, np, h) = patches.dims3()?;
        let all = g.contiguous()?.apply_op1_no_bwd(&VisionEmbedBwd)?;
        let dpatches = all.narrow(0, 0, b * np)?.reshape((b, np, h))?;
        let dcls = all.narrow(0, b * np, 1)?.reshape(h)?;
        let dpos = all.narrow(0, b * np + 1, np + 1)?;
        Ok((Some(dpatches), Some(dcls), Some(dpos)))
    }
}

/// `g` `[b, g + 1, h]` → `[b g + 1 + g + 1, h]`: the patch rows, then the class row summed over the batch,
/// then the position rows summed over the batch.
struct VisionEmbedBwd;

impl CustomOp1 for VisionEmbedBwd {
    fn name(&self) -> &'static str {
        "cliplab-vision-embed-bwd"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(st, l, "vision embed bwd")?;
        let (b, s, h) = l.shape().dims3()?;
        let np = s - 1;
        let mut out = vec![0f32; (b * np + 1 + s) * h];
        let (dp, rest) = out.split_at_mut(b * np * h);
        let (dcls, dpos) = rest.split_at_mut(h);
        for (k, gr) in g.chunks_exact(h).enumerate() {
            let (bi, t) = (k / s, k % s);
            if t == 0 {
                dcls.iter_mut().zip(gr).for_each(|(o, x)| *o += x);
            } else {
                dp[(bi * np + t - 1) * h..(bi * np + t) * h].copy_from_slice(gr);
            }
            dpos[t * h..(t + 1) * h].iter_mut().zip(gr).for_each(|(o, x)| *o += x);
        }
        Ok((CpuStorage::F32(out), Shape::from((b * np + 1 + s, h))))
    }
}

/// The class token followed by the patch embeddings, plus position embeddings.
pub fn vision_embed(patches: &Tensor, cls: &Tensor, pos: &Tensor) -> Result<Tensor> {
    if fused_ok(patches) && cls.dtype() == DType::F32 && pos.dtype() == DType::F32 {
        patches.contiguous()?.apply_op3(&cls.contiguous()?, &pos.contiguous()?, VisionEmbed)
    } else {
        let (b, _, h) = patches.dims3()?;
        let c = cls.reshape((1, 1, h))?.broadcast_as((b, 1, h))?;
        Tensor::cat(&[&c, patches], 1)?.broadcast_add(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        // A deterministic pattern is enough here.
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .expect("diff")
    }

    /// The fused op and candle's own composite ops (which candle differentiates) agree on values and on every
    /// gradient.
    #[test]
    fn layer_norm_matches_composite_forward_and_backward() -> Result<()> {
        let x = Var::from_tensor(&rand(&[2, 3, 8], 1))?;
        let w = Var::from_tensor(&(rand(&[8], 2) + 1.0)?)?;
        let b = Var::from_tensor(&rand(&[8], 3))?;
        let coef = rand(&[2, 3, 8], 4);
        let fused = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?;
        let slow = candle_nn::ops::layer_norm_slow(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)?;
        assert!(max_diff(&fused, &slow) < 1e-5);
        let gf = (fused * &coef)?.sum_all()?.backward()?;
        let gs = (slow * &coef)?.sum_all()?.backward()?;
        for v in [&x, &w, &b] {
            let a = gf.get(v).expect("fused grad");
            let c = gs.get(v).expect("slow grad");
            assert!(max_diff(a, c) < 1e-4, "grad differs by {}", max_diff(a, c));
            assert!(a.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        }
        Ok(())
    }

    /// The fused attention (forward and all three gradients) agrees with the composite one, causal or not.
    #[test]
    fn attention_matches_composite_forward_and_backward() -> Result<()> {
        for causal in [false, true] {
            let q = Var::from_tensor(&rand(&[2, 5, 8], 7))?;
            let k = Var::from_tensor(&rand(&[2, 5, 8], 8))?;
            let v = Var::from_tensor(&rand(&[2, 5, 8], 9))?;
            let coef = rand(&[2, 5, 8], 10);
            let fused = attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), 2, 0.5, causal)?;
            let slow = attention_composite(q.as_tensor(), k.as_tensor(), v.as_tensor(), 2, 0.5, causal)?;
            assert!(max_diff(&fused, &slow) < 1e-5);
            let gf = (fused * &coef)?.sum_all()?.backward()?;
            let gs = (slow * &coef)?.sum_all()?.backward()?;
            for x in [&q, &k, &v] {
                let (a, c) = (gf.get(x).expect("fused grad"), gs.get(x).expect("slow grad"));
                assert!(max_diff(a, c) < 1e-5, "grad differs by {}", max_diff(a, c));
            }
        }
        Ok(())
    }

    /// Bias + quick GELU, bias + residual and the embedding sums agree with candle's composite ops.
    #[test]
    fn fused_bias_and_embedding_ops_match_composite() -> Result<()> {
        let y = Var::from_tensor(&rand(&[6, 8], 11))?;
        let b = Var::from_tensor(&rand(&[8], 12))?;
        let r = Var::from_tensor(&rand(&[6, 8], 13))?;
        let coef = rand(&[6, 8], 14);
        let pairs = [
            (bias_quick_gelu(y.as_tensor(), b.as_tensor())?, quick_gelu(&y.as_tensor().broadcast_add(b.as_tensor())?)?),
            (
                bias_add_residual(y.as_tensor(), b.as_tensor(), r.as_tensor())?,
                (y.as_tensor().broadcast_add(b.as_tensor())? + r.as_tensor())?,
            ),
        ];
        for (fused, slow) in pairs {
            assert!(max_diff(&fused, &slow) < 1e-6);
            let gf = (fused * &coef)?.sum_all()?.backward()?;
            let gs = (slow * &coef)?.sum_all()?.backward()?;
            for x in [&y, &b] {
                let (a, c) = (gf.get(x).expect("fused grad"), gs.get(x).expect("slow grad"));
                assert!(max_diff(a, c) < 1e-5, "grad differs by {}", max_diff(a, c));
            }
        }
        let table = Var::from_tensor(&rand(&[7, 4], 15))?;
        let pos = Var::from_tensor(&rand(&[5, 4], 16))?;
        let ids = Tensor::new(&[[1u32, 3, 3], [6, 0, 1]], &Device::Cpu)?;
        let coef = rand(&[2, 3, 4], 17);
        let fused = embed_tokens(table.as_tensor(), &ids, pos.as_tensor())?;
        let slow = table
            .as_tensor()
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((2, 3, 4))?
            .broadcast_add(&pos.as_tensor().narrow(0, 0, 3)?)?;
        assert!(max_diff(&fused, &slow) < 1e-6);
        let gf = (fused * &coef)?.sum_all()?.backward()?;
        let gs = (slow * &coef)?.sum_all()?.backward()?;
        for x in [&table, &pos] {
            assert!(max_diff(gf.get(x).expect("fused grad"), gs.get(x).expect("slow grad")) < 1e-5);
        }
        Ok(())
    }

    #[test]
    fn softmax_matches_composite_forward_and_backward() -> Result<()> {
        let x = Var::from_tensor(&(rand(&[4, 7], 5) * 3.0)?)?;
        let coef = rand(&[4, 7], 6);
        let fused = softmax_last_dim(x.as_tensor())?;
        let slow = candle_nn::ops::softmax(x.as_tensor(), D::Minus1)?;
        assert!(max_diff(&fused, &slow) < 1e-6);
        let row_sums = fused.sum(D::Minus1)?.to_vec1::<f32>()?;
        assert!(row_sums.iter().all(|s| (s - 1.0).abs() < 1e-6));
        let gf = (fused * &coef)?.sum_all()?.backward()?;
        let gs = (slow * &coef)?.sum_all()?.backward()?;
        assert!(max_diff(gf.get(&x).expect("grad"), gs.get(&x).expect("grad")) < 1e-5);
        Ok(())
    }
}
