//! The composite fallbacks of the fused ops (the path on CUDA and Metal, and for other dtypes) against the fused
//! CPU kernels: values and every gradient. The ops' own tests compare the kernels with hand-written composite
//! formulas; these call each op's public function with f64 inputs, which takes the very fallback branch a GPU
//! runs, and with bf16 inputs, the dtype mixed precision computes in.

use candle_core::{DType, Device, Result, Tensor, Var};

use super::test_util::{max_diff, rand};
use super::*;

/// An op under test: its float inputs (as `Var`s) and integer inputs (constants) → its output.
type Op = dyn Fn(&[Tensor], &[Tensor]) -> Result<Tensor>;

/// Output and the gradient of every float input of `op` run on `floats` cast to `dtype`, all returned in f32;
/// the loss is `sum(out * coef)` (`coef` a fixed pattern, so that every output element matters differently).
fn run(op: &Op, floats: &[Tensor], ints: &[Tensor], dtype: DType) -> Result<(Tensor, Vec<Tensor>)> {
    let vars = floats.iter().map(|t| Var::from_tensor(&t.to_dtype(dtype)?)).collect::<Result<Vec<_>>>()?;
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = op(&tensors, ints)?;
    let coef = rand(out.dims(), 99).to_dtype(dtype)?;
    let grads = (&out * &coef)?.sum_all()?.backward()?;
    let mut gs = Vec::new();
    for v in &vars {
        let g = grads.get(v.as_tensor()).ok_or_else(|| candle_core::Error::Msg("no gradient".into()))?;
        gs.push(g.to_dtype(DType::F32)?);
    }
    Ok((out.to_dtype(DType::F32)?, gs))
}

/// The largest absolute value of `t` (the scale the bf16 tolerance is relative to).
fn max_abs(t: &Tensor) -> Result<f32> {
    t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// `op`'s fallback in f64 equals the fused f32 kernel within `tol` (values and gradients), and in bf16 within
/// 3% of each tensor's largest value (bf16 keeps 8 bits of mantissa).
fn check(name: &str, op: &Op, floats: &[Tensor], ints: &[Tensor], tol: f32) -> Result<()> {
    assert!(floats.iter().all(|t| t.dtype() == DType::F32 && t.device().is_cpu()));
    let (out, grads) = run(op, floats, ints, DType::F32)?;
    for (dtype, what) in [(DType::F64, "f64"), (DType::BF16, "bf16")] {
        let (o, gs) = run(op, floats, ints, dtype)?;
        let bound = |t: &Tensor| -> Result<f32> { Ok(if dtype == DType::F64 { tol } else { 0.03 * max_abs(t)?.max(1e-3) }) };
        let d = max_diff(&o, &out);
        assert!(d <= bound(&out)?, "{name} ({what} fallback): values differ by {d}");
        for (i, (g, want)) in gs.iter().zip(&grads).enumerate() {
            let d = max_diff(g, want);
            assert!(d <= bound(want)?, "{name} ({what} fallback): gradient {i} differs by {d}");
            assert!(max_abs(want)? > 0.0, "{name}: gradient {i} is zero");
        }
    }
    Ok(())
}

#[test]
fn every_fallback_matches_the_fused_op_values_and_gradients() -> Result<()> {
    let x = rand(&[2, 3, 8], 1);
    let d8 = |seed| rand(&[8], seed);
    check("layer_norm", &|f, _| layer_norm(&f[0], &f[1], &f[2], 1e-5), &[x.clone(), (d8(2) + 1.0)?, d8(3)], &[], 1e-4)?;
    check("softmax_last_dim", &|f, _| softmax_last_dim(&f[0]), &[(rand(&[4, 7], 5) * 3.0)?], &[], 1e-5)?;
    check("linear_product", &|f, _| linear_product(&f[0], &f[1]), &[rand(&[7, 12], 1), rand(&[5, 12], 2)], &[], 1e-4)?;
    let (x2, w2) = (rand(&[7, 12], 1), rand(&[5, 12], 2));
    check("linear_bias", &|f, _| linear_bias(&f[0], &f[1], &f[2]), &[x2.clone(), w2.clone(), rand(&[5], 4)], &[], 1e-4)?;
    check("quick_gelu_linear", &|f, _| quick_gelu_linear(&f[0], &f[1]), &[x2, w2], &[], 1e-4)?;
    let (y, r) = (rand(&[6, 8], 11), rand(&[6, 8], 13));
    check("bias_add", &|f, _| bias_add(&f[0], &f[1]), &[y.clone(), d8(12)], &[], 1e-5)?;
    check("bias_add_residual", &|f, _| bias_add_residual(&f[0], &f[1], &f[2]), &[y.clone(), d8(12), r], &[], 1e-5)?;
    check("bias_quick_gelu", &|f, _| bias_quick_gelu(&f[0], &f[1]), &[y, d8(12)], &[], 1e-5)?;
    for causal in [false, true] {
        let qkv = [rand(&[2, 5, 8], 7), rand(&[2, 5, 8], 8), rand(&[2, 5, 8], 9)];
        check("attention", &move |f, _| attention(&f[0], &f[1], &f[2], 2, 0.5, causal), &qkv, &[], 1e-5)?;
    }
    let ids = Tensor::new(&[[1u32, 3, 3], [6, 0, 1]], &Device::Cpu)?;
    check("embed_tokens", &|f, i| embed_tokens(&f[0], &i[0], &f[1]), &[rand(&[7, 4], 15), rand(&[5, 4], 16)], &[ids], 1e-5)?;
    let patches = rand(&[2, 4, 6], 21);
    check("vision_embed", &|f, _| vision_embed(&f[0], &f[1], &f[2]), &[patches, rand(&[6], 22), rand(&[5, 6], 23)], &[], 1e-5)?;
    Ok(())
}
