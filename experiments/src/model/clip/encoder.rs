//! The transformer blocks both CLIP towers are made of: `nn.LayerNorm`, `nn.Linear` (one product over all leading
//! dimensions, a packed weight for scoring), `CLIPAttention`, `CLIPMLP`, `CLIPEncoderLayer` and `CLIPEncoder`
//! (mirroring `transformers/models/clip/modeling_clip.py`; the towers and `CLIPModel` are in [`super::model`]).

use std::sync::Arc;

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::{Activation, ClipTextConfig, ClipVisionConfig};
use super::ops;
use crate::model::blas::PackedWeight;

/// What [`ClipModel::cast`], [`ClipModel::detached`] and [`ClipModel::packed`] do to the weights, passed down
/// through the modules: `each` maps every weight; with `pack`, each linear layer's (mapped) weight is also packed
/// for scoring ([`ops::pack_weight`]).
pub(super) struct WeightMap<'a> {
    pub(super) each: &'a dyn Fn(&Tensor) -> Result<Tensor>,
    pub(super) pack: bool,
}

pub(super) type MapFn<'a> = &'a WeightMap<'a>;

/// Layer normalisation with a backward pass (`nn.LayerNorm`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub(super) weight: Tensor,
    pub(super) bias: Tensor,
    pub(super) eps: f64,
}

impl LayerNorm {
    pub fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?,
            eps,
        })
    }
}

impl LayerNorm {
    pub(super) fn map_weights(&self, f: MapFn) -> Result<Self> {
        Ok(Self { weight: (f.each)(&self.weight)?, bias: (f.each)(&self.bias)?, eps: self.eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
    }
}

/// `nn.Linear`, computed as ONE matrix product over all leading dimensions (`[b, s, in]` is viewed as
/// `[b*s, in]`). candle_nn's `Linear` broadcasts the weight over the batch instead, which runs `b` small products
/// forward and, backward, materialises a `[b, out, in]` weight gradient before summing it.
#[derive(Debug, Clone)]
pub struct Linear {
    pub(super) weight: Tensor,
    pub(super) bias: Option<Tensor>,
    /// The weight packed once for scoring ([`ClipModel::packed`]): the products then use it instead.
    pub(super) packed: Option<Arc<PackedWeight>>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias, packed: None }
    }
}

/// A linear layer with bias, initialised like `nn.Linear` when weights are random.
pub fn linear(input: usize, output: usize, vb: VarBuilder) -> Result<Linear> {
    let l = candle_nn::linear(input, output, vb)?;
    Ok(Linear::new(l.weight().clone(), l.bias().cloned()))
}

impl Linear {
    pub(super) fn map_weights(&self, f: MapFn) -> Result<Self> {
        let weight = (f.each)(&self.weight)?;
        let packed = if f.pack { ops::pack_weight(&weight)? } else { None };
        Ok(Self { weight, bias: self.bias.as_ref().map(f.each).transpose()?, packed })
    }

    /// The packed weight, if the layer has one and a product on `rows` is faster with it
    /// ([`PackedWeight::pays_for`]).
    fn packed_for(&self, rows: &Tensor) -> Result<Option<&Arc<PackedWeight>>> {
        let m = rows.dim(0)?;
        Ok(self.packed.as_ref().filter(|_| PackedWeight::pays_for(m)))
    }

    /// `residual + act(rows) · weightᵀ + bias` in one op (`act` quick_gelu when `gelu`), when the layer has a packed
    /// weight that pays for `rows` and a bias; `None` otherwise (the caller takes the general path).
    fn packed_residual(&self, rows: &Tensor, residual: &Tensor, gelu: bool) -> Result<Option<Tensor>> {
        let (Some(p), Some(b)) = (self.packed_for(rows)?, &self.bias) else { return Ok(None) };
        let r = residual.reshape((rows.dim(0)?, self.weight.dim(0)?))?;
        ops::packed_linear_residual(rows, p, b, &r, gelu).map(Some)
    }

    /// `xs` `[.., in]` times `weight^T` as one `[rows, out]` product, and the output shape `[.., out]`.
    pub(super) fn product(&self, xs: &Tensor, weight: &Tensor) -> Result<(Tensor, Vec<usize>)> {
        let (rows, shape) = rows_of(xs, weight.dim(0)?)?;
        match self.packed_for(&rows)? {
            Some(p) => Ok((ops::packed_linear(&rows, p, None, false)?, shape)),
            None => Ok((ops::linear_product(&rows, weight)?, shape)),
        }
    }

    /// `residual + self(quick_gelu(zs))`: the MLP's second layer on its activation, which the product op
    /// recomputes in the backward pass instead of keeping (see [`ops::quick_gelu_linear`]).
    fn forward_quick_gelu_residual(&self, zs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let (rows, shape) = rows_of(zs, self.weight.dim(0)?)?;
        if let Some(y) = self.packed_residual(&rows, residual, true)? {
            return y.reshape(shape);
        }
        let y = match self.packed_for(&rows)? {
            Some(p) => ops::packed_linear(&rows, p, None, true)?,
            None => ops::quick_gelu_linear(&rows, &self.weight)?,
        };
        let r = residual.reshape(y.shape())?;
        let y = match &self.bias {
            Some(b) => ops::bias_add_residual(&y, b, &r)?,
            None => (y + r)?,
        };
        y.reshape(shape)
    }

    /// `residual + self(xs)`, with the bias and the residual added in one fused pass.
    pub fn forward_residual(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let (rows, shape) = rows_of(xs, self.weight.dim(0)?)?;
        if let Some(y) = self.packed_residual(&rows, residual, false)? {
            return y.reshape(shape);
        }
        let (y, shape) = self.product(xs, &self.weight)?;
        let r = residual.reshape(y.shape())?;
        let y = match &self.bias {
            Some(b) => ops::bias_add_residual(&y, b, &r)?,
            None => (y + r)?,
        };
        y.reshape(shape)
    }

    /// `act(self(xs))`, with the bias fused into the activation where it can be.
    fn forward_activated(&self, xs: &Tensor, act: Activation) -> Result<Tensor> {
        let (y, shape) = self.product(xs, &self.weight)?;
        let y = match (&self.bias, act) {
            (Some(b), Activation::QuickGelu) => ops::bias_quick_gelu(&y, b)?,
            (Some(b), act) => activate(act, &ops::bias_add(&y, b)?)?,
            (None, act) => activate(act, &y)?,
        };
        y.reshape(shape)
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let Some(b) = &self.bias else {
            let (y, shape) = self.product(xs, &self.weight)?;
            return y.reshape(shape);
        };
        // The bias written under the product (one op, no pre-bias tensor kept for the backward pass).
        let (rows, shape) = rows_of(xs, self.weight.dim(0)?)?;
        match self.packed_for(&rows)? {
            Some(p) => ops::packed_linear(&rows, p, Some(b), false)?.reshape(shape),
            None => ops::linear_bias(&rows, &self.weight, b)?.reshape(shape),
        }
    }
}

/// `xs` `[.., in]` viewed as `[rows, in]`, and the shape `[.., out]` of a product with `out` columns.
fn rows_of(xs: &Tensor, out: usize) -> Result<(Tensor, Vec<usize>)> {
    let dims = xs.dims();
    let input = *dims.last().unwrap_or(&0);
    let mut shape = dims[..dims.len().saturating_sub(1)].to_vec();
    shape.push(out);
    Ok((xs.reshape(((), input))?, shape))
}

fn activate(act: Activation, xs: &Tensor) -> Result<Tensor> {
    match act {
        Activation::QuickGelu => ops::quick_gelu(xs),
        Activation::Gelu => xs.gelu_erf(),
        Activation::GeluNew => xs.gelu(),
    }
}

/// The sizes an encoder needs from either tower's config.
#[derive(Debug, Clone, Copy)]
pub(super) struct EncoderDims {
    pub(super) hidden: usize,
    pub(super) intermediate: usize,
    pub(super) heads: usize,
    pub(super) layers: usize,
    pub(super) eps: f64,
    pub(super) act: Activation,
}

/// `EncoderDims::from(&tower_config)` for both towers (their encoder fields have the same names).
macro_rules! encoder_dims_from {
    ($($config:ty),+) => {$(
        impl From<&$config> for EncoderDims {
            fn from(c: &$config) -> Self {
                Self {
                    hidden: c.hidden_size,
                    intermediate: c.intermediate_size,
                    heads: c.num_attention_heads,
                    layers: c.num_hidden_layers,
                    eps: c.layer_norm_eps,
                    act: c.hidden_act,
                }
            }
        }
    )+};
}

encoder_dims_from!(ClipTextConfig, ClipVisionConfig);

/// `CLIPAttention`: multi-head self-attention with an optional additive mask.
#[derive(Debug, Clone)]
pub(super) struct Attention {
    pub(super) q_proj: Linear,
    pub(super) k_proj: Linear,
    pub(super) v_proj: Linear,
    pub(super) out_proj: Linear,
    pub(super) heads: usize,
    pub(super) scale: f64,
    /// For scoring ([`WeightMap::pack`]): `q`, `k` and `v` packed as one `[3 · hidden, hidden]` weight, with their
    /// biases side by side, so that the three projections are one product (one copy of the input's rows, not
    /// three) whose rows the attention op reads in place ([`ops::attention_qkv`]).
    pub(super) qkv: Option<(Arc<PackedWeight>, Tensor)>,
}

impl Attention {
    pub(super) fn new(d: EncoderDims, vb: VarBuilder) -> Result<Self> {
        let h = d.hidden;
        let head_dim = h / d.heads;
        Ok(Self {
            q_proj: linear(h, h, vb.pp("q_proj"))?,
            k_proj: linear(h, h, vb.pp("k_proj"))?,
            v_proj: linear(h, h, vb.pp("v_proj"))?,
            out_proj: linear(h, h, vb.pp("out_proj"))?,
            heads: d.heads,
            scale: (head_dim as f64).powf(-0.5),
            qkv: None,
        })
    }

    pub(super) fn map_weights(&self, f: MapFn) -> Result<Self> {
        // With `pack`, q, k and v are packed together below, not one by one.
        let each = WeightMap { each: f.each, pack: false };
        let (q_proj, k_proj, v_proj) = (self.q_proj.map_weights(&each)?, self.k_proj.map_weights(&each)?, self.v_proj.map_weights(&each)?);
        let qkv = match (f.pack, &q_proj.bias, &k_proj.bias, &v_proj.bias) {
            (true, Some(qb), Some(kb), Some(vb)) => {
                let w = Tensor::cat(&[&q_proj.weight, &k_proj.weight, &v_proj.weight], 0)?;
                ops::pack_weight(&w)?.map(|w| Tensor::cat(&[qb, kb, vb], 0).map(|b| (w, b))).transpose()?
            }
            _ => None,
        };
        Ok(Self {
            q_proj,
            k_proj,
            v_proj,
            out_proj: self.out_proj.map_weights(f)?,
            heads: self.heads,
            scale: self.scale,
            qkv,
        })
    }

    /// `attention(xs)` before the output projection, `[b, s, hidden]`: from one product with the packed `q, k, v`
    /// weight where the model holds one and it pays for these rows, else from the three projections.
    fn attend(&self, xs: &Tensor, causal: bool) -> Result<Tensor> {
        let (b, s, h) = xs.dims3()?;
        if let Some((w, bias)) = self.qkv.as_ref().filter(|_| PackedWeight::pays_for(b * s)) {
            let qkv = ops::packed_linear(&xs.reshape((b * s, h))?, w, Some(bias), false)?;
            return ops::attention_qkv(&qkv.reshape((b, s, 3 * h))?, self.heads, self.scale, causal);
        }
        let q = self.q_proj.forward(xs)?;
        let k = self.k_proj.forward(xs)?;
        let v = self.v_proj.forward(xs)?;
        ops::attention(&q, &k, &v, self.heads, self.scale, causal)
    }

    /// `residual + attention(xs)`; `causal` masks each position's view of the later ones.
    ///
    /// The attention itself (scale, mask, softmax, weighted sum, all heads) is one fused op on the projections
    /// (see [`ops::attention`]): each head's products through BLAS on its columns in place, no transposed or
    /// per-head copies, no mask additions.
    fn forward_residual(&self, xs: &Tensor, residual: &Tensor, causal: bool) -> Result<Tensor> {
        self.out_proj.forward_residual(&self.attend(xs, causal)?, residual)
    }

    /// [`Attention::forward_residual`] for the rows `rows` (flat indices into `xs`'s `[n · s]` rows) only:
    /// every row's keys and values, but the output projection only over the rows asked for. `residual` holds
    /// those rows, `[rows, hidden]`.
    fn forward_residual_rows(&self, xs: &Tensor, residual: &Tensor, causal: bool, rows: &Tensor) -> Result<Tensor> {
        let o = self.attend(xs, causal)?;
        let (n, s, h) = o.dims3()?;
        self.out_proj.forward_residual(&o.reshape((n * s, h))?.index_select(rows, 0)?, residual)
    }
}

/// `CLIPMLP`.
#[derive(Debug, Clone)]
pub(super) struct Mlp {
    pub(super) fc1: Linear,
    pub(super) fc2: Linear,
    pub(super) act: Activation,
}

impl Mlp {
    pub(super) fn new(d: EncoderDims, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(d.hidden, d.intermediate, vb.pp("fc1"))?,
            fc2: linear(d.intermediate, d.hidden, vb.pp("fc2"))?,
            act: d.act,
        })
    }
}

impl Mlp {
    pub(super) fn map_weights(&self, f: MapFn) -> Result<Self> {
        Ok(Self { fc1: self.fc1.map_weights(f)?, fc2: self.fc2.map_weights(f)?, act: self.act })
    }

    /// `residual + mlp(xs)`. With quick GELU (OpenAI's checkpoints) the activation is not kept for the backward
    /// pass: `fc2`'s op recomputes it from `fc1`'s output, which the backward needs anyway.
    fn forward_residual(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        match self.act {
            Activation::QuickGelu => self.fc2.forward_quick_gelu_residual(&self.fc1.forward(xs)?, residual),
            act => self.fc2.forward_residual(&self.fc1.forward_activated(xs, act)?, residual),
        }
    }
}

/// `CLIPEncoderLayer`: pre-norm attention and MLP blocks with residuals.
#[derive(Debug, Clone)]
pub(super) struct EncoderLayer {
    pub(super) self_attn: Attention,
    pub(super) layer_norm1: LayerNorm,
    pub(super) mlp: Mlp,
    pub(super) layer_norm2: LayerNorm,
}

impl EncoderLayer {
    pub(super) fn new(d: EncoderDims, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            self_attn: Attention::new(d, vb.pp("self_attn"))?,
            layer_norm1: LayerNorm::new(d.hidden, d.eps, vb.pp("layer_norm1"))?,
            mlp: Mlp::new(d, vb.pp("mlp"))?,
            layer_norm2: LayerNorm::new(d.hidden, d.eps, vb.pp("layer_norm2"))?,
        })
    }

    pub(super) fn map_weights(&self, f: MapFn) -> Result<Self> {
        Ok(Self {
            self_attn: self.self_attn.map_weights(f)?,
            layer_norm1: self.layer_norm1.map_weights(f)?,
            mlp: self.mlp.map_weights(f)?,
            layer_norm2: self.layer_norm2.map_weights(f)?,
        })
    }

    fn forward(&self, xs: &Tensor, causal: bool) -> Result<Tensor> {
        let h = self.self_attn.forward_residual(&self.layer_norm1.forward(xs)?, xs, causal)?;
        self.mlp.forward_residual(&self.layer_norm2.forward(&h)?, &h)
    }

    /// The layer's output at the rows `rows` (flat indices into `xs`'s `[n · s]` rows) only, `[rows, hidden]`:
    /// each row still attends to all the others, but the output projection and the MLP run over those rows alone.
    pub(super) fn forward_rows(&self, xs: &Tensor, causal: bool, rows: &Tensor) -> Result<Tensor> {
        let (n, s, h) = xs.dims3()?;
        let residual = xs.reshape((n * s, h))?.index_select(rows, 0)?;
        let h = self.self_attn.forward_residual_rows(&self.layer_norm1.forward(xs)?, &residual, causal, rows)?;
        self.mlp.forward_residual(&self.layer_norm2.forward(&h)?, &h)
    }
}

/// `CLIPEncoder`.
#[derive(Debug, Clone)]
pub(super) struct Encoder {
    pub(super) layers: Vec<EncoderLayer>,
}

impl Encoder {
    pub(super) fn new(d: EncoderDims, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("layers");
        let layers = (0..d.layers)
            .map(|i| EncoderLayer::new(d, vb.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    pub(super) fn map_weights(&self, f: MapFn) -> Result<Self> {
        Ok(Self { layers: self.layers.iter().map(|l| l.map_weights(f)).collect::<Result<_>>()? })
    }

    /// The last layer's output at the rows `rows` only (flat indices into `xs`'s `[n · s]` rows), `[rows, hidden]`:
    /// the rows the model pools (end-of-text tokens, class tokens). The last layer's output projection and MLP
    /// then run over those rows alone, as nothing reads the others (1/12 of the text tower's products at 77
    /// tokens); the earlier layers run over every row, as every row feeds the last layer's attention.
    pub(super) fn forward_rows(&self, xs: &Tensor, causal: bool, rows: &Tensor) -> Result<Tensor> {
        let Some((last, body)) = self.layers.split_last() else {
            let (n, s, h) = xs.dims3()?;
            return xs.reshape((n * s, h))?.index_select(rows, 0);
        };
        let mut xs = xs.clone();
        for layer in body {
            xs = layer.forward(&xs, causal)?;
        }
        last.forward_rows(&xs, causal, rows)
    }
}
