//! Multi-head self-attention on the `q`, `k`, `v` projections, scale and causal mask inside the softmax, forward
//! and backward.
//!
//! Each (caption or image, head) pair is a handful of single-precision matrix products through
//! [`crate::model::blas`] (OpenBLAS where the machine has it) on the head's columns of the `[b, s, h]` arrays, read
//! in place through leading dimensions and transpose flags: no per-head copies, no transposed copies. The softmax
//! (with its scale and mask) and its backward are one pass each over a `[s, s]` scratch block that is reused for
//! every head. The backward recomputes the probabilities instead of keeping them from the forward pass.

use candle_core::{DType, IndexOp, Result, Shape, Tensor};

use super::{dot, f32_inputs, fused_ok, par_items, softmax_last_dim, softmax_prefix, Arg, Fused, Kernel};
use crate::model::blas::{on_calling_threads, sgemm_ld, Mat};

/// From this many multiply-adds per product (`s · s · head size`) on, a single batch item's pairs are better served
/// by OpenBLAS's own threads on each product than by one thread doing them all (OpenBLAS 0.3's threshold for
/// splitting a product: 4 x 65,536).
const THREAD_EACH_PRODUCT_FROM: usize = 1 << 18;

/// Multi-head attention core: `q`, `k`, `v` `[b, s, h]` → `[b, s, h]` = `softmax(scale q k^T (+ causal mask)) v`
/// per head, heads concatenated.
struct AttentionOp {
    heads: usize,
    scale: f32,
    causal: bool,
}

/// The sizes of one attention call: batch, sequence, hidden, head size.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    s: usize,
    h: usize,
    hd: usize,
}

impl AttentionOp {
    fn dims(&self, shape: &Shape) -> Result<Dims> {
        let (b, s, h) = shape.dims3()?;
        if h % self.heads != 0 || s == 0 {
            candle_core::bail!("attention: {:?} does not split into {} heads", shape.dims(), self.heads);
        }
        Ok(Dims { b, s, h, hd: h / self.heads })
    }

    /// Runs `f(first_batch_item, out_chunk)` over `out` split into batch items of `item_len` elements, in
    /// parallel over candle's pool, each thread doing whole items with OpenBLAS on the calling thread
    /// ([`on_calling_threads`]: OpenBLAS splitting each 77-token product over its own threads was 3x slower). A
    /// lone item of large products is left to OpenBLAS's threads instead.
    fn over_items<F: Fn(usize, &mut [f32]) + Sync>(&self, d: Dims, out: &mut [f32], item_len: usize, f: F) {
        if d.b == 1 && d.s * d.s * d.hd >= THREAD_EACH_PRODUCT_FROM {
            f(0, out);
        } else {
            on_calling_threads(|| par_items(out, item_len, d.b * self.heads * d.s * d.s * d.hd * 2, f));
        }
    }

    /// Fills `p` (`[s, s]`) with the attention probabilities of one (batch item, head): `q` and `k` start at the
    /// head's first column of the item's rows, which are `ld` apart.
    fn probs(&self, d: Dims, ld: usize, q: &[f32], k: &[f32], p: &mut [f32]) {
        let s = d.s;
        // scale · q kᵀ, then the softmax of each row over its unmasked part.
        sgemm_ld(s, s, d.hd, (Mat::n(q), ld), (Mat::t(k), ld), 0.0, (p, s));
        for (i, pr) in p.chunks_exact_mut(s).enumerate() {
            softmax_prefix(pr, if self.causal { i + 1 } else { s }, self.scale);
        }
    }
}

/// The head's block of one batch item's `[s, h]` rows: from its first column to the end of the item.
fn head(x: &[f32], d: Dims, item: usize, head: usize) -> &[f32] {
    &x[item * d.s * d.h + head * d.hd..(item + 1) * d.s * d.h]
}

impl Kernel<3> for AttentionOp {
    const NAME: &'static str = "cliplab-attention";

    fn cpu(&self, args: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let [q, k, v] = f32_inputs(args, "attention", ["q", "k", "v"])?;
        if k.dims != q.dims || v.dims != q.dims {
            candle_core::bail!("attention: q {:?}, k {:?}, v {:?}", q.dims, k.dims, v.dims);
        }
        let d = self.dims(q.shape)?;
        let mut out = vec![0f32; d.b * d.s * d.h];
        self.over_items(d, &mut out, d.s * d.h, |first, out| {
            let mut p = vec![0f32; d.s * d.s];
            for (bi, o) in out.chunks_exact_mut(d.s * d.h).enumerate() {
                let item = first + bi;
                for hi in 0..self.heads {
                    self.probs(d, d.h, head(&q, d, item, hi), head(&k, d, item, hi), &mut p);
                    // o = p v, into the head's columns of the output.
                    let oh = &mut o[hi * d.hd..];
                    sgemm_ld(d.s, d.hd, d.s, (Mat::n(&p), d.s), (Mat::n(head(&v, d, item, hi)), d.h), 0.0, (oh, d.h));
                }
            }
        });
        Ok((out, q.shape.clone()))
    }

    fn grads(&self, [q, k, v]: [&Tensor; 3], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 3]> {
        // [3, b, s, h] in and out: each input and each gradient a contiguous block.
        let qkv = Tensor::stack(&[q, k, v], 0)?;
        let op = AttentionBwd { fwd: AttentionOp { heads: self.heads, scale: self.scale, causal: self.causal } };
        let d = qkv.apply_op2_no_bwd(g, &Fused(op))?;
        Ok([Some(d.i(0)?), Some(d.i(1)?), Some(d.i(2)?)])
    }
}

/// `(qkv [3, b, s, h], d out [b, s, h])` → `d qkv [3, b, s, h]`, recomputing the probabilities.
struct AttentionBwd {
    fwd: AttentionOp,
}

impl Kernel<2> for AttentionBwd {
    const NAME: &'static str = "cliplab-attention-bwd";

    fn cpu(&self, args: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let [x, g] = f32_inputs(args, "attention bwd", ["qkv", "grad"])?;
        let d = self.fwd.dims(g.shape)?;
        let n = d.b * d.s * d.h;
        if x.len() != 3 * n {
            candle_core::bail!("attention bwd: qkv {:?} for grad {:?}", x.dims, g.dims);
        }
        let (q, k, v) = (&x[..n], &x[n..2 * n], &x[2 * n..]);
        let (heads, scale, s, ld) = (self.fwd.heads, self.fwd.scale, d.s, d.h);
        // The three gradients are written per batch item: [b, 3, s, h] while computing, reordered at the end.
        let mut out = vec![0f32; 3 * n];
        self.fwd.over_items(d, &mut out, 3 * s * d.h, |first, out| {
            let mut p = vec![0f32; s * s];
            let mut dp = vec![0f32; s * s];
            for (bi, dx) in out.chunks_exact_mut(3 * s * d.h).enumerate() {
                let item = first + bi;
                let (dq, rest) = dx.split_at_mut(s * d.h);
                let (dk, dv) = rest.split_at_mut(s * d.h);
                for hi in 0..heads {
                    let (qh, kh, vh, gh) = (head(q, d, item, hi), head(k, d, item, hi), head(v, d, item, hi), head(&g, d, item, hi));
                    let c = hi * d.hd;
                    self.fwd.probs(d, d.h, qh, kh, &mut p);
                    // dV = Pᵀ dO ; dP = dO Vᵀ
                    sgemm_ld(s, d.hd, s, (Mat::t(&p), s), (Mat::n(gh), ld), 0.0, (&mut dv[c..], ld));
                    sgemm_ld(s, s, d.hd, (Mat::n(gh), ld), (Mat::t(vh), ld), 0.0, (&mut dp, s));
                    // dS_ij = scale P_ij (dP_ij - sum_j P_ij dP_ij) (masked entries have P_ij = 0).
                    for (pr, dr) in p.chunks_exact(s).zip(dp.chunks_exact_mut(s)) {
                        let cr = dot(pr, dr);
                        for (dv, &pv) in dr.iter_mut().zip(pr) {
                            *dv = scale * pv * (*dv - cr);
                        }
                    }
                    // dQ = dS K ; dK = dSᵀ Q
                    sgemm_ld(s, d.hd, s, (Mat::n(&dp), s), (Mat::n(kh), ld), 0.0, (&mut dq[c..], ld));
                    sgemm_ld(s, d.hd, s, (Mat::t(&dp), s), (Mat::n(qh), ld), 0.0, (&mut dk[c..], ld));
                }
            }
        });
        // [b, 3, s, h] → [3, b, s, h].
        let item = s * d.h;
        let mut split = vec![0f32; 3 * n];
        for (r, src) in out.chunks_exact(item).enumerate() {
            let (bi, part) = (r / 3, r % 3);
            split[part * n + bi * item..part * n + (bi + 1) * item].copy_from_slice(src);
        }
        Ok((split, Shape::from((3, d.b, d.s, d.h))))
    }
}

/// [`AttentionOp`] on the three projections side by side, `qkv` `[b, s, 3h]` (as one product with the packed
/// `q, k, v` weight writes them), for scoring: no backward pass. Every (batch item, head) pair is a unit of work for
/// the pool (one image's 12 heads, or five captions' 40, share the cores evenly), its output written to a
/// `[b, heads, s, hd]` scratch that one pass puts in `[b, s, h]` order.
struct QkvAttention(AttentionOp);

impl Kernel<1> for QkvAttention {
    const NAME: &'static str = "cliplab-attention-qkv";

    fn cpu(&self, [x]: [Arg<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let [x] = f32_inputs([x], "attention", ["qkv"])?;
        let (b, s, h3) = x.shape.dims3()?;
        if h3 % 3 != 0 {
            candle_core::bail!("attention: qkv {:?} is not three projections side by side", x.dims);
        }
        let (h, heads) = (h3 / 3, self.0.heads);
        let d = self.0.dims(&Shape::from((b, s, h)))?;
        let unit = s * d.hd;
        let mut per_head = vec![0f32; b * heads * unit];
        on_calling_threads(|| {
            par_items(&mut per_head, unit, b * heads * s * s * d.hd * 2, |first, out| {
                let mut p = vec![0f32; s * s];
                for (j, o) in out.chunks_exact_mut(unit).enumerate() {
                    let (item, hi) = ((first + j) / heads, (first + j) % heads);
                    let at = item * s * h3 + hi * d.hd;
                    self.0.probs(d, h3, &x[at..], &x[at + h..], &mut p);
                    sgemm_ld(s, d.hd, s, (Mat::n(&p), s), (Mat::n(&x[at + 2 * h..]), h3), 0.0, (o, d.hd));
                }
            })
        });
        let mut out = Vec::with_capacity(b * s * h);
        for item in per_head.chunks_exact(heads * unit) {
            for r in 0..s {
                for hi in 0..heads {
                    out.extend_from_slice(&item[hi * unit + r * d.hd..][..d.hd]);
                }
            }
        }
        Ok((out, Shape::from((b, s, h))))
    }
}

/// [`attention`] on `qkv` `[b, s, 3h]`, the `q`, `k` and `v` projections side by side in each row, for scoring (no
/// backward pass; f32 on the CPU). Equals `attention(q, k, v)` on the three column blocks.
pub fn attention_qkv(qkv: &Tensor, heads: usize, scale: f64, causal: bool) -> Result<Tensor> {
    if !fused_ok(qkv) {
        candle_core::bail!("attention: qkv must be an f32 CPU tensor, got {:?} on {:?}", qkv.dtype(), qkv.device());
    }
    qkv.contiguous()?.apply_op1_no_bwd(&Fused(QkvAttention(AttentionOp { heads, scale: scale as f32, causal })))
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

    /// The scoring op on the three projections side by side equals the fused op on them apart, at a lone item and
    /// at several, short and at CLIP's 77 tokens, causal or not; a width that is not three blocks is refused.
    #[test]
    fn attention_on_side_by_side_projections_equals_attention() -> Result<()> {
        for (b, s, heads, h) in [(1, 50, 12, 96), (5, 77, 8, 64), (3, 7, 2, 8)] {
            let qkv = rand(&[b, s, 3 * h], 15);
            let (q, k, v) = (qkv.narrow(2, 0, h)?, qkv.narrow(2, h, h)?, qkv.narrow(2, 2 * h, h)?);
            for causal in [false, true] {
                let want = attention(&q, &k, &v, heads, 0.3, causal)?;
                let got = attention_qkv(&qkv, heads, 0.3, causal)?;
                assert_eq!(got.dims(), want.dims());
                assert!(max_diff(&got, &want) < 1e-6, "[{b}, {s}, {h}] causal {causal}: {}", max_diff(&got, &want));
            }
        }
        assert!(attention_qkv(&rand(&[1, 4, 10], 16), 2, 0.5, false).is_err());
        Ok(())
    }

    /// At the model's sequence lengths (20 tokens: pairs split over threads; 77: one product after the other,
    /// OpenBLAS threading each), with the model's head size: values and the three gradients of the fused op
    /// equal the composite candle ops, causal mask or not.
    #[test]
    fn attention_matches_composite_at_20_and_77_tokens() -> Result<()> {
        for s in [20, 77] {
            for causal in [false, true] {
                let (b, heads, h) = (2, 2, 128);
                let q = Var::from_tensor(&rand(&[b, s, h], 11))?;
                let k = Var::from_tensor(&rand(&[b, s, h], 12))?;
                let v = Var::from_tensor(&rand(&[b, s, h], 13))?;
                let coef = rand(&[b, s, h], 14);
                let scale = 1.0 / (h as f64 / heads as f64).sqrt();
                let fused = attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), heads, scale, causal)?;
                let slow = attention_composite(q.as_tensor(), k.as_tensor(), v.as_tensor(), heads, scale, causal)?;
                assert!(max_diff(&fused, &slow) < 1e-5, "s={s} causal={causal}: values differ");
                let gf = (fused * &coef)?.sum_all()?.backward()?;
                let gs = (slow * &coef)?.sum_all()?.backward()?;
                for x in [&q, &k, &v] {
                    let (a, c) = (gf.get(x).expect("fused grad"), gs.get(x).expect("slow grad"));
                    assert_eq!(a.dims(), c.dims());
                    let d = max_diff(a, c);
                    assert!(d < 1e-4, "s={s} causal={causal}: grad differs by {d}");
                    assert!(a.abs()?.sum_all()?.to_scalar::<f32>()? > 1e-3, "s={s}: zero gradient");
                }
            }
        }
        Ok(())
    }
}
