//! The CLIP engine end to end on a tiny random model and generated images: gradients reach every parameter,
//! freezing works, the loss falls, scores are proper distributions that do not depend on batching, and an
//! exported checkpoint reloads to the same scores.

use std::sync::Arc;

use candle_core::Device;
use experiments::model::clip::{ClipConfig, FreezeSpec, Param};
use experiments::model::engine::{ClipBundle, McqSample, Precision, TrainConfig};
use experiments::events::{Event, NullObserver, Phase, Recorder};
use experiments::model::optim::AdamConfig;
use experiments::model::preprocess::ImageProcessorConfig;
use experiments::data::synth;

fn tiny_config() -> ClipConfig {
    ClipConfig::tiny(synth::vocabulary().len() + 3, 32, 2, 32, 8)
}

fn tokenizer_bytes() -> Vec<u8> {
    serde_json::to_vec(&synth::tiny_tokenizer_json()).expect("tokenizer json")
}

fn bundle(seed: u64, freeze: &FreezeSpec) -> ClipBundle {
    ClipBundle::random(&tiny_config(), tokenizer_bytes(), ImageProcessorConfig::with_size(32), seed, freeze, &Device::Cpu)
        .expect("tiny model")
}

fn samples(b: &ClipBundle, n: usize, seed: u64) -> Vec<McqSample> {
    synth::caption_contest(n, 5, 1, 32, seed)
        .into_iter()
        .map(|s| {
            let px = b.processor.preprocess(&image::DynamicImage::ImageRgb8(s.image)).expect("preprocess");
            McqSample::new(Arc::new(px), s.caption_choices, s.label).expect("sample")
        })
        .collect()
}

fn abs_sum(t: &candle_core::Tensor) -> f32 {
    t.abs().and_then(|t| t.sum_all()).and_then(|t| t.to_scalar::<f32>()).expect("sum")
}

#[test]
fn every_trainable_tensor_receives_a_nonzero_gradient() {
    let b = bundle(1, &FreezeSpec::default());
    let data = samples(&b, 4, 1);
    let refs: Vec<&McqSample> = data.iter().collect();
    let logits = b.logits(&refs).expect("logits");
    let labels = candle_core::Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).expect("labels");
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).expect("loss");
    let grads = loss.backward().expect("backward");
    let named = b.params.named_vars();
    // With nothing frozen every tensor of the checkpoint is trainable.
    assert_eq!(named.len(), b.params.iter().count());
    for must in ["logit_scale", "vision_model.embeddings.class_embedding", "vision_model.pre_layrnorm.weight",
                 "text_model.encoder.layers.0.layer_norm1.weight", "text_model.embeddings.token_embedding.weight"] {
        assert!(named.iter().any(|(n, _)| n == must), "{must} is not trainable");
    }
    let mut without = Vec::new();
    for (name, var) in &named {
        match grads.get(var) {
            Some(g) if abs_sum(g) > 0.0 => {}
            _ => without.push(name.clone()),
        }
    }
    assert!(without.is_empty(), "no gradient for: {without:?}");
}

#[test]
fn frozen_towers_compute_no_gradients_and_do_not_change() {
    let freeze = FreezeSpec { vision: true, ..Default::default() };
    let mut b = bundle(2, &freeze);
    let data = samples(&b, 4, 2);
    assert!(b.params.named_vars().iter().all(|(n, _)| !n.starts_with("vision_model") && !n.starts_with("visual_projection")));
    assert!(matches!(b.params.get("vision_model.encoder.layers.0.mlp.fc1.weight"), Some(Param::Frozen(_))));
    let cfg = TrainConfig { epochs: 1, batch_size: 4, optimizer: AdamConfig::adam(1e-2), ..Default::default() };
    assert_moved(&mut b, &data, &cfg, &["vision_model.encoder.layers.1.self_attn.q_proj.weight", "visual_projection.weight"], &[
        "text_model.encoder.layers.1.self_attn.q_proj.weight",
        "text_projection.weight",
    ]);

    // Last-N-layers freezing: layer 0 and embeddings stay, layer 1 moves.
    let freeze = FreezeSpec { train_last_layers: Some(1), ..Default::default() };
    let mut b = bundle(2, &freeze);
    assert_moved(&mut b, &data, &cfg, &["text_model.encoder.layers.0.mlp.fc1.weight", "vision_model.embeddings.patch_embedding.weight"], &[
        "text_model.encoder.layers.1.mlp.fc1.weight",
        "vision_model.encoder.layers.1.mlp.fc1.weight",
    ]);
}

/// Trains `b` one epoch on `data`: the tensors named in `still` do not change, those in `moved` do.
fn assert_moved(b: &mut ClipBundle, data: &[McqSample], cfg: &TrainConfig, still: &[&str], moved: &[&str]) {
    let before = b.params.snapshot().expect("snapshot");
    b.train(data, None, cfg, &mut NullObserver).expect("train");
    let after = b.params.snapshot().expect("snapshot");
    let diff = |n: &str| abs_sum(&(&before[n] - &after[n]).expect("sub"));
    for n in still {
        assert_eq!(diff(n), 0.0, "{n} changed");
    }
    for n in moved {
        assert!(diff(n) > 0.0, "{n} did not change");
    }
}

#[test]
fn fine_tuning_lowers_the_loss_and_is_deterministic() {
    let run = || {
        let mut b = bundle(3, &FreezeSpec::default());
        let data = samples(&b, 8, 3);
        let optimizer = AdamConfig::adam(1e-3);
        let cfg = TrainConfig { epochs: 12, batch_size: 4, optimizer, seed: 7, eval_batch_size: 8, precision: Precision::F32 };
        let mut rec = Recorder::default();
        let report = b.train(&data, Some(&data[..4]), &cfg, &mut rec).expect("train");
        (report, rec)
    };
    let (report, rec) = run();
    assert_eq!(report.step_losses.len(), 24);
    let first = report.epoch_losses[0];
    let last = *report.epoch_losses.last().expect("epochs");
    assert!(last < 0.5 * first, "loss did not fall enough: {first} -> {last}");
    assert!(report.heldout_losses.iter().all(Option::is_some));
    // Events: one step event per step, one epoch event per epoch, progress reaching the total.
    let steps = rec.events.iter().filter(|e| matches!(e, Event::Step { .. })).count();
    let epochs = rec.events.iter().filter(|e| matches!(e, Event::EpochEnded { .. })).count();
    assert_eq!((steps, epochs), (24, 12));
    assert!(rec.events.iter().any(|e| matches!(e, Event::Progress { phase: Phase::Train, done: 24, total: 24, .. })));
    let (again, _) = run();
    assert_eq!(report, again, "same seed must give the same losses on CPU");
}

/// Mixed precision as the engine runs it (on the CPU here, where the same composite ops run as on a GPU):
/// bf16/f16 logits close to the f32 ones, every trainable tensor gets an f32 gradient through the casts, and a
/// training step keeps the parameters f32 and moves them.
#[test]
fn half_precision_computes_close_to_f32_with_f32_master_weights() {
    let mut b = bundle(6, &FreezeSpec::default());
    let data = samples(&b, 4, 6);
    let refs: Vec<&McqSample> = data.iter().collect();
    let want = b.logits(&refs).expect("f32 logits").to_vec2::<f32>().expect("vec");
    let scale = want.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    for precision in [Precision::Bf16, Precision::F16] {
        b.set_precision(precision);
        let logits = b.logits(&refs).expect("half logits");
        assert_eq!(logits.dtype(), candle_core::DType::F32, "{precision}: the head computes in f32");
        let got = logits.to_vec2::<f32>().expect("vec");
        let diff = got.iter().flatten().zip(want.iter().flatten()).fold(0f32, |m, (a, c)| m.max((a - c).abs()));
        assert!(diff < 0.05 * scale.max(1.0), "{precision}: logits differ by {diff} (largest {scale})");
        let labels = candle_core::Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu).expect("labels");
        let grads = candle_nn::loss::cross_entropy(&logits, &labels).expect("loss").backward().expect("backward");
        for (name, var) in &b.params.named_vars() {
            let g = grads.get(var).unwrap_or_else(|| panic!("{precision}: no gradient for {name}"));
            assert_eq!(g.dtype(), candle_core::DType::F32, "{precision}: {name}'s gradient");
            assert!(abs_sum(g) > 0.0, "{precision}: zero gradient for {name}");
        }
    }
    let cfg = TrainConfig { epochs: 1, batch_size: 4, optimizer: AdamConfig::adam(1e-3), ..Default::default() };
    b.set_precision(Precision::Bf16);
    let before = b.params.snapshot().expect("snapshot");
    let report = b.train(&data, None, &cfg, &mut NullObserver).expect("bf16 training");
    assert!(report.step_losses.iter().all(|l| l.is_finite()));
    for (name, var) in &b.params.named_vars() {
        assert_eq!(var.dtype(), candle_core::DType::F32, "{name} is no longer f32");
    }
    let after = b.params.snapshot().expect("snapshot");
    let moved = after.iter().filter(|(n, t)| abs_sum(&(*t - &before[n.as_str()]).expect("sub")) > 0.0).count();
    assert_eq!(moved, after.len(), "every trainable tensor moves in a bf16 step");
}

#[test]
fn scores_are_distributions_independent_of_batching() {
    let b = bundle(4, &FreezeSpec::default());
    let mut data = samples(&b, 6, 4);
    // A ragged sample: 3 choices, and a long caption to make the batch's padding longer.
    data[2].choices.truncate(3);
    data[2].label = data[2].label.min(2);
    data[4].choices[0] = "a drawing of a red circle and a blue square and a green triangle on a light background".into();
    let together = b.score(&data, 6, Phase::ScoreBefore, &mut NullObserver).expect("score");
    for (i, s) in together.iter().enumerate() {
        assert_eq!(s.probs.len(), data[i].choices.len());
        let total: f32 = s.probs.iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "sample {i} probabilities sum to {total}");
        let alone = b.score(&data[i..=i], 1, Phase::ScoreBefore, &mut NullObserver).expect("score");
        for (p, q) in s.probs.iter().zip(&alone[0].probs) {
            assert!((p - q).abs() < 1e-5, "sample {i}: batched {p} vs alone {q}");
        }
        assert_eq!(s.label_prob, s.probs[s.label]);
    }
}

#[test]
fn exported_checkpoints_reload_to_the_same_scores() {
    let mut b = bundle(5, &FreezeSpec::default());
    let data = samples(&b, 4, 5);
    let cfg = TrainConfig { epochs: 2, batch_size: 2, optimizer: AdamConfig::adamw(1e-3, 0.01), ..Default::default() };
    b.train(&data, None, &cfg, &mut NullObserver).expect("train");
    let scores = b.score(&data, 4, Phase::ScoreAfter, &mut NullObserver).expect("score");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ckpt");
    b.export(&out, &serde_json::json!({"seed": 42})).expect("export");
    for f in ["model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json", "cliplab.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let tensors = experiments::model::clip::params::read_safetensors(&out.join("model.safetensors")).expect("read");
    assert!(tensors.contains_key("logit_scale") && tensors.contains_key("vision_model.embeddings.class_embedding"));
    assert_eq!(tensors.len(), b.params.iter().count());
    let back = ClipBundle::load(&out, &Device::Cpu, &FreezeSpec::default()).expect("reload");
    let again = back.score(&data, 4, Phase::ScoreAfter, &mut NullObserver).expect("score");
    assert_eq!(scores, again, "reloaded checkpoint scores differently");
    // Exporting over a non-empty folder is refused and leaves it intact.
    let err = b.export(&out, &serde_json::json!({})).expect_err("must refuse");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(out.join("model.safetensors").is_file());
}

/// A new folder `to` with the checkpoint files of `from` but `skip`.
fn copy_without(from: &std::path::Path, to: &std::path::Path, skip: &str) -> std::path::PathBuf {
    std::fs::create_dir(to).expect("mkdir");
    for f in ["model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json"] {
        if f != skip {
            std::fs::copy(from.join(f), to.join(f)).expect("copy");
        }
    }
    to.to_path_buf()
}

#[test]
fn loading_errors_name_the_file_and_the_problem() {
    let b = bundle(6, &FreezeSpec::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good");
    b.export(&good, &serde_json::json!({})).expect("export");
    let load = |p: &std::path::Path| ClipBundle::load(p, &Device::Cpu, &FreezeSpec::default()).expect_err("must fail").to_string();

    // Missing weights.
    let missing = copy_without(&good, &dir.path().join("missing"), "model.safetensors");
    let e = load(&missing);
    assert!(e.contains("model.safetensors") && e.contains("not found"), "{e}");

    // Wrong shapes: a config that says the model is wider than the weights.
    let wrong = copy_without(&good, &dir.path().join("wrong"), "config.json");
    let mut cfg = tiny_config();
    cfg.text_config.intermediate_size = 64;
    std::fs::write(wrong.join("config.json"), cfg.to_hf_json().to_string()).expect("write");
    let e = load(&wrong);
    assert!(e.contains("model.safetensors") && e.contains("text_model.encoder.layers.0.mlp.fc1.weight") && e.contains("shape"), "{e}");

    // A tokenizer whose vocabulary does not fit the embedding.
    let small = copy_without(&good, &dir.path().join("small"), "config.json");
    let mut cfg = tiny_config();
    cfg.text_config.vocab_size = 10;
    std::fs::write(small.join("config.json"), cfg.to_hf_json().to_string()).expect("write");
    let e = load(&small);
    assert!(e.contains("tokenizer.json") && e.contains("vocabulary"), "{e}");

    // Corrupt weights.
    std::fs::write(wrong.join("model.safetensors"), b"garbage").expect("write");
    std::fs::copy(good.join("config.json"), wrong.join("config.json")).expect("copy");
    let e = load(&wrong);
    assert!(e.contains("model.safetensors") && e.contains("safetensors"), "{e}");

    // An image that cannot be decoded.
    let img = dir.path().join("broken.png");
    std::fs::write(&img, b"not a png").expect("write");
    let e = b.load_image(&img).expect_err("must fail").to_string();
    assert!(e.contains("broken.png"), "{e}");
}

/// Logits, loss, gradients and one Adam step on the tiny model in `tests/reference/tiny_clip` (written by
/// `cargo run -p experiments --example write_reference_model`) equal what
/// PyTorch + transformers compute on the same weights and inputs (`tests/reference/clip_reference.py`, whose
/// output is `clip_reference.json`). Loading that folder in `transformers.CLIPModel.from_pretrained` is also
/// how we checked that CLIP Lab's exports load in Hugging Face.
#[test]
fn matches_pytorch_reference() {
    use candle_core::Tensor;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("clip_reference.json")).expect("read")).expect("json");
    let b = ClipBundle::load(&root.join("tiny_clip"), &Device::Cpu, &FreezeSpec::default()).expect("load");
    let f32s = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
    };
    let pixels = Tensor::from_vec(f32s(&r["pixels"]), (2, 3, 32, 32), &Device::Cpu).expect("pixels");
    let rows: Vec<Vec<u32>> = r["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|row| row.as_array().expect("row").iter().map(|x| x.as_u64().expect("id") as u32).collect())
        .collect();
    let eos = b.config.text_config.eos_token_id;
    let last: Vec<usize> = rows.iter().map(|row| row.iter().position(|&t| t == eos).expect("eos")).collect();
    let seq = rows[0].len();
    let ids = Tensor::from_vec(rows.concat(), (rows.len(), seq), &Device::Cpu).expect("ids");
    let choices = Tensor::new(&[[0u32, 1, 2, 3, 4], [5, 6, 7, 8, 9]], &Device::Cpu).expect("choices");
    let labels = Tensor::new(&[1u32, 3], &Device::Cpu).expect("labels");
    let forward = |b: &ClipBundle| -> (Tensor, Tensor) {
        let logits = b.model.choice_logits(&pixels, &ids, &last, &choices, None).expect("logits");
        let loss = candle_nn::loss::cross_entropy(&logits, &labels).expect("loss");
        (logits, loss)
    };
    let close = |ours: f32, theirs: f32, tol: f32, what: &str| {
        assert!((ours - theirs).abs() <= tol * (1.0 + theirs.abs()), "{what}: ours {ours} vs PyTorch {theirs}");
    };

    let (logits, loss) = forward(&b);
    let ours = logits.to_vec2::<f32>().expect("vec");
    for (i, row) in r["logits"].as_array().expect("logits").iter().enumerate() {
        for (j, want) in f32s(row).into_iter().enumerate() {
            close(ours[i][j], want, 1e-4, &format!("logit [{i},{j}]"));
        }
    }
    close(loss.to_scalar::<f32>().expect("loss"), r["loss"].as_f64().expect("loss") as f32, 1e-5, "loss");

    let grads = loss.backward().expect("backward");
    let vars: std::collections::HashMap<String, candle_core::Var> = b.params.named_vars().into_iter().collect();
    for (name, want) in r["grads"].as_object().expect("grads") {
        let g = grads.get(&vars[name]).unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g.sqr().and_then(|t| t.sum_all()).and_then(|t| t.sqrt()).and_then(|t| t.to_scalar::<f32>()).expect("norm");
        close(norm, want["norm"].as_f64().expect("norm") as f32, 1e-3, &format!("|grad {name}|"));
        let first = g.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("grad");
        let scale = want["norm"].as_f64().expect("norm") as f32;
        for (k, w) in f32s(&want["first"]).into_iter().enumerate() {
            assert!((first[k] - w).abs() <= 1e-3 * scale + 1e-7, "grad {name}[{k}]: ours {} vs PyTorch {w}", first[k]);
        }
    }

    let mut opt = experiments::model::optim::FusedAdam::new(b.params.vars(), AdamConfig::adam(1e-3)).expect("adam");
    opt.step(&grads).expect("step");
    let (_, loss_after) = forward(&b);
    close(loss_after.to_scalar::<f32>().expect("loss"), r["loss_after_adam_step"].as_f64().expect("loss") as f32, 1e-3, "loss after one Adam step");
    for (name, want) in r["params_after_adam_step"].as_object().expect("params") {
        let now = vars[name].as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("param");
        for (k, w) in f32s(want).into_iter().enumerate() {
            assert!((now[k] - w).abs() < 2e-6, "{name}[{k}] after a step: ours {} vs PyTorch {w}", now[k]);
        }
    }
}

/// Scoring records no autograd graph (so its activations are freed as it goes) and scores exactly as the tracked
/// forward pass does (score() with packed weights: to float rounding), in f32 and in half precision; training's
/// logits still track their ops.
#[test]
fn scoring_records_no_graph_and_gives_the_same_logits() {
    let mut b = bundle(7, &FreezeSpec::default());
    let data = samples(&b, 3, 7);
    let refs: Vec<&McqSample> = data.iter().collect();
    for precision in [Precision::F32, Precision::Bf16] {
        b.set_precision(precision);
        let tracked = b.logits(&refs).expect("logits");
        assert!(tracked.track_op(), "{precision}: training's logits must record the graph");
        let scored = b.score_logits(&refs).expect("score logits");
        assert!(!scored.track_op(), "{precision}: scoring's logits record a graph");
        let probs = experiments::model::clip::ops::softmax_last_dim(&scored).expect("softmax");
        assert!(!probs.track_op(), "{precision}: scoring's probabilities record a graph");
        let want = tracked.to_vec2::<f32>().expect("vec");
        assert_eq!(scored.to_vec2::<f32>().expect("vec"), want, "{precision}: scoring changed the logits");
        // score() computes with the weights packed once (f32 on the CPU with OpenBLAS): the same products summed in
        // another order, so equal to float rounding rather than to the bit.
        let scores = b.score(&data, data.len(), Phase::ScoreBefore, &mut NullObserver).expect("score");
        for (s, w) in scores.iter().zip(&want) {
            assert_eq!(s.logits.len(), w.len());
            for (got, want) in s.logits.iter().zip(w) {
                assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "{precision}: score() gives {got}, the tracked logits {want}");
            }
        }
    }
}

/// `choice_logits` of `data` (each image against its own five captions) as a function of the model computing them.
fn choice_logits_of(b: &ClipBundle, data: &[McqSample]) -> impl Fn(&experiments::model::clip::ClipModel) -> Vec<Vec<f32>> {
    let captions: Vec<&str> = data.iter().flat_map(|s| s.choices.iter().map(String::as_str)).collect();
    let tokens = b.tokenizer.batch(&captions, &Device::Cpu).expect("tokens");
    let pixels: Vec<Vec<f32>> = data.iter().map(|s| s.pixels.as_ref().clone()).collect();
    let pixels = b.processor.batch_tensor(&pixels, &Device::Cpu).expect("pixels");
    let choices: Vec<u32> = (0..captions.len() as u32).collect();
    let choices = candle_core::Tensor::from_vec(choices, (data.len(), 5), &Device::Cpu).expect("choices");
    move |m| {
        let l = m.choice_logits(&pixels, &tokens.ids, &tokens.last, &choices, None).expect("logits");
        l.to_vec2::<f32>().expect("vec")
    }
}

/// The scoring view of the model shares the parameters' storage (no weight copies): made before a training step,
/// it computes what the trained model computes after it.
#[test]
fn the_detached_model_shares_the_parameters() {
    let mut b = bundle(8, &FreezeSpec::default());
    let data = samples(&b, 4, 8);
    let refs: Vec<&McqSample> = data.iter().collect();
    let logits = choice_logits_of(&b, &data);
    let view = b.model.detached().expect("detached");
    let before = logits(&view);
    assert_eq!(before, b.logits(&refs).expect("logits").to_vec2::<f32>().expect("vec"));
    let cfg = TrainConfig { epochs: 1, batch_size: 4, optimizer: AdamConfig::adam(1e-2), ..Default::default() };
    b.train(&data, None, &cfg, &mut NullObserver).expect("train");
    let after = logits(&view);
    assert_ne!(after, before, "the training step changed nothing");
    assert_eq!(after, logits(&b.model), "the detached view did not see the trained weights");
}

/// The packed scoring model (`ClipModel::packed`, what `ClipBundle::score` scores with) packs every linear layer
/// where OpenBLAS's kernel is available (none elsewhere) and computes the same logits as the model.
#[test]
fn the_packed_model_scores_as_the_model() {
    let b = bundle(9, &FreezeSpec::default());
    let data = samples(&b, 4, 9);
    let logits = choice_logits_of(&b, &data);
    let packed = b.model.packed().expect("packed");
    let layers = 6 * (tiny_config().text_config.num_hidden_layers + tiny_config().vision_config.num_hidden_layers) + 2;
    let want = if experiments::model::blas::packed_available() { layers } else { 0 };
    assert_eq!(packed.packed_layers(), want, "linear layers packed");
    assert_eq!(b.model.packed_layers(), 0, "the model itself holds no packed weight");
    let (got, want) = (logits(&packed).concat(), logits(&b.model).concat());
    assert!(got.iter().zip(&want).all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs())), "packed weights changed the logits");
}
