//! What follows a linear layer's matrix product: bias (+ residual) or bias + quick GELU.

use candle_core::{DType, Result, Shape, Tensor};

use super::{f32_inputs, fused_ok, par_items, row_input, Arg, Fused, Kernel};

/// The frame shared by the bias kernels: `y` `[n, d]` (rows), `b` `[d]` and `K` more inputs shaped like `y`
/// (`names` names them in errors) → `f(y row, rows of the others, b, out row)` for each row, the output shaped
/// like `y`; `cost` is the work per element, for the thread split.
fn bias_rows<const K: usize, F>(
    op: &str,
    (y, b): (Arg<'_>, Arg<'_>),
    others: [Arg<'_>; K],
    names: [&str; K],
    cost: usize,
    f: F,
) -> Result<(Vec<f32>, Shape)>
where
    F: Fn(&[f32], [&[f32]; K], &[f32], &mut [f32]) + Sync,
{
    let [y, b] = f32_inputs([y, b], op, ["y", "bias"])?;
    let others = f32_inputs(others, op, names)?;
    let d = b.len();
    if y.dims.last() != Some(&d) || d == 0 || b.dims.len() != 1 {
        candle_core::bail!("{op}: shape mismatch {:?} + {:?}", y.dims, b.dims);
    }
    for (x, name) in others.iter().zip(names) {
        if x.len() != y.len() {
            candle_core::bail!("{op}: {name} {:?} vs {:?}", x.dims, y.dims);
        }
    }
    let mut out = vec![0f32; y.len()];
    par_items(&mut out, d, y.len() * cost, |first, out| {
        for (r, o) in out.chunks_exact_mut(d).enumerate() {
            let row = (first + r) * d..(first + r + 1) * d;
            f(&y[row.clone()], others.map(|x| &x.data[row.clone()]), &b, o);
        }
    });
    Ok((out, y.shape.clone()))
}

/// `out = y + b`, `b` broadcast over the rows of `y`.
struct BiasAdd;

impl Kernel<2> for BiasAdd {
    const NAME: &'static str = "cliplab-bias-add";

    fn cpu(&self, [y, b]: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        bias_rows("bias_add", (y, b), [], [], 2, |yr, [], b, o| {
            let d = o.len();
            for i in 0..d {
                o[i] = yr[i] + b[i];
            }
        })
    }

    fn grads(&self, _: [&Tensor; 2], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 2]> {
        let db = g.apply_op1_no_bwd(&Fused(ColumnSum))?;
        Ok([Some(g.clone()), Some(db)])
    }
}

/// `out = y + b + r`, `b` broadcast over the rows of `y`, `r` shaped like `y`.
struct BiasAddResidual;

impl Kernel<3> for BiasAddResidual {
    const NAME: &'static str = "cliplab-bias-add-residual";

    fn cpu(&self, [y, b, res]: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        bias_rows("bias_add_residual", (y, b), [res], ["residual"], 3, |yr, [rr], b, o| {
            let d = o.len();
            for i in 0..d {
                o[i] = yr[i] + b[i] + rr[i];
            }
        })
    }

    fn grads(&self, _: [&Tensor; 3], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 3]> {
        let db = g.apply_op1_no_bwd(&Fused(ColumnSum))?;
        Ok([Some(g.clone()), Some(db), Some(g.clone())])
    }
}

/// `[n, d]` → `[d]`: the sum of the rows.
pub(super) struct ColumnSum;

impl Kernel<1> for ColumnSum {
    const NAME: &'static str = "cliplab-column-sum";

    fn cpu(&self, args: [Arg<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let (g, d) = row_input(args, "column_sum")?;
        let mut out = vec![0f32; d];
        for row in g.chunks_exact(d) {
            for i in 0..d {
                out[i] += row[i];
            }
        }
        Ok((out, Shape::from(d)))
    }
}

const QUICK_GELU_K: f32 = 1.702;

#[inline]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + super::exp(-z))
}

/// `quick_gelu(z) = z · sigmoid(1.702 z)`.
#[inline]
pub(super) fn quick_gelu_value(z: f32) -> f32 {
    z * sigmoid(QUICK_GELU_K * z)
}

/// `quick_gelu'(z) = s + 1.702 z s (1 - s)` with `s = sigmoid(1.702 z)`.
#[inline]
pub(super) fn quick_gelu_slope(z: f32) -> f32 {
    let s = sigmoid(QUICK_GELU_K * z);
    s + QUICK_GELU_K * z * s * (1.0 - s)
}

/// `out = quick_gelu(y + b)`.
struct BiasQuickGelu;

impl Kernel<2> for BiasQuickGelu {
    const NAME: &'static str = "cliplab-bias-quick-gelu";

    fn cpu(&self, [y, b]: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        bias_rows("bias_quick_gelu", (y, b), [], [], 8, |yr, [], b, o| bias_quick_gelu_row(o, yr, b))
    }

    fn grads(&self, [y, b]: [&Tensor; 2], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 2]> {
        let dz = y.apply_op3_no_bwd(b, g, &Fused(BiasQuickGeluBwd))?;
        let db = dz.apply_op1_no_bwd(&Fused(ColumnSum))?;
        Ok([Some(dz), Some(db)])
    }
}

/// `dz = g * (s + k z s (1 - s))` with `z = y + b`, `s = sigmoid(k z)`.
struct BiasQuickGeluBwd;

impl Kernel<3> for BiasQuickGeluBwd {
    const NAME: &'static str = "cliplab-bias-quick-gelu-bwd";

    fn cpu(&self, [y, b, g]: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        bias_rows("bias_quick_gelu bwd", (y, b), [g], ["grad"], 8, |yr, [gr], b, o| bias_quick_gelu_slope_row(o, yr, b, gr))
    }
}

wide! {
    /// `o = quick_gelu(y + b)`.
    fn bias_quick_gelu_row(o: &mut [f32], y: &[f32], b: &[f32]) {
        for ((o, &y), &b) in o.iter_mut().zip(y).zip(b) {
            *o = quick_gelu_value(y + b);
        }
    }
}

wide! {
    /// `o = g · quick_gelu'(y + b)`.
    fn bias_quick_gelu_slope_row(o: &mut [f32], y: &[f32], b: &[f32], g: &[f32]) {
        for (((o, &y), &b), &g) in o.iter_mut().zip(y).zip(b).zip(g) {
            *o = g * quick_gelu_slope(y + b);
        }
    }
}

/// `y + b`, `b` `[d]` broadcast over the rows of `y` `[.., d]`.
pub fn bias_add(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    if fused_ok(y) && b.dtype() == DType::F32 {
        y.contiguous()?.apply_op2(&b.contiguous()?, Fused(BiasAdd))
    } else {
        y.broadcast_add(b)
    }
}

/// `y + b + r`, `b` `[d]` broadcast over the rows of `y`, `r` shaped like `y`.
pub fn bias_add_residual(y: &Tensor, b: &Tensor, r: &Tensor) -> Result<Tensor> {
    if fused_ok(y) && b.dtype() == DType::F32 && r.dtype() == DType::F32 && r.dims() == y.dims() {
        y.contiguous()?.apply_op3(&b.contiguous()?, &r.contiguous()?, Fused(BiasAddResidual))
    } else {
        y.broadcast_add(b)? + r
    }
}

/// `quick_gelu(y + b)`.
pub fn bias_quick_gelu(y: &Tensor, b: &Tensor) -> Result<Tensor> {
    if fused_ok(y) && b.dtype() == DType::F32 {
        y.contiguous()?.apply_op2(&b.contiguous()?, Fused(BiasQuickGelu))
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
