//! The embedding sums (token gather + positions; class token + patches + positions), whose backward scatters
//! straight into the gradients.

use candle_core::{DType, Result, Shape, Tensor};

use super::{f32_inputs, fused_ok, input, Arg, Fused, Kernel};

/// `out[r, t] = table[ids[r, t]] + pos[t]`: `table` `[V, h]`, `ids` `[n, s]` (u32), `pos` `[P >= s, h]`.
struct EmbedTokens;

impl Kernel<3> for EmbedTokens {
    const NAME: &'static str = "cliplab-embed-tokens";

    fn cpu(&self, [a1, a2, a3]: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let [table, pos] = f32_inputs([a1, a3], "embed", ["table", "positions"])?;
        let ids = input::<u32>(a2, "embed", "ids")?;
        let (v, h) = table.shape.dims2()?;
        let (n, s) = ids.shape.dims2()?;
        let (p, hp) = pos.shape.dims2()?;
        if hp != h || p < s {
            candle_core::bail!("embed: table {:?}, ids {:?}, positions {:?}", table.dims, ids.dims, pos.dims);
        }
        let mut out = vec![0f32; n * s * h];
        for (k, o) in out.chunks_exact_mut(h).enumerate() {
            let id = ids[k] as usize;
            if id >= v {
                candle_core::bail!("embed: token id {id} out of range for a vocabulary of {v}");
            }
            let t = k % s;
            let e = &table[id * h..(id + 1) * h];
            let pr = &pos[t * h..(t + 1) * h];
            for i in 0..h {
                o[i] = e[i] + pr[i];
            }
        }
        Ok((out, Shape::from((n, s, h))))
    }

    fn grads(&self, [table, ids, pos]: [&Tensor; 3], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 3]> {
        let (v, _) = table.dims2()?;
        let (p, _) = pos.dims2()?;
        let dtable = ids.apply_op2_no_bwd(g, &Fused(ScatterRows { rows: v, wrap: None }))?;
        let dpos = ids.apply_op2_no_bwd(g, &Fused(ScatterRows { rows: p, wrap: Some(()) }))?;
        Ok([Some(dtable), None, Some(dpos)])
    }
}

/// `[rows, h]` gradient from `g` `[n, s, h]`: rows `ids[r, t]` (`wrap: None`) or positions `t` (`Some`)
/// accumulate `g[r, t]`. The buffer is allocated zeroed (fresh pages, only touched rows are written).
struct ScatterRows {
    rows: usize,
    wrap: Option<()>,
}

impl Kernel<2> for ScatterRows {
    const NAME: &'static str = "cliplab-scatter-rows";

    fn cpu(&self, [a1, a2]: [Arg<'_>; 2]) -> Result<(Vec<f32>, Shape)> {
        let ids = input::<u32>(a1, "scatter", "ids")?;
        let [g] = f32_inputs([a2], "scatter", ["grad"])?;
        let (_, s) = ids.shape.dims2()?;
        let h = match g.dims.last() {
            Some(&h) if h > 0 && g.len() == ids.len() * h => h,
            _ => candle_core::bail!("scatter: grad {:?} for ids {:?}", g.dims, ids.dims),
        };
        let mut out = vec![0f32; self.rows * h];
        for (k, gr) in g.chunks_exact(h).enumerate() {
            let row = match self.wrap {
                None => ids[k] as usize,
                Some(()) => k % s,
            };
            if row >= self.rows {
                candle_core::bail!("scatter: row {row} out of range {}", self.rows);
            }
            for (o, x) in out[row * h..(row + 1) * h].iter_mut().zip(gr) {
                *o += x;
            }
        }
        Ok((out, Shape::from((self.rows, h))))
    }
}

/// Token embeddings plus position embeddings: `table` `[V, h]`, `ids` `[n, s]` (u32), `pos` `[P >= s, h]` →
/// `[n, s, h]`, differentiable with respect to `table` and `pos`.
pub fn embed_tokens(table: &Tensor, ids: &Tensor, pos: &Tensor) -> Result<Tensor> {
    if fused_ok(table) && pos.dtype() == DType::F32 && ids.dtype() == DType::U32 {
        table.contiguous()?.apply_op3(&ids.contiguous()?, &pos.contiguous()?, Fused(EmbedTokens))
    } else {
        let (n, s) = ids.dims2()?;
        let h = table.dim(1)?;
        let e = table.index_select(&ids.flatten_all()?, 0)?.reshape((n, s, h))?;
        e.broadcast_add(&pos.narrow(0, 0, s)?)
    }
}

/// `[cls; patches] + pos`: `patches` `[b, g, h]`, `cls` `[h]`, `pos` `[g + 1, h]` → `[b, g + 1, h]`.
struct VisionEmbed;

impl Kernel<3> for VisionEmbed {
    const NAME: &'static str = "cliplab-vision-embed";

    fn cpu(&self, args: [Arg<'_>; 3]) -> Result<(Vec<f32>, Shape)> {
        let [patches, cls, pos] = f32_inputs(args, "vision embed", ["patches", "class", "positions"])?;
        let (b, g, h) = patches.shape.dims3()?;
        if cls.len() != h || pos.dims != [g + 1, h] {
            candle_core::bail!("vision embed: {:?}, {:?}, {:?}", patches.dims, cls.dims, pos.dims);
        }
        let s = g + 1;
        let mut out = vec![0f32; b * s * h];
        for (k, o) in out.chunks_exact_mut(h).enumerate() {
            let (bi, t) = (k / s, k % s);
            let src = if t == 0 { &cls[..] } else { &patches[(bi * g + t - 1) * h..(bi * g + t) * h] };
            let pr = &pos[t * h..(t + 1) * h];
            for i in 0..h {
                o[i] = src[i] + pr[i];
            }
        }
        Ok((out, Shape::from((b, s, h))))
    }

    fn grads(&self, [patches, _, _]: [&Tensor; 3], _out: &Tensor, g: &Tensor) -> Result<[Option<Tensor>; 3]> {
        let (b, np, h) = patches.dims3()?;
        let all = g.apply_op1_no_bwd(&Fused(VisionEmbedBwd))?;
        let dpatches = all.narrow(0, 0, b * np)?.reshape((b, np, h))?;
        let dcls = all.narrow(0, b * np, 1)?.reshape(h)?;
        let dpos = all.narrow(0, b * np + 1, np + 1)?;
        Ok([Some(dpatches), Some(dcls), Some(dpos)])
    }
}

/// `g` `[b, g + 1, h]` → `[b g + 1 + g + 1, h]`: the patch rows, then the class row summed over the batch,
/// then the position rows summed over the batch.
struct VisionEmbedBwd;

impl Kernel<1> for VisionEmbedBwd {
    const NAME: &'static str = "cliplab-vision-embed-bwd";

    fn cpu(&self, [arg]: [Arg<'_>; 1]) -> Result<(Vec<f32>, Shape)> {
        let g = input::<f32>(arg, "vision embed bwd", "")?;
        let (b, s, h) = g.shape.dims3()?;
        let np = s - 1;
        let mut out = vec![0f32; (b * np + 1 + s) * h];
        let (dp, rest) = out.split_at_mut(b * np * h);
        let (dcls, dpos) = rest.split_at_mut(h);
        for (k, gr) in g.chunks_exact(h).enumerate() {
            let (bi, t) = (k / s, k % s);
            if t == 0 {
                dcls.iter_mut().zip(gr).for_each(|(o, x)| *o += x);
            } else {
                dp[(bi * np + t - 1) * h..(bi * np + t) * h].copy_from_slice(gr);
            }
            dpos[t * h..(t + 1) * h].iter_mut().zip(gr).for_each(|(o, x)| *o += x);
        }
        Ok((out, Shape::from((b * np + 1 + s, h))))
    }
}

/// The class token followed by the patch embeddings, plus position embeddings.
pub fn vision_embed(patches: &Tensor, cls: &Tensor, pos: &Tensor) -> Result<Tensor> {
    if fused_ok(patches) && cls.dtype() == DType::F32 && pos.dtype() == DType::F32 {
        patches.contiguous()?.apply_op3(&cls.contiguous()?, &pos.contiguous()?, Fused(VisionEmbed))
    } else {
        let (b, _, h) = patches.dims3()?;
        let c = cls.reshape((1, 1, h))?.broadcast_as((b, 1, h))?;
        Tensor::cat(&[&c, patches], 1)?.broadcast_add(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clip::ops::test_util::{max_diff, rand};
    use candle_core::{Device, Var};

    /// The token embedding sum agrees with candle's composite ops.
    #[test]
    fn fused_embedding_ops_match_composite() -> Result<()> {
        let table = Var::from_tensor(&rand(&[7, 4], 15))?;
        let pos = Var::from_tensor(&rand(&[5, 4], 16))?;
        let ids = Tensor::new(&[[1u32, 3, 3], [6, 0, 1]], &Device::Cpu)?;
        let coef = rand(&[2, 3, 4], 17);
        let fused = embed_tokens(table.as_tensor(), &ids, pos.as_tensor())?;
        let slow = table
            .as_tensor()
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((2, 3, 4))?
            .broadcast_add(&pos.as_tensor().narrow(0, 0, 3)?)?;
        assert!(max_diff(&fused, &slow) < 1e-6);
        let gf = (fused * &coef)?.sum_all()?.backward()?;
        let gs = (slow * &coef)?.sum_all()?.backward()?;
        for x in [&table, &pos] {
            assert!(max_diff(gf.get(x).expect("fused grad"), gs.get(x).expect("slow grad")) < 1e-5);
        }
        Ok(())
    }
}
