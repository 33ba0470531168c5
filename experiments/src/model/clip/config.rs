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

/// The text tower (`text_config`). Missing fields take [`ClipTextConfig::VIT_B_32`]'s values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    /// The context length (77 for every published CLIP).
    pub max_position_embeddings: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub projection_dim: usize,
    pub bos_token_id: u32,
    /// Old configs say 2 here although the real end-of-text id is the largest one; we pool on the last
    /// token of each caption instead (see `tokenize`), which is right for both.
    pub eos_token_id: u32,
    pub pad_token_id: u32,
}

/// The vision tower (`vision_config`). Missing fields take [`ClipVisionConfig::VIT_B_32`]'s values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub projection_dim: usize,
}

/// A whole `CLIPModel` config. Both towers must be present (as `{}` at least); the other fields default to
/// [`ClipConfig::VIT_B_32`]'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    #[serde(default = "default_projection_dim")]
    pub projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    pub logit_scale_init_value: f64,
}

fn default_projection_dim() -> usize {
    ClipConfig::VIT_B_32.projection_dim
}

fn default_logit_scale() -> f64 {
    ClipConfig::VIT_B_32.logit_scale_init_value
}

impl ClipTextConfig {
    /// `openai/clip-vit-base-patch32`'s text tower: transformers' `CLIPTextConfig` defaults.
    pub const VIT_B_32: Self = Self {
        vocab_size: 49408,
        hidden_size: 512,
        intermediate_size: 2048,
        num_attention_heads: 8,
        num_hidden_layers: 12,
        max_position_embeddings: 77,
        hidden_act: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
        projection_dim: 512,
        bos_token_id: 49406,
        eos_token_id: 49407,
        pad_token_id: 1,
    };
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self::VIT_B_32
    }
}

impl ClipVisionConfig {
    /// `openai/clip-vit-base-patch32`'s vision tower: transformers' `CLIPVisionConfig` defaults.
    pub const VIT_B_32: Self = Self {
        hidden_size: 768,
        intermediate_size: 3072,
        num_attention_heads: 12,
        num_hidden_layers: 12,
        num_channels: 3,
        image_size: 224,
        patch_size: 32,
        hidden_act: Activation::QuickGelu,
        layer_norm_eps: 1e-5,
        projection_dim: 512,
    };
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self::VIT_B_32
    }
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
    /// `openai/clip-vit-base-patch32` (transformers' `CLIPConfig` defaults).
    pub const VIT_B_32: Self = Self {
        text_config: ClipTextConfig::VIT_B_32,
        vision_config: ClipVisionConfig::VIT_B_32,
        projection_dim: 512,
        logit_scale_init_value: 2.6592,
    };

    /// `openai/clip-vit-base-patch16`.
    pub const VIT_B_16: Self = Self {
        vision_config: ClipVisionConfig { patch_size: 16, ..ClipVisionConfig::VIT_B_32 },
        ..Self::VIT_B_32
    };

    /// `openai/clip-vit-large-patch14`.
    pub const VIT_L_14: Self = Self {
        text_config: ClipTextConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            num_attention_heads: 12,
            projection_dim: 768,
            ..ClipTextConfig::VIT_B_32
        },
        vision_config: ClipVisionConfig {
            hidden_size: 1024,
            intermediate_size: 4096,
            num_attention_heads: 16,
            num_hidden_layers: 24,
            patch_size: 14,
            projection_dim: 768,
            ..ClipVisionConfig::VIT_B_32
        },
        projection_dim: 768,
        ..Self::VIT_B_32
    };

    /// [`Self::VIT_B_32`].
    pub fn vit_b_32() -> Self {
        Self::VIT_B_32
    }

    /// [`Self::VIT_B_16`].
    pub fn vit_b_16() -> Self {
        Self::VIT_B_16
    }

    /// [`Self::VIT_L_14`].
    pub fn vit_l_14() -> Self {
        Self::VIT_L_14
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
        let mut c = Self::VIT_B_32;
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
        for (tower, hidden, heads) in [
            ("text", t.hidden_size, t.num_attention_heads),
            ("vision", v.hidden_size, v.num_attention_heads),
        ] {
            if heads == 0 || hidden % heads != 0 {
                return Err(format!("{tower} hidden_size {hidden} is not divisible by num_attention_heads {heads}"));
            }
        }
        if v.patch_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
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

    /// The presets as values equal what transformers' defaults give when read from `{}` towers.
    #[test]
    fn empty_towers_read_as_the_vit_b_32_preset() {
        let c: ClipConfig = serde_json::from_str(r#"{"text_config":{},"vision_config":{}}"#).expect("parse");
        assert_eq!(c, ClipConfig::VIT_B_32);
        assert!(serde_json::from_str::<ClipConfig>(r#"{"text_config":{}}"#).is_err());
    }

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
