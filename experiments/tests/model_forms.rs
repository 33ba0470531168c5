//! The older forms of a model folder that hub repositories still ship: `pytorch_model.bin` instead of
//! `model.safetensors` (the tiny reference CLIP's weights in torch.save's zip format, written by
//! `tests/reference/make_pytorch_bin.py`), and `vocab.json` + `merges.txt` instead of `tokenizer.json`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use experiments::model::clip::{ClipConfig, FreezeSpec};
use experiments::model::engine::{self, ClipBundle};
use experiments::model::preprocess::ImageProcessorConfig;

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

#[test]
fn a_pytorch_checkpoint_loads_to_the_same_weights_as_its_safetensors() {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["config.json", "preprocessor_config.json", "tokenizer.json"] {
        std::fs::copy(reference().join("tiny_clip").join(f), dir.path().join(f)).expect(f);
    }
    std::fs::copy(reference().join("tiny_clip_pytorch_model.bin"), dir.path().join("pytorch_model.bin")).expect("bin");
    engine::check_model_folder(dir.path()).expect("checked");
    let bin = ClipBundle::load(dir.path(), &Device::Cpu, &FreezeSpec::default()).expect("load .bin");
    let st = ClipBundle::load(&reference().join("tiny_clip"), &Device::Cpu, &FreezeSpec::default()).expect("load");
    let (a, b) = (bin.params.snapshot().expect("snapshot"), st.params.snapshot().expect("snapshot"));
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let u = &b[name];
        let diff = (t - u).and_then(|d| d.abs()).and_then(|d| d.max_all()).and_then(|d| d.to_scalar::<f32>()).expect(name);
        assert_eq!(diff, 0.0, "{name}");
    }

    // A checkpoint of another shape is refused naming the tensor.
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).expect("config")).expect("json");
    cfg["projection_dim"] = serde_json::json!(7);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).expect("write");
    let e = engine::check_model_folder(dir.path()).expect_err("shape").to_string();
    assert!(e.contains("pytorch_model.bin") && e.contains("projection"), "{e}");
}

#[test]
fn a_folder_with_vocab_and_merges_instead_of_tokenizer_json_loads_and_tokenizes_as_clip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = dir.path().join("bpe");
    std::fs::create_dir(&files).expect("mkdir");
    let vocab = serde_json::json!({ "a": 0, "c": 1, "t": 2, "a</w>": 3, "t</w>": 4, "ca": 5, "cat</w>": 6, "!</w>": 7,
                                    "<|startoftext|>": 8, "<|endoftext|>": 9 });
    std::fs::write(files.join("vocab.json"), vocab.to_string()).expect("vocab");
    std::fs::write(files.join("merges.txt"), "#version: 0.2\nc a\nca t</w>\n").expect("merges");
    let tokenizer_json =
        experiments::model::bpe::tokenizer_json_from_vocab_merges(&files.join("vocab.json"), &files.join("merges.txt"))
            .expect("tokenizer");
    let model = dir.path().join("model");
    let cfg = ClipConfig::tiny(10, 32, 1, 32, 8);
    ClipBundle::write_random(&model, &cfg, tokenizer_json, ImageProcessorConfig::with_size(32), 3).expect("model");
    // The folder as an older repository has it: no tokenizer.json (and no CLIP Lab provenance).
    std::fs::remove_file(model.join("tokenizer.json")).expect("rm");
    std::fs::remove_file(model.join("cliplab.json")).expect("rm");
    for f in ["vocab.json", "merges.txt"] {
        std::fs::copy(files.join(f), model.join(f)).expect(f);
    }
    let bundle = ClipBundle::load(&model, &Device::Cpu, &FreezeSpec::default()).expect("load");
    assert_eq!(bundle.tokenizer.encode("A  cat!").expect("encode"), vec![8, 3, 6, 7, 9]);
    // Without merges.txt the folder is incomplete, and the message says what a folder holds.
    std::fs::remove_file(model.join("merges.txt")).expect("rm");
    let e = engine::check_model_folder(&model).expect_err("no tokenizer").to_string();
    assert!(e.contains("tokenizer.json") && e.contains("vocab.json + merges.txt"), "{e}");
}
