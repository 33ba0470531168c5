//! Differentiable fused ops for the CLIP modules.
//!
//! candle 0.11's fused `candle_nn::ops::layer_norm` and `softmax_last_dim` have no backward pass: used in a
//! model that is trained, they silently cut the gradient (only what comes after them learns, and the loss still
//! falls, so nothing looks wrong). The ops here run a fused forward on the CPU (one pass per row, no
//! temporaries) and define their backward with tensor ops, so gradients flow everywhere. On other devices, or
//! for other dtypes, they fall back to the composite formulation, which candle differentiates itself.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, D};

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
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mean = row.iter().sum::<f32>() / d as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let rstd = 1.0 / (var + self.eps).sqrt();
            for i in 0..d {
                o[i] = (row[i] - mean) * rstd * w[i] + b[i];
            }
        }
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
        let d = w.dim(0)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let rstd = (var + self.eps as f64)?.sqrt()?.recip()?;
        let xhat = xc.broadcast_mul(&rstd)?;
        let g2 = g.reshape(((), d))?;
        let dw = (g * &xhat)?.reshape(((), d))?.sum(0)?;
        let db = g2.sum(0)?;
        let gw = g.broadcast_mul(w)?;
        let m1 = gw.mean_keepdim(D::Minus1)?;
        let m2 = (&gw * &xhat)?.mean_keepdim(D::Minus1)?;
        let dx = gw.broadcast_sub(&m1)?.sub(&xhat.broadcast_mul(&m2)?)?.broadcast_mul(&rstd)?;
        Ok((Some(dx), Some(dw), Some(db)))
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

/// `x * sigmoid(1.702 x)`, the activation of OpenAI's CLIP checkpoints.
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    x * candle_nn::ops::sigmoid(&(x * 1.702)?)?
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
