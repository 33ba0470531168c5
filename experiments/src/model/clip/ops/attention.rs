//! Multi-head self-attention on the packed `[q | k | v]` projections, scale and causal mask inside the softmax,
//! forward and backward.

use candle_core::{DType, IndexOp, Result, Shape, Tensor};

use super::{axpy, dot, f32_inputs, fused_ok, par_items, softmax_last_dim, Arg, Fused, Kernel};

/// Multi-head attention core on packed projections: `qkv` `[b, s, 3h]` (`q | k | v`, heads contiguous in each)
/// → `[b, s, h]` = `softmax(scale q k^T (+ causal mask)) v` per head, heads concatenated.
struct AttentionOp {
    heads: usize,
    scale: f32,
    causal: bool,
}

impl AttentionOp {
    fn dims(&self, shape: &Shape) -> Result<(usize, usize, usize, usize)> {
        let (b, s, h3) = shape.dims3()?;
        if h3 % 3 != 0 || (h3 / 3) % self.heads != 0 || s == 0 {
            candle_core::bail!("attention: packed qkv {:?} does not split into {} heads", shape.dims(), self.heads);
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

impl Kernel<3> for AttentionOp {
    const NAME: &'static str = "cliplab-attention";

    fn cpu(&self, args: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let [q, k, v] = f32_inputs(args, "attention", ["q", "k", "v"])?;
        if k.dims != q.dims || v.dims != q.dims {
            candle_core::bail!("attention: q {:?}, k {:?}, v {:?}", q.dims, k.dims, v.dims);
        }
        let (b, s, h) = q.shape.dims3()?;
        let packed = pack_qkv(&q, &k, &v, h);
        let x = packed.as_slice();
        let (b, s, h, hd) = self.dims(&Shape::from((b, s, 3 * h)))?;
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
        Ok((out, Shape::from((b, s, h))))
    }

    fn grads(&self, [q, k, v]: [&Tensor; 3], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 3]> {
        let qkv = Tensor::cat(&[q, k, v], 2)?;
        let op = AttentionBwd { fwd: AttentionOp { heads: self.heads, scale: self.scale, causal: self.causal } };
        // [3, b, s, h]: each gradient a contiguous block.
        let d = qkv.apply_op2_no_bwd(g, &Fused(op))?;
        Ok([Some(d.i(0)?), Some(d.i(1)?), Some(d.i(2)?)])
    }
}

/// `(qkv, d out)` → `d qkv`, recomputing the probabilities.
struct AttentionBwd {
    fwd: AttentionOp,
}

impl Kernel<2> for AttentionBwd {
    const NAME: &'static str = "cliplab-attention-bwd";

    fn cpu(&self, args: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let [x, g] = f32_inputs(args, "attention bwd", ["qkv", "grad"])?;
        let (b, s, h, hd) = self.fwd.dims(x.shape)?;
        if g.len() != b * s * h {
            candle_core::bail!("attention bwd: grad {:?} for qkv {:?}", g.dims, x.dims);
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
        Ok((split, Shape::from((3, b, s, h))))
    }
}

/// Multi-head self-attention from the projections `q`, `k`, `v` `[b, s, h]` → `[b, s, h]` (before the output
/// projection): `softmax(scale * q k^T + mask) v` per head, heads concatenated, `mask` causal when `causal`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64, causal: bool) -> Result<Tensor> {
    if fused_ok(q) && k.dtype() == DType::F32 && v.dtype() == DType::F32 {
        return q.contiguous()?.apply_op3(
            &k.contiguous()?,
            &v.contiguous()?,
            Fused(AttentionOp { heads, scale: scale as f32, causal }),
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
    // In half precision the softmax's sums run in f32 (as PyTorch's autocast does), the products stay half.
    let w = match w.dtype() {
        DType::BF16 | DType::F16 => softmax_last_dim(&w.to_dtype(DType::F32)?)?.to_dtype(w.dtype())?,
        _ => softmax_last_dim(&w)?,
    };
    w.matmul(&v)?.transpose(1, 2)?.reshape((b, s, h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clip::ops::test_util::{max_diff, rand};
    use candle_core::Var;

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
}
