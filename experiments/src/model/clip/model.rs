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

use super::config::{ClipConfig, ClipTextConfig, ClipVisionConfig};
use super::encoder::{Encoder, LayerNorm, Linear, MapFn, WeightMap};
use super::ops;
use crate::model::blas::PackedWeight;

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
                // q, k and v packed together count as their three layers.
                n += 3 * usize::from(a.qkv.is_some());
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
