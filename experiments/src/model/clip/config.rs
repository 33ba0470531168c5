//! CLIP configuration, read from and written to Hugging Face's `config.json`.
//!
//! Mirrors `transformers.models.clip.configuration_clip` (`CLIPTextConfig`, `CLIPVisionConfig`, `CLIPConfig`):
//! the field names are the same so a published `config.json` deserialises as it is, and missing fields take
//! transformers' defaults (which are ViT-B/32's).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The non-linearity of the MLP blocks (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`, used by OpenAI's checkpoints.
    QuickGelu,
    /// The exact (erf) GELU.
    Gelu,
    /// The tanh approximation of GELU.
    #[serde(alias = "gelu_pytorch_tanh")]
    GeluNew,
}

fn d_vocab() -> usize {
    49408
}
fn d_text_hidden() -> usize {
    512
}
fn d_text_inter() -> usize {
    2048
}
fn d_text_heads() -> usize {
    8
}
fn d_layers() -> usize {
    12
}
fn d_max_pos() -> usize {
    77
}
fn d_act() -> Activation {
    Activation::QuickGelu
}
fn d_eps() -> f64 {
    1e-5
}
fn d_proj() -> usize {
    512
}
fn d_vision_hidden() -> usize {
    768
}
fn d_vision_inter() -> usize {
    3072
}
fn d_vision_heads() -> usize {
    12
}
fn d_channels() -> usize {
    3
}
fn d_image() -> usize {
    224
}
fn d_patch() -> usize {
    32
}
fn d_logit_scale() -> f64 {
    2.6592
}
fn d_eos() -> u32 {
    49407
}
fn d_bos() -> u32 {
    49406
}
fn d_pad() -> u32 {
    1
}

/// The text tower (`text_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipTextConfig {
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    #[serde(default = "d_text_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_text_inter")]
    pub intermediate_size: usize,
    #[serde(default = "d_text_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// The context length (77 for every published CLIP).
    #[serde(default = "d_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_act")]
    pub hidden_act: Activation,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d_proj")]
    pub projection_dim: usize,
    #[serde(default = "d_bos")]
    pub bos_token_id: u32,
    /// Old configs say 2 here although the real end-of-text id is the largest one; we pool on the last
    /// token of each caption instead (see `tokenize`), which is right for both.
    #[serde(default = "d_eos")]
    pub eos_token_id: u32,
    #[serde(default = "d_pad")]
    pub pad_token_id: u32,
}

/// The vision tower (`vision_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipVisionConfig {
    #[serde(default = "d_vision_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_vision_inter")]
    pub intermediate_size: usize,
    #[serde(default = "d_vision_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    #[serde(default = "d_image")]
    pub image_size: usize,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_act")]
    pub hidden_act: Activation,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "d_proj")]
    pub projection_dim: usize,
}

/// A whole `CLIPModel` config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    #[serde(default = "d_proj")]
    pub projection_dim: usize,
    #[serde(default = "d_logit_scale")]
    pub logit_scale_init_value: f64,
}

impl ClipVisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Tokens per image: one per patch plus the class token.
    pub fn num_positions(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

/// The named presets.
pub const PRESETS: &[&str] = &["vit-b-32", "vit-b-16", "vit-l-14"];

impl ClipConfig {
    /// `openai/clip-vit-base-patch32`.
    pub fn vit_b_32() -> Self {
        Self::from_json_str("{\"text_config\":{},\"vision_config\":{}}").expect("defaults are valid")
    }

    /// `openai/clip-vit-base-patch16`.
    pub fn vit_b_16() -> Self {
        let mut c = Self::vit_b_32();
        c.vision_config.patch_size = 16;
        c
    }

    /// `openai/clip-vit-large-patch14`.
    pub fn vit_l_14() -> Self {
        let mut c = Self::vit_b_32();
        c.projection_dim = 768;
        c.text_config.hidden_size = 768;
        c.text_config.intermediate_size = 3072;
        c.text_config.num_attention_heads = 12;
        c.text_config.projection_dim = 768;
        let v = &mut c.vision_config;
        v.hidden_size = 1024;
        v.intermediate_size = 4096;
        v.num_attention_heads = 16;
        v.num_hidden_layers = 24;
        v.patch_size = 14;
        v.projection_dim = 768;
        c
    }

    /// A preset by name (`vit-b-32`, `vit-b-16`, `vit-l-14`).
    pub fn preset(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().replace(['_', '/'], "-").as_str() {
            "vit-b-32" => Ok(Self::vit_b_32()),
            "vit-b-16" => Ok(Self::vit_b_16()),
            "vit-l-14" => Ok(Self::vit_l_14()),
            other => Err(Error::Invalid(format!(
                "unknown model preset `{other}` (known: {})",
                PRESETS.join(", ")
            ))),
        }
    }

    /// A tiny CLIP for tests and the demo: `width` wide, `layers` deep, `image_size` pixels, `patch` patches.
    pub fn tiny(vocab_size: usize, width: usize, layers: usize, image_size: usize, patch: usize) -> Self {
        let mut c = Self::vit_b_32();
        c.projection_dim = width;
        let t = &mut c.text_config;
        t.vocab_size = vocab_size;
        t.hidden_size = width;
        t.intermediate_size = 4 * width;
        t.num_attention_heads = (width / 16).max(1);
        t.num_hidden_layers = layers;
        t.max_position_embeddings = 32;
        t.projection_dim = width;
        t.eos_token_id = vocab_size as u32 - 1;
        t.bos_token_id = vocab_size as u32 - 2;
        t.pad_token_id = 0;
        let v = &mut c.vision_config;
        v.hidden_size = width;
        v.intermediate_size = 4 * width;
        v.num_attention_heads = (width / 16).max(1);
        v.num_hidden_layers = layers;
        v.image_size = image_size;
        v.patch_size = patch;
        v.projection_dim = width;
        c
    }

    fn from_json_str(s: &str) -> serde_json::Result<Self> {
        serde_json::from_str(s)
    }

    /// Reads `config.json`; errors name the file and what is wrong with it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = crate::error::read_file(path)?;
        let mut value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::bad_file(path, format!("not valid JSON: {e}")))?;
        // Very old configs keep the towers under `*_config_dict`.
        if let Some(obj) = value.as_object_mut() {
            for tower in ["text_config", "vision_config"] {
                if !obj.contains_key(tower) || obj[tower].is_null() {
                    let dict = obj.get(&format!("{tower}_dict")).cloned();
                    obj.insert(tower.to_string(), dict.unwrap_or_else(|| serde_json::json!({})));
                }
            }
        }
        let cfg: Self = serde_json::from_value(value)
            .map_err(|e| Error::bad_file(path, format!("not a CLIP config: {e}")))?;
        cfg.validate().map_err(|m| Error::bad_file(path, m))?;
        Ok(cfg)
    }

    /// Checks the dimensions fit together.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.text_config;
        let v = &self.vision_config;
        if t.num_attention_heads == 0 || t.hidden_size % t.num_attention_heads != 0 {
            return Err(format!(
                "text hidden_size {} is not divisible by num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if v.num_attention_heads == 0 || v.hidden_size % v.num_attention_heads != 0 {
            return Err(format!(
                "vision hidden_size {} is not divisible by num_attention_heads {}",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            return Err(format!(
                "vision image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        if t.max_position_embeddings < 2 {
            return Err("text max_position_embeddings must be at least 2".into());
        }
        Ok(())
    }

    /// The `config.json` that `transformers.CLIPModel.from_pretrained` reads.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert("architectures".into(), serde_json::json!(["CLIPModel"]));
            obj.insert("model_type".into(), serde_json::json!("clip"));
            obj.insert("initializer_factor".into(), serde_json::json!(1.0));
            obj.insert("torch_dtype".into(), serde_json::json!("float32"));
            if let Some(t) = obj.get_mut("text_config").and_then(|t| t.as_object_mut()) {
                t.insert("model_type".into(), serde_json::json!("clip_text_model"));
            }
            if let Some(t) = obj.get_mut("vision_config").and_then(|t| t.as_object_mut()) {
                t.insert("model_type".into(), serde_json::json!("clip_vision_model"));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_published_sizes() {
        let b32 = ClipConfig::vit_b_32();
        assert_eq!(b32.vision_config.num_positions(), 50);
        assert_eq!(b32.text_config.vocab_size, 49408);
        assert_eq!(ClipConfig::vit_b_16().vision_config.num_positions(), 197);
        let l14 = ClipConfig::vit_l_14();
        assert_eq!(l14.vision_config.num_positions(), 257);
        assert_eq!(l14.projection_dim, 768);
        assert!(ClipConfig::preset("ViT-B/32").is_ok());
        assert!(ClipConfig::preset("resnet").is_err());
    }

    #[test]
    fn reads_the_published_openai_config_shape() {
        // Abridged from openai/clip-vit-base-patch32's config.json (extra keys are ignored).
        let json = r#"{"architectures":["CLIPModel"],"initializer_factor":1.0,"logit_scale_init_value":2.6592,
            "model_type":"clip","projection_dim":512,
            "text_config":{"bos_token_id":0,"eos_token_id":2,"hidden_act":"quick_gelu","hidden_size":512,
              "intermediate_size":2048,"max_position_embeddings":77,"num_attention_heads":8,"num_hidden_layers":12,
              "vocab_size":49408,"do_sample":false},
            "vision_config":{"hidden_size":768,"intermediate_size":3072,"num_attention_heads":12,
              "num_hidden_layers":12,"image_size":224,"patch_size":32,"hidden_act":"quick_gelu"}}"#;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("config.json");
        std::fs::write(&p, json).expect("write");
        let c = ClipConfig::from_file(&p).expect("parse");
        assert_eq!(c.vision_config, ClipConfig::vit_b_32().vision_config);
        assert_eq!(c.text_config.eos_token_id, 2);
        // Round trip through our own writer.
        std::fs::write(&p, c.to_hf_json().to_string()).expect("write");
        assert_eq!(ClipConfig::from_file(&p).expect("reparse"), c);
    }

    #[test]
    fn bad_configs_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("config.json");
        std::fs::write(&p, "{not json").expect("write");
        let e = ClipConfig::from_file(&p).expect_err("must fail").to_string();
        assert!(e.contains("config.json") && e.contains("JSON"), "{e}");
        std::fs::write(&p, r#"{"text_config":{"hidden_size":10,"num_attention_heads":3},"vision_config":{}}"#)
            .expect("write");
        let e = ClipConfig::from_file(&p).expect_err("must fail").to_string();
        assert!(e.contains("divisible"), "{e}");
        let e = ClipConfig::from_file(&dir.path().join("nope.json")).expect_err("must fail").to_string();
        assert!(e.contains("nope.json") && e.contains("not found"), "{e}");
    }
}
