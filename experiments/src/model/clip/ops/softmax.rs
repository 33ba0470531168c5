//! Softmax over the last dimension, differentiable (kept for general use; the attention op has its own).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};

use super::{contiguous, fused_ok};

struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "cliplab-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous::<f32>(s, l, "softmax")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clip::ops::test_util::{max_diff, rand};
    use candle_core::Var;

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
