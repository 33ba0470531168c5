//! The embedding sums (token gather + positions; class token + patches + positions), whose backward scatters
//! straight into the gradients.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::{contiguous, fused_ok};

/// `out[r, t] = table[ids[r, t]] + pos[t]`: `table` `[V, h]`, `ids` `[n, s]` (u32), `pos` `[P >= s, h]`.
struct EmbedTokens;

impl CustomOp3 for EmbedTokens {
    fn name(&self) -> &'static str {
        "cliplab-embed-tokens"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let table = contiguous::<f32>(s1, l1, "embed table")?;
        let ids = contiguous::<u32>(s2, l2, "embed ids")?;
        let pos = contiguous::<f32>(s3, l3, "embed positions")?;
        let (v, h) = l1.shape().dims2()?;
        let (n, s) = l2.shape().dims2()?;
        let (p, hp) = l3.shape().dims2()?;
        if hp != h || p < s {
            candle_core::bail!("embed: table {:?}, ids {:?}, positions {:?}", l1.dims(), l2.dims(), l3.dims());
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
        Ok((CpuStorage::F32(out), Shape::from((n, s, h))))
    }

    fn bwd(
        &self,
        table: &Tensor,
        ids: &Tensor,
        pos: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let (v, _) = table.dims2()?;
        let (p, _) = pos.dims2()?;
        let dtable = ids.apply_op2_no_bwd(&g, &ScatterRows { rows: v, wrap: None })?;
        let dpos = ids.apply_op2_no_bwd(&g, &ScatterRows { rows: p, wrap: Some(()) })?;
        Ok((Some(dtable), None, Some(dpos)))
    }
}

/// `[rows, h]` gradient from `g` `[n, s, h]`: rows `ids[r, t]` (`wrap: None`) or positions `t` (`Some`)
/// accumulate `g[r, t]`. The buffer is allocated zeroed (fresh pages, only touched rows are written).
struct ScatterRows {
    rows: usize,
    wrap: Option<()>,
}

impl CustomOp2 for ScatterRows {
    fn name(&self) -> &'static str {
        "cliplab-scatter-rows"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let ids = contiguous::<u32>(s1, l1, "scatter ids")?;
        let g = contiguous::<f32>(s2, l2, "scatter grad")?;
        let (_, s) = l1.shape().dims2()?;
        let h = match l2.dims().last() {
            Some(&h) if h > 0 && g.len() == ids.len() * h => h,
            _ => candle_core::bail!("scatter: grad {:?} for ids {:?}", l2.dims(), l1.dims()),
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
        Ok((CpuStorage::F32(out), Shape::from((self.rows, h))))
    }
}

/// Token embeddings plus position embeddings: `table` `[V, h]`, `ids` `[n, s]` (u32), `pos` `[P >= s, h]` →
/// `[n, s, h]`, differentiable with respect to `table` and `pos`.
pub fn embed_tokens(table: &Tensor, ids: &Tensor, pos: &Tensor) -> Result<Tensor> {
    if fused_ok(table) && pos.dtype() == DType::F32 && ids.dtype() == DType::U32 {
        table.contiguous()?.apply_op3(&ids.contiguous()?, &pos.contiguous()?, EmbedTokens)
    } else {
        let (n, s) = ids.dims2()?;
        let h = table.dim(1)?;
        let e = table.index_select(&ids.flatten_all()?, 0)?.reshape((n, s, h))?;
        e.broadcast_add(&pos.narrow(0, 0, s)?)
    }
}

/// `[cls; patches] + pos`: `patches` `[b, g, h]`, `cls` `[h]`, `pos` `[g + 1, h]` → `[b, g + 1, h]`.
struct VisionEmbed;

impl CustomOp3 for VisionEmbed {
    fn name(&self) -> &'static str {
        "cliplab-vision-embed"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let patches = contiguous::<f32>(s1, l1, "vision embed patches")?;
        let cls = contiguous::<f32>(s2, l2, "vision embed class")?;
        let pos = contiguous::<f32>(s3, l3, "vision embed positions")?;
        let (b, g, h) = l1.shape().dims3()?;
        if cls.len() != h || l3.dims() != [g + 1, h] {
            candle_core::bail!("vision embed: {:?}, {:?}, {:?}", l1.dims(), l2.dims(), l3.dims());
        }
        let s = g + 1;
        let mut out = vec![0f32; b * s * h];
        for (k, o) in out.chunks_exact_mut(h).enumerate() {
            let (bi, t) = (k / s, k % s);
            let src = if t == 0 { cls } else { &patches[(bi * g + t - 1) * h..(bi * g + t) * h] };
            let pr = &pos[t * h..(t + 1) * h];
            for i in 0..h {
                o[i] = src[i] + pr[i];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, s, h))))
    }

    fn bwd(
        &self,
        patches: &Tensor,
        _cls: &Tensor,
        _pos: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, np, h) = patches.dims3()?;
        let all = g.contiguous()?.apply_op1_no_bwd(&VisionEmbedBwd)?;
        let dpatches = all.narrow(0, 0, b * np)?.reshape((b, np, h))?;
        let dcls = all.narrow(0, b * np, 1)?.reshape(h)?;
        let dpos = all.narrow(0, b * np + 1, np + 1)?;
        Ok((Some(dpatches), Some(dcls), Some(dpos)))
    }
}

/// `g` `[b, g + 1, h]` → `[b g + 1 + g + 1, h]`: the patch rows, then the class row summed over the batch,
/// then the position rows summed over the batch.
struct VisionEmbedBwd;

impl CustomOp1 for VisionEmbedBwd {
    fn name(&self) -> &'static str {
        "cliplab-vision-embed-bwd"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = contiguous::<f32>(st, l, "vision embed bwd")?;
        let (b, s, h) = l.shape().dims3()?;
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
        Ok((CpuStorage::F32(out), Shape::from((b * np + 1 + s, h))))
    }
}

/// The class token followed by the patch embeddings, plus position embeddings.
pub fn vision_embed(patches: &Tensor, cls: &Tensor, pos: &Tensor) -> Result<Tensor> {
    if fused_ok(patches) && cls.dtype() == DType::F32 && pos.dtype() == DType::F32 {
        patches.contiguous()?.apply_op3(&cls.contiguous()?, &pos.contiguous()?, VisionEmbed)
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
