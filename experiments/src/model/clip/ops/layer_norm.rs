//! Layer norm over the last dimension: fused forward, fused backward (dx; dweight and dbias in one pass).

use candle_core::{DType, IndexOp, Result, Shape, Tensor, D};

use super::{dot, f32_inputs, fused_ok, par_items, row_stats, sum, Arg, Fused, Kernel};

struct LayerNormOp {
    eps: f32,
}

impl Kernel<3> for LayerNormOp {
    const NAME: &'static str = "cliplab-layer-norm";

    fn cpu(&self, args: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let [x, w, b] = f32_inputs(args, "layer_norm", ["x", "weight", "bias"])?;
        let d = w.len();
        if d == 0 || b.len() != d || x.dims.last() != Some(&d) {
            candle_core::bail!("layer_norm: shape mismatch {:?} / {d}", x.dims);
        }
        let mut out = vec![0f32; x.len()];
        let eps = self.eps;
        par_items(&mut out, d, x.len() * 3, |first, out| normalize_rows(out, &x[first * d..first * d + out.len()], &w, &b, eps));
        Ok((out, x.shape.clone()))
    }

    fn grads(&self, [x, w, _b]: [&Tensor; 3], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 3]> {
        let dx = x.apply_op3_no_bwd(w, g, &Fused(LayerNormBwdX { eps: self.eps }))?;
        let dwb = x.apply_op2_no_bwd(g, &Fused(LayerNormBwdWB { eps: self.eps }))?;
        Ok([Some(dx), Some(dwb.i(0)?), Some(dwb.i(1)?)])
    }
}

/// `dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))` with `gw = g * w`, one row at a time.
struct LayerNormBwdX {
    eps: f32,
}

impl Kernel<3> for LayerNormBwdX {
    const NAME: &'static str = "cliplab-layer-norm-bwd-x";

    fn cpu(&self, args: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let [x, w, g] = f32_inputs(args, "layer_norm bwd", ["x", "weight", "grad"])?;
        let d = w.len();
        if d == 0 || g.len() != x.len() || x.len() % d != 0 {
            candle_core::bail!("layer_norm bwd: shape mismatch {:?} / {d}", x.dims);
        }
        let mut out = vec![0f32; x.len()];
        let eps = self.eps;
        par_items(&mut out, d, x.len() * 6, |first, out| {
            let rows = first * d..first * d + out.len();
            layer_norm_dx_rows(out, &x[rows.clone()], &g[rows], &w, eps);
        });
        Ok((out, x.shape.clone()))
    }
}

wide! {
    /// `out = (x - mean) · rstd · w + b` for each row of `x` (rows as long as `w`).
    fn normalize_rows(out: &mut [f32], x: &[f32], w: &[f32], b: &[f32], eps: f32) {
        let d = w.len();
        for (o, row) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let (mean, rstd) = row_stats(row, eps);
            for i in 0..d {
                o[i] = (row[i] - mean) * rstd * w[i] + b[i];
            }
        }
    }
}

wide! {
    /// [`LayerNormBwdX`] for the rows of `x` and their gradients `g` (rows as long as `w`).
    fn layer_norm_dx_rows(out: &mut [f32], x: &[f32], g: &[f32], w: &[f32], eps: f32) {
        let d = w.len();
        let mut gw = vec![0f32; d];
        for ((o, row), grow) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(g.chunks_exact(d)) {
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
    }
}

/// `[2, d]`: row 0 `dweight = sum_rows(g * xhat)`, row 1 `dbias = sum_rows(g)`.
struct LayerNormBwdWB {
    eps: f32,
}

impl Kernel<2> for LayerNormBwdWB {
    const NAME: &'static str = "cliplab-layer-norm-bwd-wb";

    fn cpu(&self, args: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let [x, g] = f32_inputs(args, "layer_norm bwd", ["x", "grad"])?;
        let d = match x.dims.last() {
            Some(&d) if d > 0 && x.len() % d == 0 && g.len() == x.len() => d,
            _ => candle_core::bail!("layer_norm bwd: shape mismatch {:?}", x.dims),
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
        Ok((out, Shape::from((2, d))))
    }
}

/// Layer normalisation over the last dimension, differentiable with respect to all three inputs.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if fused_ok(x) {
        x.contiguous()?
            .apply_op3(&weight.contiguous()?, &bias.contiguous()?, Fused(LayerNormOp { eps: eps as f32 }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clip::ops::test_util::{max_diff, rand};
    use candle_core::Var;

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
}
