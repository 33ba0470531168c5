//! The matrix product of a linear layer, `x · wᵀ`, through [`crate::model::blas`] (OpenBLAS where the machine
//! has it), forward and backward, with no transposed copy anywhere: `dx = g · w` and `dw = gᵀ · x` read their
//! operands transposed in place. candle's own `matmul` backward materialises `wᵀ` and `gᵀ` first, and its
//! products run on the `gemm` crate; on our 2-core machine this op roughly halves a training step.
//!
//! Gradients are computed only for inputs that track them: a frozen tower's weights cost no `dw` product, and
//! the pixels' patch matrix costs no `dx`.

use std::sync::Arc;

use candle_core::{Result, Shape, Tensor};

use super::bias::{quick_gelu, quick_gelu_slope, quick_gelu_value, ColumnSum};
use super::{f32_inputs, fused_ok, par_items, quick_gelu_into, Arg, Fused, Kernel};
use crate::model::blas::{self, Mat, PackedWeight};

/// `op(a) · op(b)` `[m, n]` in a new buffer. The buffer is allocated zeroed and the product added onto it (BLAS's
/// `beta = 1`): asked for `beta = 0`, OpenBLAS would zero it a second time first (`sgemm_beta`, 3 % of a training
/// step). The same bits either way: its kernel adds the product onto the zeroed output in both cases.
fn product_new(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    blas::sgemm(m, n, k, a, b, 1.0, &mut out);
    out
}

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
        Ok((product_new(m, n, k, Mat { data: &a, t: self.ta }, Mat { data: &b, t: self.tb }), Shape::from((m, n))))
    }

    fn grads(&self, [x, w]: [&Tensor; 2], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 2]> {
        // Only the forward `x · wᵀ` (ta = false, tb = true) is differentiated; the products below are leaves.
        if self.ta || !self.tb {
            return Err(candle_core::Error::BackwardNotSupported { op: Self::NAME });
        }
        product_grads(x, w, g)
    }
}

/// The gradients of `x · wᵀ` from the output's gradient `g`: `dx = g · w`, `dw = gᵀ · x`, each only when its input
/// tracks ops.
fn product_grads(x: &Tensor, w: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 2]> {
    let dx = if x.track_op() { Some(g.apply_op2_no_bwd(w, &Fused(Product { ta: false, tb: false }))?) } else { None };
    let dw = if w.track_op() { Some(g.apply_op2_no_bwd(x, &Fused(Product { ta: true, tb: false }))?) } else { None };
    Ok([dx, dw])
}

/// The `[m, k, n]` of `x · wᵀ` for `x` `[m, k]` and `w` `[n, k]`.
fn xwt_dims(x: &[usize], w: &[usize]) -> Result<(usize, usize, usize)> {
    Product { ta: false, tb: true }.dims(x, w)
}

/// `x · wᵀ + b`: the product is written over rows that hold the bias (BLAS's `beta = 1`), so adding the bias costs
/// no pass of its own and the product before the bias is never a tensor of its own (an op after it would keep it
/// for the backward pass).
struct BiasProduct;

impl Kernel<3> for BiasProduct {
    const NAME: &'static str = "cliplab-linear-bias";

    fn cpu(&self, args: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let [x, w, b] = f32_inputs(args, "linear", ["x", "weight", "bias"])?;
        let (m, k, n) = xwt_dims(x.dims, w.dims)?;
        if b.dims != [n].as_slice() {
            candle_core::bail!("linear: bias {:?} for {n} outputs", b.dims);
        }
        let mut out = Vec::with_capacity(m * n);
        for _ in 0..m {
            out.extend_from_slice(&b);
        }
        blas::sgemm(m, n, k, Mat { data: &x, t: false }, Mat { data: &w, t: true }, 1.0, &mut out);
        Ok((out, Shape::from((m, n))))
    }

    fn grads(&self, [x, w, b]: [&Tensor; 3], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 3]> {
        let [dx, dw] = product_grads(x, w, g)?;
        let db = if b.track_op() { Some(g.apply_op1_no_bwd(&Fused(ColumnSum))?) } else { None };
        Ok([dx, dw, db])
    }
}

/// `quick_gelu(z)` of `z` `[m, k]`, row by row over the pool: the activation a product reads, made where it is
/// read (forward and backward) instead of kept.
fn quick_gelu_of(z: &[f32], k: usize) -> Vec<f32> {
    let mut a = vec![0f32; z.len()];
    par_items(&mut a, k, z.len() * 8, |first, out| quick_gelu_into(out, &z[first * k..first * k + out.len()]));
    a
}

/// `quick_gelu(z) · wᵀ`, the MLP's second product on its activation. The activation (as large as `z`) is computed
/// here and again in the backward pass rather than kept: the backward needs `z` anyway, so the MLP keeps one
/// `[rows, intermediate]` tensor instead of two (the pre-activation and the activation).
struct GeluProduct;

impl Kernel<2> for GeluProduct {
    const NAME: &'static str = "cliplab-quick-gelu-linear";

    fn cpu(&self, args: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let [z, w] = f32_inputs(args, "quick_gelu linear", ["z", "weight"])?;
        let (m, k, n) = xwt_dims(z.dims, w.dims)?;
        let a = quick_gelu_of(&z, k);
        Ok((product_new(m, n, k, Mat { data: &a, t: false }, Mat { data: &w, t: true }), Shape::from((m, n))))
    }

    fn grads(&self, [z, w]: [&Tensor; 2], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 2]> {
        let dz = if z.track_op() { Some(z.apply_op3_no_bwd(g, w, &Fused(GeluProductDz))?) } else { None };
        let dw = if w.track_op() { Some(g.apply_op2_no_bwd(z, &Fused(GeluProductDw))?) } else { None };
        Ok([dz, dw])
    }
}

/// `(z [m, k], g [m, n], w [n, k])` → `dz = (g · w) ⊙ quick_gelu'(z)`, the slope applied in place on the product.
struct GeluProductDz;

impl Kernel<3> for GeluProductDz {
    const NAME: &'static str = "cliplab-quick-gelu-linear-dz";

    fn cpu(&self, args: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let [z, g, w] = f32_inputs(args, "quick_gelu linear bwd", ["z", "grad", "weight"])?;
        let (m, k, n) = xwt_dims(z.dims, w.dims)?;
        if g.dims != [m, n].as_slice() {
            candle_core::bail!("quick_gelu linear bwd: grad {:?} for output [{m}, {n}]", g.dims);
        }
        let mut dz = product_new(m, k, n, Mat { data: &g, t: false }, Mat { data: &w, t: false });
        par_items(&mut dz, k, m * k * 8, |first, out| times_gelu_slope(out, &z[first * k..first * k + out.len()]));
        Ok((dz, z.shape.clone()))
    }
}

wide! {
    /// `dz[i] *= quick_gelu'(z[i])`.
    fn times_gelu_slope(dz: &mut [f32], z: &[f32]) {
        for (o, &v) in dz.iter_mut().zip(z) {
            *o *= quick_gelu_slope(v);
        }
    }
}

/// `(g [m, n], z [m, k])` → `dw = gᵀ · quick_gelu(z)` `[n, k]`, the activation recomputed.
struct GeluProductDw;

impl Kernel<2> for GeluProductDw {
    const NAME: &'static str = "cliplab-quick-gelu-linear-dw";

    fn cpu(&self, args: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let [g, z] = f32_inputs(args, "quick_gelu linear bwd", ["grad", "z"])?;
        let (&[m, n], &[m2, k]) = (g.dims, z.dims) else {
            candle_core::bail!("quick_gelu linear bwd: 2-D operands expected, got {:?} and {:?}", g.dims, z.dims);
        };
        if m != m2 {
            candle_core::bail!("quick_gelu linear bwd: grad {:?} for z {:?}", g.dims, z.dims);
        }
        let a = quick_gelu_of(&z, k);
        let dw = product_new(n, k, m, Mat { data: &g, t: true }, Mat { data: &a, t: false });
        Ok((dw, Shape::from((n, k))))
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

/// `x · wᵀ + b` for `x` `[rows, in]`, `w` `[out, in]` and `b` `[out]`, differentiable in all three.
pub fn linear_bias(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    if fused_ok(x) && fused_ok(w) && fused_ok(b) {
        x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, Fused(BiasProduct))
    } else {
        x.matmul(&w.t()?)?.broadcast_add(b)
    }
}

/// `quick_gelu(z) · wᵀ` for `z` `[rows, in]` and `w` `[out, in]`, differentiable in both; the activation is
/// recomputed in the backward pass instead of kept.
pub fn quick_gelu_linear(z: &Tensor, w: &Tensor) -> Result<Tensor> {
    if fused_ok(z) && fused_ok(w) {
        z.contiguous()?.apply_op2(&w.contiguous()?, Fused(GeluProduct))
    } else {
        quick_gelu(z)?.matmul(&w.t()?)
    }
}

/// `x · wᵀ`, `quick_gelu(x) · wᵀ` or `x · wᵀ + b` with `w` packed once ([`PackedWeight`]): what a scoring model
/// computes (no backward pass; the model that trains never holds packed weights).
struct PackedProduct {
    w: Arc<PackedWeight>,
    gelu: bool,
}

impl PackedProduct {
    /// `x`'s rows times the packed weight, added onto `out`'s `m` rows of the weight's `n` outputs.
    fn rows(&self, x: &[f32], dims: &[usize], mut out: Vec<f32>) -> Result<(Vec<f32>, Shape)> {
        let (n, k) = (self.w.rows(), self.w.cols());
        let &[m, xk] = dims else {
            candle_core::bail!("packed linear: a 2-D input expected, got {dims:?}");
        };
        if xk != k || out.len() != m * n {
            candle_core::bail!("packed linear: input {dims:?} for a [{n}, {k}] weight");
        }
        if self.gelu {
            self.w.product_into_mapped(x, m, &mut out, quick_gelu_in_place);
        } else {
            self.w.product_into(x, m, &mut out);
        }
        Ok((out, Shape::from((m, n))))
    }
}

impl Kernel<1> for PackedProduct {
    const NAME: &'static str = "cliplab-packed-linear";

    fn cpu(&self, [x]: [Arg<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let [x] = f32_inputs([x], "packed linear", ["x"])?;
        let m = x.dims.first().copied().unwrap_or(0);
        self.rows(&x, x.dims, vec![0f32; m * self.w.rows()])
    }
}

impl Kernel<2> for PackedProduct {
    const NAME: &'static str = "cliplab-packed-linear-bias";

    fn cpu(&self, args: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let [x, b] = f32_inputs(args, "packed linear", ["x", "bias"])?;
        let (m, n) = (x.dims.first().copied().unwrap_or(0), self.w.rows());
        if b.dims != [n].as_slice() {
            candle_core::bail!("packed linear: bias {:?} for {n} outputs", b.dims);
        }
        let mut out = Vec::with_capacity(m * n);
        for _ in 0..m {
            out.extend_from_slice(&b);
        }
        self.rows(&x, x.dims, out)
    }
}

/// `residual + act(x) · wᵀ + b`: the product accumulates onto rows that already hold the residual plus the bias, so
/// neither the product alone nor a zeroed output is ever made (a transformer layer's output projection and second
/// MLP layer).
impl Kernel<3> for PackedProduct {
    const NAME: &'static str = "cliplab-packed-linear-residual";

    fn cpu(&self, args: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let [x, b, r] = f32_inputs(args, "packed linear", ["x", "bias", "residual"])?;
        let (m, n) = (x.dims.first().copied().unwrap_or(0), self.w.rows());
        if b.dims != [n].as_slice() || r.dims != [m, n].as_slice() {
            candle_core::bail!("packed linear: bias {:?} and residual {:?} for [{m}, {n}] outputs", b.dims, r.dims);
        }
        let mut out = Vec::with_capacity(m * n);
        for row in r.chunks_exact(n) {
            out.extend(row.iter().zip(b.iter()).map(|(r, b)| r + b));
        }
        self.rows(&x, x.dims, out)
    }
}

wide! {
    /// `v = quick_gelu(v)`, in place.
    fn quick_gelu_in_place(v: &mut [f32]) {
        for v in v.iter_mut() {
            *v = quick_gelu_value(*v);
        }
    }
}

/// `w` `[out, in]` packed for [`packed_linear`], or `None` where that is not available (no OpenBLAS kernel, not an
/// f32 CPU tensor, not 2-D).
pub fn pack_weight(w: &Tensor) -> Result<Option<Arc<PackedWeight>>> {
    let Ok((n, k)) = w.dims2() else { return Ok(None) };
    if !fused_ok(w) || !blas::packed_available() {
        return Ok(None);
    }
    let w = w.contiguous()?;
    let (storage, layout) = w.storage_and_layout();
    let (candle_core::Storage::Cpu(cpu), Some((first, end))) = (&*storage, layout.contiguous_offsets()) else {
        return Ok(None);
    };
    Ok(PackedWeight::pack(&cpu.as_slice::<f32>()?[first..end], n, k).map(Arc::new))
}

/// `residual + act(x) · wᵀ + b` for `x` `[rows, in]`, `residual` `[rows, out]` and a weight packed by
/// [`pack_weight`], `act` quick_gelu when `gelu`, in one op (the bias and the residual are where the product
/// accumulates); no backward pass. Equals [`packed_linear`] followed by a residual add.
pub fn packed_linear_residual(x: &Tensor, w: &Arc<PackedWeight>, b: &Tensor, residual: &Tensor, gelu: bool) -> Result<Tensor> {
    if !fused_ok(x) || !fused_ok(residual) || b.dtype() != candle_core::DType::F32 {
        candle_core::bail!("packed linear: f32 CPU tensors expected, got {:?} on {:?}", x.dtype(), x.device());
    }
    let op = Fused(PackedProduct { w: w.clone(), gelu });
    x.contiguous()?.apply_op3_no_bwd(&b.contiguous()?, &residual.contiguous()?, &op)
}

/// `act(x) · wᵀ (+ b)` for `x` `[rows, in]` and a weight packed by [`pack_weight`], `act` quick_gelu when `gelu`;
/// no backward pass. Equals [`linear_bias`], [`linear_product`] or [`quick_gelu_linear`] on the weight itself.
pub fn packed_linear(x: &Tensor, w: &Arc<PackedWeight>, b: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
    if !fused_ok(x) {
        candle_core::bail!("packed linear: the input must be an f32 CPU tensor, got {:?} on {:?}", x.dtype(), x.device());
    }
    let op = Fused(PackedProduct { w: w.clone(), gelu });
    match b {
        Some(b) => x.contiguous()?.apply_op2_no_bwd(&b.contiguous()?, &op),
        None => x.contiguous()?.apply_op1_no_bwd(&op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clip::ops::test_util::{max_diff, rand};
    use candle_core::Var;

    /// `fused` equals `slow` (to 1e-5), and so does the gradient of every var in `vars` (to 1e-4) for the loss
    /// `sum(out * coef)`, none of them zero.
    fn assert_same(name: &str, fused: Tensor, slow: Tensor, vars: &[&Var], coef: &Tensor) -> Result<()> {
        assert!(max_diff(&fused, &slow) < 1e-5, "{name}: values differ");
        let gf = (fused * coef)?.sum_all()?.backward()?;
        let gs = (slow * coef)?.sum_all()?.backward()?;
        for v in vars {
            let (a, c) = (gf.get(v).expect("fused grad"), gs.get(v).expect("slow grad"));
            assert_eq!(a.dims(), c.dims());
            assert!(max_diff(a, c) < 1e-4, "{name}: grad differs by {}", max_diff(a, c));
            assert!(a.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0, "{name}: zero gradient");
        }
        Ok(())
    }

    /// Values and both gradients equal candle's own `matmul` (which candle differentiates itself).
    #[test]
    fn linear_product_matches_matmul_forward_and_backward() -> Result<()> {
        let x = Var::from_tensor(&rand(&[7, 12], 1))?;
        let w = Var::from_tensor(&rand(&[5, 12], 2))?;
        let fused = linear_product(x.as_tensor(), w.as_tensor())?;
        let slow = x.as_tensor().matmul(&w.as_tensor().t()?)?;
        assert_same("linear_product", fused, slow, &[&x, &w], &rand(&[7, 5], 3))
    }

    /// `linear_bias` and `quick_gelu_linear`: values and every gradient equal candle's composite ops, at a size
    /// where the activation's passes split over the pool too.
    #[test]
    fn fused_bias_and_activation_products_match_composite() -> Result<()> {
        for rows in [7, 300] {
            let x = Var::from_tensor(&rand(&[rows, 12], 1))?;
            let w = Var::from_tensor(&rand(&[5, 12], 2))?;
            let b = Var::from_tensor(&rand(&[5], 3))?;
            let coef = rand(&[rows, 5], 4);
            let (xt, wt, bt) = (x.as_tensor(), w.as_tensor(), b.as_tensor());
            let slow = xt.matmul(&wt.t()?)?.broadcast_add(bt)?;
            assert_same("linear_bias", linear_bias(xt, wt, bt)?, slow, &[&x, &w, &b], &coef)?;
            let slow = quick_gelu(xt)?.matmul(&wt.t()?)?;
            assert_same("quick_gelu_linear", quick_gelu_linear(xt, wt)?, slow, &[&x, &w], &coef)?;
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

    /// A packed weight computes what the weight itself does, with and without bias and activation; where packing
    /// is not available there is no packed weight to use.
    #[test]
    fn packed_linear_equals_the_weight_itself() -> Result<()> {
        let (x, w, b) = (rand(&[70, 40], 6), rand(&[300, 40], 7), rand(&[300], 8));
        let Some(p) = pack_weight(&w)? else {
            assert!(!blas::packed_available());
            return Ok(());
        };
        assert!(max_diff(&packed_linear(&x, &p, None, false)?, &linear_product(&x, &w)?) < 1e-5);
        assert!(max_diff(&packed_linear(&x, &p, Some(&b), false)?, &linear_bias(&x, &w, &b)?) < 1e-5);
        assert!(max_diff(&packed_linear(&x, &p, None, true)?, &quick_gelu_linear(&x, &w)?) < 1e-5);
        assert!(packed_linear(&rand(&[3, 41], 9), &p, None, false).is_err(), "wrong input width");
        let r = rand(&[70, 300], 10);
        for gelu in [false, true] {
            let want = (packed_linear(&x, &p, Some(&b), gelu)? + &r)?;
            assert!(max_diff(&packed_linear_residual(&x, &p, &b, &r, gelu)?, &want) < 1e-5, "residual, gelu {gelu}");
        }
        assert!(packed_linear_residual(&x, &p, &b, &rand(&[70, 299], 11), false).is_err(), "wrong residual shape");
        Ok(())
    }
}
