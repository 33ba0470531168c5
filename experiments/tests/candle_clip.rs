//! Our CLIP scores as `candle-transformers`' own CLIP does on the same weights and inputs.
//!
//! CLIP Lab has its own CLIP (`model::clip`) because candle's trains wrongly (see ARCHITECTURE.md), not because
//! it scores wrongly: at inference the two must agree. Checked on the transformers-made tiny model in
//! `tests/reference/tiny_clip` and on a random model of another shape; every sequence ends with the EOS token,
//! the largest id of the vocabulary, as candle's text model requires (it pools at `argmax(input_ids)`).

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::clip as theirs;
use experiments::data::synth;
use experiments::model::clip::{ClipConfig, FreezeSpec};
use experiments::model::engine::ClipBundle;
use experiments::model::preprocess::ImageProcessorConfig;

/// candle-transformers' config for the same model.
fn their_config(c: &ClipConfig) -> theirs::ClipConfig {
    let (t, v) = (&c.text_config, &c.vision_config);
    theirs::ClipConfig {
        text_config: theirs::text_model::ClipTextConfig {
            vocab_size: t.vocab_size,
            embed_dim: t.hidden_size,
            activation: theirs::text_model::Activation::QuickGelu,
            intermediate_size: t.intermediate_size,
            max_position_embeddings: t.max_position_embeddings,
            pad_with: None,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            projection_dim: c.projection_dim,
        },
        vision_config: theirs::vision_model::ClipVisionConfig {
            embed_dim: v.hidden_size,
            activation: theirs::text_model::Activation::QuickGelu,
            intermediate_size: v.intermediate_size,
            num_hidden_layers: v.num_hidden_layers,
            num_attention_heads: v.num_attention_heads,
            projection_dim: c.projection_dim,
            num_channels: v.num_channels,
            image_size: v.image_size,
            patch_size: v.patch_size,
        },
        logit_scale_init_value: c.logit_scale_init_value as f32,
        image_size: v.image_size,
    }
}

/// Deterministic inputs: `n_img` images and `n_txt` sequences of `seq` ids below EOS, each ended by EOS.
fn inputs(c: &ClipConfig, n_img: usize, n_txt: usize, seq: usize) -> (Tensor, Tensor, Vec<usize>) {
    let v = &c.vision_config;
    let n = n_img * 3 * v.image_size * v.image_size;
    let pixels: Vec<f32> = (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    let pixels = Tensor::from_vec(pixels, (n_img, 3, v.image_size, v.image_size), &Device::Cpu).expect("pixels");
    let eos = c.text_config.eos_token_id;
    assert_eq!(eos as usize, c.text_config.vocab_size - 1, "EOS must be the largest id for candle's pooling");
    let mut ids = Vec::new();
    let mut last = Vec::new();
    for r in 0..n_txt {
        let len = 3 + r % (seq - 3);
        for p in 0..seq {
            ids.push(match p {
                0 => c.text_config.bos_token_id.min(eos - 1),
                p if p < len => ((r * 31 + p * 17) % (eos as usize - 1)) as u32 + 1,
                p if p == len => eos,
                _ => 0,
            });
        }
        last.push(len);
    }
    (pixels, Tensor::from_vec(ids, (n_txt, seq), &Device::Cpu).expect("ids"), last)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    a.sub(b).and_then(|d| d.abs()).and_then(|d| d.max_all()).and_then(|d| d.to_scalar::<f32>()).expect("diff")
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs().and_then(|d| d.max_all()).and_then(|d| d.to_scalar::<f32>()).expect("max")
}

/// Loads `dir` in both implementations and compares features and logits on the same inputs.
fn cross_check(dir: &std::path::Path) {
    let ours = ClipBundle::load(dir, &Device::Cpu, &FreezeSpec::default()).expect("our load");
    let c = &ours.config;
    let bytes = std::fs::read(dir.join("model.safetensors")).expect("weights");
    let vb = candle_nn::VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu).expect("var builder");
    let candle = theirs::ClipModel::new(vb, &their_config(c)).expect("candle-transformers load");

    let (pixels, ids, last) = inputs(c, 3, 7, c.text_config.max_position_embeddings.min(16));
    let img_ours = ours.model.image_features(&pixels).expect("our image features");
    let img_theirs = candle.get_image_features(&pixels).expect("their image features");
    let d = max_abs_diff(&img_ours, &img_theirs);
    assert!(d <= 1e-4 * (1.0 + max_abs(&img_theirs)), "image features differ by {d}");
    let txt_ours = ours.model.text_features(&ids, &last).expect("our text features");
    let txt_theirs = candle.get_text_features(&ids).expect("their text features");
    let d = max_abs_diff(&txt_ours, &txt_theirs);
    assert!(d <= 1e-4 * (1.0 + max_abs(&txt_theirs)), "text features differ by {d}");

    // Every image against every caption, through our per-image choice logits.
    let (_, per_image) = candle.forward(&pixels, &ids).expect("their logits");
    let all: Vec<Vec<u32>> = (0..3).map(|_| (0..7).collect()).collect();
    let choices = Tensor::new(all, &Device::Cpu).expect("choices");
    let logits = ours.model.choice_logits(&pixels, &ids, &last, &choices, None).expect("our logits");
    let d = max_abs_diff(&logits, &per_image);
    assert!(d <= 1e-4 * (1.0 + max_abs(&per_image)), "logits differ by {d}");
    // And the probabilities a user sees.
    let p = |t: &Tensor| t.contiguous().and_then(|t| candle_nn::ops::softmax_last_dim(&t)).expect("softmax");
    assert!(max_abs_diff(&p(&logits), &p(&per_image)) < 1e-5);
}

#[test]
fn the_transformers_tiny_model_scores_as_candle_transformers_scores_it() {
    cross_check(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny_clip"));
}

#[test]
fn a_random_model_of_another_shape_scores_as_candle_transformers_scores_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Width 64 (4 heads of 16), 3 layers, 48 px images in 12 px patches.
    let cfg = ClipConfig::tiny(synth::vocabulary().len() + 3, 64, 3, 48, 12);
    assert_eq!(cfg.text_config.num_attention_heads, 4);
    let tok = serde_json::to_vec(&synth::tiny_tokenizer_json()).expect("tokenizer");
    ClipBundle::write_random(dir.path(), &cfg, tok, ImageProcessorConfig::with_size(48), 3).expect("model");
    cross_check(dir.path());
}
