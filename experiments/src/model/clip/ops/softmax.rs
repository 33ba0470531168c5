//! Softmax over the last dimension, differentiable (kept for general use; the attention op has its own).

use candle_core::{Result, Shape, Tensor, D};

use super::{fused_ok, row_input, softmax_prefix, Arg, Fused, Kernel};

struct SoftmaxOp;

impl Kernel<1> for SoftmaxOp {
    const NAME: &'static str = "cliplab-softmax-last-dim";

    fn cpu(&self, args: [Arg<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let (x, d) = row_input(args, "softmax")?;
        let mut out = vec![0f32; x.len()];
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            o.copy_from_slice(row);
            softmax_prefix(o, d, 1.0);
        }
        Ok((out, x.shape.clone()))
    }

    fn grads(&self, _: [&Tensor; 1], y: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 1]> {
        let gy = (g * y)?;
        let s = gy.sum_keepdim(D::Minus1)?;
        Ok([Some((gy - y.broadcast_mul(&s)?)?)])
    }
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fused_ok(x) {
        x.contiguous()?.apply_op1(Fused(SoftmaxOp))
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
