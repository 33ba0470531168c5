//! What follows a linear layer's matrix product: bias (+ residual) or bias + quick GELU.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::{contiguous, fused_ok, par_items};

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
        let y = contiguous::<f32>(s1, l1, "bias_add y")?;
        let b = contiguous::<f32>(s2, l2, "bias_add bias")?;
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
        let y = contiguous::<f32>(s1, l1, "bias_add_residual y")?;
        let b = contiguous::<f32>(s2, l2, "bias_add_residual bias")?;
        let res = contiguous::<f32>(s3, l3, "bias_add_residual residual")?;
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
        let g = contiguous::<f32>(s, l, "column_sum")?;
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
        let y = contiguous::<f32>(s1, l1, "bias_quick_gelu y")?;
        let b = contiguous::<f32>(s2, l2, "bias_quick_gelu bias")?;
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
        let y = contiguous::<f32>(s1, l1, "bias_quick_gelu bwd y")?;
        let b = contiguous::<f32>(s2, l2, "bias_quick_gelu bwd bias")?;
        let g = contiguous::<f32>(s3, l3, "bias_quick_gelu bwd grad")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clip::ops::test_util::{max_diff, rand};
    use candle_core::Var;

    /// Bias + quick GELU and bias + residual agree with candle's composite ops.
    #[test]
    fn fused_bias_ops_match_composite() -> Result<()> {
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
        Ok(())
    }
}
