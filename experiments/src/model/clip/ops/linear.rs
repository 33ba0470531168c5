//! The matrix product of a linear layer, `x · wᵀ`, through [`crate::model::blas`] (OpenBLAS where the machine
//! has it), forward and backward, with no transposed copy anywhere: `dx = g · w` and `dw = gᵀ · x` read their
//! operands transposed in place. candle's own `matmul` backward materialises `wᵀ` and `gᵀ` first, and its
//! products run on the `gemm` crate; on our 2-core machine this op roughly halves a training step.
//!
//! Gradients are computed only for inputs that track them: a frozen tower's weights cost no `dw` product, and
//! the pixels' patch matrix costs no `dx`.

use candle_core::{Result, Shape, Tensor};

use super::{f32_inputs, fused_ok, Arg, Fused, Kernel};
use crate::model::blas::{self, Mat};

/// `a · b` for 2-D contiguous `a` and `b`, either read transposed.
struct Product {
    ta: bool,
    tb: bool,
}

impl Product {
    /// `(m, k, n)` of `op(a) · op(b)` from the stored dims.
    fn dims(&self, a: &[usize], b: &[usize]) -> Result<(usize, usize, usize)> {
        let (&[ar, ac], &[br, bc]) = (a, b) else {
            candle_core::bail!("linear: 2-D operands expected, got {a:?} and {b:?}");
        };
        let (m, k) = if self.ta { (ac, ar) } else { (ar, ac) };
        let (k2, n) = if self.tb { (bc, br) } else { (br, bc) };
        if k != k2 {
            candle_core::bail!("linear: inner dims differ ({a:?}, {b:?}, transposed {}/{})", self.ta, self.tb);
        }
        Ok((m, k, n))
    }
}

impl Kernel<2> for Product {
    const NAME: &'static str = "cliplab-linear";

    fn cpu(&self, args: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let [a, b] = f32_inputs(args, "linear", ["a", "b"])?;
        let (m, k, n) = self.dims(a.dims, b.dims)?;
        let mut out = vec![0f32; m * n];
        blas::sgemm(m, n, k, Mat { data: &a, t: self.ta }, Mat { data: &b, t: self.tb }, 0.0, &mut out);
        Ok((out, Shape::from((m, n))))
    }

    fn grads(&self, [x, w]: [&Tensor; 2], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 2]> {
        // Only the forward `x · wᵀ` (ta = false, tb = true) is differentiated; the products below are leaves.
        if self.ta || !self.tb {
            return Err(candle_core::Error::BackwardNotSupported { op: Self::NAME });
        }
        let dx = if x.track_op() { Some(g.apply_op2_no_bwd(w, &Fused(Product { ta: false, tb: false }))?) } else { None };
        let dw = if w.track_op() { Some(g.apply_op2_no_bwd(x, &Fused(Product { ta: true, tb: false }))?) } else { None };
        Ok([dx, dw])
    }
}

/// `x · wᵀ` for `x` `[rows, in]` and `w` `[out, in]` (an `nn.Linear` weight), differentiable in both.
pub fn linear_product(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if fused_ok(x) && fused_ok(w) {
        x.contiguous()?.apply_op2(&w.contiguous()?, Fused(Product { ta: false, tb: true }))
    } else {
        x.matmul(&w.t()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clip::ops::test_util::{max_diff, rand};
    use candle_core::Var;

    /// Values and both gradients equal candle's own `matmul` (which candle differentiates itself).
    #[test]
    fn linear_product_matches_matmul_forward_and_backward() -> Result<()> {
        let x = Var::from_tensor(&rand(&[7, 12], 1))?;
        let w = Var::from_tensor(&rand(&[5, 12], 2))?;
        let coef = rand(&[7, 5], 3);
        let fused = linear_product(x.as_tensor(), w.as_tensor())?;
        let slow = x.as_tensor().matmul(&w.as_tensor().t()?)?;
        assert!(max_diff(&fused, &slow) < 1e-5);
        let gf = (fused * &coef)?.sum_all()?.backward()?;
        let gs = (slow * &coef)?.sum_all()?.backward()?;
        for v in [&x, &w] {
            let (a, c) = (gf.get(v).expect("fused grad"), gs.get(v).expect("slow grad"));
            assert_eq!(a.dims(), c.dims());
            assert!(max_diff(a, c) < 1e-4, "grad differs by {}", max_diff(a, c));
            assert!(a.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        }
        Ok(())
    }

    /// A constant (frozen) weight gets no gradient product, and the input's gradient is still right.
    #[test]
    fn frozen_weight_gets_no_gradient() -> Result<()> {
        let x = Var::from_tensor(&rand(&[4, 6], 4))?;
        let w = rand(&[3, 6], 5);
        let g = linear_product(x.as_tensor(), &w)?.sum_all()?.backward()?;
        assert!(g.get(&w).is_none());
        let want = x.as_tensor().matmul(&w.t()?)?.sum_all()?.backward()?;
        let (a, b) = (g.get(&x).expect("dx"), want.get(&x).expect("dx"));
        assert!(max_diff(a, b) < 1e-5);
        Ok(())
    }
}
