//! The CLIP model in candle, trainable end to end.
//!
//! Mirrors `transformers/models/clip/modeling_clip.py` (`CLIPModel`, `CLIPTextTransformer`,
//! `CLIPVisionTransformer`, `CLIPEncoderLayer`, `CLIPAttention`, `CLIPMLP`); every `vb.pp(..)` follows the
//! checkpoint's key names, so published `model.safetensors` files load as they are.
//!
//! Where it differs from `candle_transformers::models::clip` (on purpose):
//! - layer norms and the attention softmax go through [`super::ops`], whose fused ops have a backward pass
//!   (candle's fused ones do not, which silently stops gradients at every layer norm);
//! - `logit_scale` and `vision_model.embeddings.class_embedding` are ordinary parameters: always loaded (an
//!   error if missing), trained and exported;
//! - the patch embedding is computed as an unfold + matmul (exactly the stride = kernel convolution);
//! - text pooling takes the last token of each caption (the end-of-text token, see `tokenize`), so batches are
//!   padded only to their longest caption;
//! - the last encoder layer's output projection and MLP run over the pooled rows alone (end-of-text and class
//!   tokens), as nothing reads the other rows' outputs: the same numbers, 1/12 fewer products in the text tower.

use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Embedding, VarBuilder};

use super::config::{Activation, ClipConfig, ClipTextConfig, ClipVisionConfig};
use super::ops;
use crate::model::blas::PackedWeight;

/// What [`ClipModel::cast`], [`ClipModel::detached`] and [`ClipModel::packed`] do to the weights, passed down
/// through the modules: `each` maps every weight; with `pack`, each linear layer's (mapped) weight is also packed
/// for scoring ([`ops::pack_weight`]).
struct WeightMap<'a> {
    each: &'a dyn Fn(&Tensor) -> Result<Tensor>,
    pack: bool,
}

type MapFn<'a> = &'a WeightMap<'a>;

/// Layer normalisation with a backward pass (`nn.LayerNorm`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
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
    fn map_weights(&self, f: MapFn) -> Result<Self> {
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
    weight: Tensor,
    bias: Option<Tensor>,
    /// The weight packed once for scoring ([`ClipModel::packed`]): the products then use it instead.
    packed: Option<Arc<PackedWeight>>,
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
    fn map_weights(&self, f: MapFn) -> Result<Self> {
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
    fn product(&self, xs: &Tensor, weight: &Tensor) -> Result<(Tensor, Vec<usize>)> {
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
struct EncoderDims {
    hidden: usize,
    intermediate: usize,
    heads: usize,
    layers: usize,
    eps: f64,
    act: Activation,
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
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    scale: f64,
}

impl Attention {
    fn new(d: EncoderDims, vb: VarBuilder) -> Result<Self> {
        let h = d.hidden;
        let head_dim = h / d.heads;
        Ok(Self {
            q_proj: linear(h, h, vb.pp("q_proj"))?,
            k_proj: linear(h, h, vb.pp("k_proj"))?,
            v_proj: linear(h, h, vb.pp("v_proj"))?,
            out_proj: linear(h, h, vb.pp("out_proj"))?,
            heads: d.heads,
            scale: (head_dim as f64).powf(-0.5),
        })
    }

    fn map_weights(&self, f: MapFn) -> Result<Self> {
        Ok(Self {
            q_proj: self.q_proj.map_weights(f)?,
            k_proj: self.k_proj.map_weights(f)?,
            v_proj: self.v_proj.map_weights(f)?,
            out_proj: self.out_proj.map_weights(f)?,
            heads: self.heads,
            scale: self.scale,
        })
    }

    /// `residual + attention(xs)`; `causal` masks each position's view of the later ones.
    ///
    /// The attention itself (scale, mask, softmax, weighted sum, all heads) is one fused op on the projections
    /// (see [`ops::attention`]): each head's products through BLAS on its columns in place, no transposed or
    /// per-head copies, no mask additions.
    fn forward_residual(&self, xs: &Tensor, residual: &Tensor, causal: bool) -> Result<Tensor> {
        let q = self.q_proj.forward(xs)?;
        let k = self.k_proj.forward(xs)?;
        let v = self.v_proj.forward(xs)?;
        let o = ops::attention(&q, &k, &v, self.heads, self.scale, causal)?;
        self.out_proj.forward_residual(&o, residual)
    }

    /// [`Attention::forward_residual`] for the rows `rows` (flat indices into `xs`'s `[n · s]` rows) only:
    /// every row's keys and values, but the output projection only over the rows asked for. `residual` holds
    /// those rows, `[rows, hidden]`.
    fn forward_residual_rows(&self, xs: &Tensor, residual: &Tensor, causal: bool, rows: &Tensor) -> Result<Tensor> {
        let q = self.q_proj.forward(xs)?;
        let k = self.k_proj.forward(xs)?;
        let v = self.v_proj.forward(xs)?;
        let o = ops::attention(&q, &k, &v, self.heads, self.scale, causal)?;
        let (n, s, h) = o.dims3()?;
        self.out_proj.forward_residual(&o.reshape((n * s, h))?.index_select(rows, 0)?, residual)
    }
}

/// `CLIPMLP`.
#[derive(Debug, Clone)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl Mlp {
    fn new(d: EncoderDims, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(d.hidden, d.intermediate, vb.pp("fc1"))?,
            fc2: linear(d.intermediate, d.hidden, vb.pp("fc2"))?,
            act: d.act,
        })
    }
}

impl Mlp {
    fn map_weights(&self, f: MapFn) -> Result<Self> {
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
struct EncoderLayer {
    self_attn: Attention,
    layer_norm1: LayerNorm,
    mlp: Mlp,
    layer_norm2: LayerNorm,
}

impl EncoderLayer {
    fn new(d: EncoderDims, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            self_attn: Attention::new(d, vb.pp("self_attn"))?,
            layer_norm1: LayerNorm::new(d.hidden, d.eps, vb.pp("layer_norm1"))?,
            mlp: Mlp::new(d, vb.pp("mlp"))?,
            layer_norm2: LayerNorm::new(d.hidden, d.eps, vb.pp("layer_norm2"))?,
        })
    }

    fn map_weights(&self, f: MapFn) -> Result<Self> {
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
    fn forward_rows(&self, xs: &Tensor, causal: bool, rows: &Tensor) -> Result<Tensor> {
        let (n, s, h) = xs.dims3()?;
        let residual = xs.reshape((n * s, h))?.index_select(rows, 0)?;
        let h = self.self_attn.forward_residual_rows(&self.layer_norm1.forward(xs)?, &residual, causal, rows)?;
        self.mlp.forward_residual(&self.layer_norm2.forward(&h)?, &h)
    }
}

/// `CLIPEncoder`.
#[derive(Debug, Clone)]
struct Encoder {
    layers: Vec<EncoderLayer>,
}

impl Encoder {
    fn new(d: EncoderDims, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("layers");
        let layers = (0..d.layers)
            .map(|i| EncoderLayer::new(d, vb.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    fn map_weights(&self, f: MapFn) -> Result<Self> {
        Ok(Self { layers: self.layers.iter().map(|l| l.map_weights(f)).collect::<Result<_>>()? })
    }

    /// The last layer's output at the rows `rows` only (flat indices into `xs`'s `[n · s]` rows), `[rows, hidden]`:
    /// the rows the model pools (end-of-text tokens, class tokens). The last layer's output projection and MLP
    /// then run over those rows alone, as nothing reads the others (1/12 of the text tower's products at 77
    /// tokens); the earlier layers run over every row, as every row feeds the last layer's attention.
    fn forward_rows(&self, xs: &Tensor, causal: bool, rows: &Tensor) -> Result<Tensor> {
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

/// `CLIPTextTransformer` (embeddings, causal encoder, final layer norm, end-of-text pooling).
#[derive(Debug, Clone)]
pub struct ClipTextTransformer {
    token_embedding: Embedding,
    position_embedding: Tensor,
    encoder: Encoder,
    final_layer_norm: LayerNorm,
}

impl ClipTextTransformer {
    pub fn new(vb: VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        let emb = vb.pp("embeddings");
        let init = candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 };
        let token_embedding = Embedding::new(
            emb.pp("token_embedding").get_with_hints((c.vocab_size, c.hidden_size), "weight", init)?,
            c.hidden_size,
        );
        let position_embedding = emb
            .pp("position_embedding")
            .get_with_hints((c.max_position_embeddings, c.hidden_size), "weight", init)?;
        Ok(Self {
            token_embedding,
            position_embedding,
            encoder: Encoder::new(c.into(), vb.pp("encoder"))?,
            final_layer_norm: LayerNorm::new(c.hidden_size, c.layer_norm_eps, vb.pp("final_layer_norm"))?,
        })
    }

    fn map_weights(&self, f: MapFn) -> Result<Self> {
        let table = self.token_embedding.embeddings();
        Ok(Self {
            token_embedding: Embedding::new((f.each)(table)?, table.dim(1)?),
            position_embedding: (f.each)(&self.position_embedding)?,
            encoder: self.encoder.map_weights(f)?,
            final_layer_norm: self.final_layer_norm.map_weights(f)?,
        })
    }

    /// Pooled text states: `ids` is `[n, seq]` (u32), `last` the index of each row's end-of-text token.
    pub fn forward(&self, ids: &Tensor, last: &[usize]) -> Result<Tensor> {
        let (n, s) = ids.dims2()?;
        if last.len() != n || last.iter().any(|&p| p >= s) {
            candle_core::bail!("text pooling positions do not fit a [{n}, {s}] batch");
        }
        let xs = ops::embed_tokens(self.token_embedding.embeddings(), ids, &self.position_embedding)?;
        let flat: Vec<u32> = last.iter().enumerate().map(|(i, &p)| (i * s + p) as u32).collect();
        let idx = Tensor::new(flat.as_slice(), xs.device())?;
        let pooled = self.encoder.forward_rows(&xs, true, &idx)?;
        self.final_layer_norm.forward(&pooled)
    }
}

/// `CLIPVisionTransformer` (patch + class embeddings, pre-norm, encoder, class-token pooling, post-norm).
#[derive(Debug, Clone)]
pub struct ClipVisionTransformer {
    class_embedding: Tensor,
    patch_weight: Tensor,
    /// `patch_weight` as a `[hidden, channels · patch²]` matrix, packed for scoring ([`ClipModel::packed`]).
    patch_packed: Option<Arc<PackedWeight>>,
    position_embedding: Tensor,
    pre_layrnorm: LayerNorm,
    encoder: Encoder,
    post_layernorm: LayerNorm,
    patch: usize,
    channels: usize,
    grid: usize,
}

impl ClipVisionTransformer {
    pub fn new(vb: VarBuilder, c: &ClipVisionConfig) -> Result<Self> {
        let emb = vb.pp("embeddings");
        let h = c.hidden_size;
        let class_embedding = emb.get_with_hints(
            h,
            "class_embedding",
            candle_nn::Init::Randn { mean: 0.0, stdev: (h as f64).powf(-0.5) },
        )?;
        let patch_weight = emb.pp("patch_embedding").get_with_hints(
            (h, c.num_channels, c.patch_size, c.patch_size),
            "weight",
            candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        )?;
        let position_embedding = emb.pp("position_embedding").get_with_hints(
            (c.num_positions(), h),
            "weight",
            candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        )?;
        Ok(Self {
            class_embedding,
            patch_weight,
            patch_packed: None,
            position_embedding,
            // (sic) the checkpoint's key is spelled `pre_layrnorm`.
            pre_layrnorm: LayerNorm::new(h, c.layer_norm_eps, vb.pp("pre_layrnorm"))?,
            encoder: Encoder::new(c.into(), vb.pp("encoder"))?,
            post_layernorm: LayerNorm::new(h, c.layer_norm_eps, vb.pp("post_layernorm"))?,
            patch: c.patch_size,
            channels: c.num_channels,
            grid: c.grid(),
        })
    }
}

impl ClipVisionTransformer {
    fn map_weights(&self, f: MapFn) -> Result<Self> {
        Ok(Self {
            class_embedding: (f.each)(&self.class_embedding)?,
            patch_weight: (f.each)(&self.patch_weight)?,
            patch_packed: if f.pack { ops::pack_weight(&(f.each)(&self.patch_weight)?.flatten_from(1)?)? } else { None },
            position_embedding: (f.each)(&self.position_embedding)?,
            pre_layrnorm: self.pre_layrnorm.map_weights(f)?,
            encoder: self.encoder.map_weights(f)?,
            post_layernorm: self.post_layernorm.map_weights(f)?,
            ..*self
        })
    }
}

impl Module for ClipVisionTransformer {
    /// `pixel_values` `[b, channels, size, size]` → pooled `[b, hidden]`.
    fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (b, c, hgt, wid) = pixel_values.dims4()?;
        let (g, p) = (self.grid, self.patch);
        if c != self.channels || hgt != g * p || wid != g * p {
            candle_core::bail!(
                "pixel values are [{b}, {c}, {hgt}, {wid}], the model expects [_, {}, {}, {}]",
                self.channels,
                g * p,
                g * p
            );
        }
        let hidden = self.class_embedding.dim(0)?;
        // Conv2d with stride == kernel == patch is an unfold followed by a matmul.
        let patches = pixel_values
            .reshape((b, c, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((b * g * g, c * p * p))?;
        let w = self.patch_weight.reshape((hidden, c * p * p))?;
        let embed = Linear { weight: w.clone(), bias: None, packed: self.patch_packed.clone() };
        let patch_embeds = embed.product(&patches, &w)?.0.reshape((b, g * g, hidden))?;
        let xs = ops::vision_embed(&patch_embeds, &self.class_embedding, &self.position_embedding)?;
        let xs = self.pre_layrnorm.forward(&xs)?;
        let s = g * g + 1;
        let class_rows: Vec<u32> = (0..b).map(|i| (i * s) as u32).collect();
        let idx = Tensor::new(class_rows.as_slice(), xs.device())?;
        self.post_layernorm.forward(&self.encoder.forward_rows(&xs, false, &idx)?)
    }
}

/// `CLIPModel`: both towers, their projections and the learned temperature.
#[derive(Debug, Clone)]
pub struct ClipModel {
    text_model: ClipTextTransformer,
    vision_model: ClipVisionTransformer,
    visual_projection: Linear,
    text_projection: Linear,
    logit_scale: Tensor,
}

impl ClipModel {
    pub fn new(vb: VarBuilder, c: &ClipConfig) -> Result<Self> {
        let t = &c.text_config;
        let v = &c.vision_config;
        let proj = |input: usize, name: &str| -> Result<Linear> {
            let w = vb.pp(name).get_with_hints(
                (c.projection_dim, input),
                "weight",
                candle_nn::Init::Randn { mean: 0.0, stdev: (input as f64).powf(-0.5) },
            )?;
            Ok(Linear::new(w, None))
        };
        Ok(Self {
            text_model: ClipTextTransformer::new(vb.pp("text_model"), t)?,
            vision_model: ClipVisionTransformer::new(vb.pp("vision_model"), v)?,
            visual_projection: proj(v.hidden_size, "visual_projection")?,
            text_projection: proj(t.hidden_size, "text_projection")?,
            logit_scale: vb.get_with_hints((), "logit_scale", candle_nn::Init::Const(c.logit_scale_init_value))?,
        })
    }

    /// The model computing in `dtype` (bf16 or f16 for mixed precision; F32: the model itself): every weight of
    /// both towers and the projections cast, `logit_scale` kept, as the head after the projections computes in
    /// f32 (see [`ClipModel::choice_logits`]). The casts are differentiable, so gradients of the cast model's
    /// outputs reach the original (f32 master) parameters in their own dtype; cast once per forward pass, as
    /// PyTorch's autocast does.
    pub fn cast(&self, dtype: DType) -> Result<Self> {
        if dtype == DType::F32 {
            return Ok(self.clone());
        }
        self.map_towers(&WeightMap { each: &|t| t.to_dtype(dtype), pack: false }, self.logit_scale.clone())
    }

    /// The same model for scoring: every weight detached from autograd (`Tensor::detach`), so that a forward
    /// pass records no graph. The weights are not copied: each detached tensor shares its parameter's storage
    /// (so it sees the optimizer's in-place updates), and only the ops' outputs are new. A forward pass of the
    /// model itself keeps every activation alive until its output is dropped (each op that has a `Var` among its
    /// inputs records them for backprop); one of this model frees each activation as soon as the next layer has
    /// used it. Gradients of its outputs reach nothing.
    pub fn detached(&self) -> Result<Self> {
        self.map_towers(&WeightMap { each: &|t| Ok(t.detach()), pack: false }, self.logit_scale.detach())
    }

    /// The model for a scoring phase over many batches: [`ClipModel::detached`], with every linear layer's weight
    /// also packed once for the CPU's matrix-product kernel ([`ops::pack_weight`]). A product on few rows then packs
    /// only its input rows, not the weight (at 1 image x 5 captions, packing the weights was 31 % of a scoring
    /// pass; `docs/performance.md`); products on more rows read the parameters as the detached view does. The
    /// scores are the same, to float rounding. The packed copies are made once and do not follow later updates of
    /// the parameters: make one per scoring phase and drop it before the weights change (training). While it
    /// lives it holds one more copy of the linear weights (about 490 MB for ViT-B/32). Where packing is not
    /// available (no OpenBLAS kernel, a GPU, bf16 or f16 weights) it is the detached view.
    pub fn packed(&self) -> Result<Self> {
        self.map_towers(&WeightMap { each: &|t| Ok(t.detach()), pack: true }, self.logit_scale.detach())
    }

    /// How many linear layers hold a packed weight ([`ClipModel::packed`]).
    pub fn packed_layers(&self) -> usize {
        let mut n = usize::from(self.visual_projection.packed.is_some()) + usize::from(self.text_projection.packed.is_some());
        for layers in [&self.text_model.encoder.layers, &self.vision_model.encoder.layers] {
            for l in layers {
                let a = &l.self_attn;
                n += [&a.q_proj, &a.k_proj, &a.v_proj, &a.out_proj, &l.mlp.fc1, &l.mlp.fc2]
                    .iter()
                    .filter(|x| x.packed.is_some())
                    .count();
            }
        }
        n
    }

    /// The model with `f` applied to every weight of both towers and the projections, and `logit_scale` given.
    fn map_towers(&self, f: MapFn, logit_scale: Tensor) -> Result<Self> {
        Ok(Self {
            text_model: self.text_model.map_weights(f)?,
            vision_model: self.vision_model.map_weights(f)?,
            visual_projection: self.visual_projection.map_weights(f)?,
            text_projection: self.text_projection.map_weights(f)?,
            logit_scale,
        })
    }

    /// Projected image embeddings `[b, projection_dim]` (not normalised).
    pub fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.visual_projection.forward(&self.vision_model.forward(pixel_values)?)
    }

    /// Projected text embeddings `[n, projection_dim]` (not normalised).
    pub fn text_features(&self, ids: &Tensor, last: &[usize]) -> Result<Tensor> {
        self.text_projection.forward(&self.text_model.forward(ids, last)?)
    }

    /// The learned log temperature (a scalar).
    pub fn logit_scale(&self) -> &Tensor {
        &self.logit_scale
    }

    /// Logits of each image against its OWN caption choices.
    ///
    /// `choices` is `[b, k]` (u32): row `i` lists the rows of the text batch that are image `i`'s choices;
    /// `mask` is `None` or `[b, k]` with 0 for real choices and a large negative number for padding (images
    /// with fewer than `k` choices). Returns `[b, k]` = `exp(logit_scale) * cos(image_i, caption_ij)`, exactly
    /// `CLIPModel`'s `logits_per_image` restricted to each image's choices. The towers compute in the dtype of
    /// their weights (see [`ClipModel::cast`]); the normalisation, cosines and logits always in f32.
    pub fn choice_logits(
        &self,
        pixel_values: &Tensor,
        ids: &Tensor,
        last: &[usize],
        choices: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let img = l2_normalize(&self.image_features(pixel_values)?.to_dtype(DType::F32)?)?;
        let txt = l2_normalize(&self.text_features(ids, last)?.to_dtype(DType::F32)?)?;
        let (b, k) = choices.dims2()?;
        let d = img.dim(1)?;
        let picked = txt.index_select(&choices.flatten_all()?, 0)?.reshape((b, k, d))?;
        let cos = picked.broadcast_mul(&img.unsqueeze(1)?)?.sum(D::Minus1)?;
        let logits = cos.broadcast_mul(&self.logit_scale.exp()?)?;
        match mask {
            Some(m) => logits.broadcast_add(m),
            None => Ok(logits),
        }
    }
}

/// `x / ||x||` along the last dimension.
pub fn l2_normalize(xs: &Tensor) -> Result<Tensor> {
    xs.broadcast_div(&xs.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)
}

/// The dtype of the trainable model's parameters (the master weights; [`ClipModel::cast`] makes the model that
/// computes in bf16 or f16 from them).
pub const COMPUTE_DTYPE: DType = DType::F32;
