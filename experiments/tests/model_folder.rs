//! A model folder is checked before anything is done with it, without loading its weights: a broken config,
//! tokenizer, preprocessor or weights file is refused in one line naming the file; a tokenizer whose special ids
//! are not the model's, or that is not the one a CLIP Lab checkpoint was exported with, is refused; exports get
//! the user's normal file mode.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use experiments::data::synth;
use experiments::model::clip::{ClipConfig, FreezeSpec};
use experiments::model::engine::{check_model_folder, ClipBundle};
use experiments::model::preprocess::ImageProcessorConfig;
use serde_json::Value;

fn tiny_config() -> ClipConfig {
    ClipConfig::tiny(synth::vocabulary().len() + 3, 32, 1, 32, 8)
}

/// A freshly exported tiny model in `dir/name`.
fn exported(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let tok = serde_json::to_vec(&synth::tiny_tokenizer_json()).expect("tokenizer");
    ClipBundle::write_random(&out, &tiny_config(), tok, ImageProcessorConfig::with_size(32), 3).expect("model");
    out
}

/// Both ways of opening a folder fail, with the same one-line error; returns it.
fn refused(dir: &Path) -> String {
    let checked = check_model_folder(dir).expect_err("check must refuse").to_string();
    let loaded = ClipBundle::load(dir, &Device::Cpu, &FreezeSpec::default()).expect_err("load must refuse").to_string();
    assert_eq!(checked, loaded, "check_model_folder and load disagree");
    assert!(!checked.contains('\n'), "one line: {checked}");
    checked
}

#[test]
fn a_broken_model_folder_is_refused_from_its_headers_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = exported(tmp.path(), "good");
    assert_eq!(check_model_folder(&good).expect("a good folder passes"), tiny_config());

    let m = exported(tmp.path(), "garbage-config");
    std::fs::write(m.join("config.json"), b"{ this is not json").expect("write");
    let e = refused(&m);
    assert!(e.contains("config.json"), "{e}");

    let m = exported(tmp.path(), "no-preprocessor");
    std::fs::remove_file(m.join("preprocessor_config.json")).expect("rm");
    let e = refused(&m);
    assert!(e.contains("preprocessor_config.json") && e.contains("not found"), "{e}");

    let m = exported(tmp.path(), "truncated");
    let weights = m.join("model.safetensors");
    let len = std::fs::metadata(&weights).expect("meta").len();
    std::fs::OpenOptions::new().write(true).open(&weights).and_then(|f| f.set_len(len / 2)).expect("truncate");
    let e = refused(&m);
    assert!(e.contains("model.safetensors") && e.contains("truncated"), "{e}");

    // One tensor of another shape, in an otherwise complete file.
    let m = exported(tmp.path(), "wrong-shape");
    let weights = m.join("model.safetensors");
    let mut tensors = experiments::model::clip::params::read_safetensors(&weights).expect("read");
    let name = "text_model.encoder.layers.0.mlp.fc1.weight";
    tensors.insert(name.into(), Tensor::zeros((7, 32), candle_core::DType::F32, &Device::Cpu).expect("zeros"));
    candle_core::safetensors::save(&tensors, &weights).expect("save");
    let e = refused(&m);
    assert!(e.contains("model.safetensors") && e.contains(name) && e.contains("shape"), "{e}");
}

/// `json` with the ids of tokens `a` and `b` swapped everywhere the tokenizer states them.
fn swap_tokens(mut json: Value, a: &str, b: &str) -> Value {
    let vocab = json["model"]["vocab"].as_object_mut().expect("vocab");
    let (ia, ib) = (vocab[a].clone(), vocab[b].clone());
    vocab.insert(a.into(), ib.clone());
    vocab.insert(b.into(), ia.clone());
    for t in json["added_tokens"].as_array_mut().expect("added") {
        if t["content"] == a {
            t["id"] = ib.clone();
        } else if t["content"] == b {
            t["id"] = ia.clone();
        }
    }
    if let Some(special) = json["post_processor"]["special_tokens"].as_object_mut() {
        for (name, id) in [(a, &ib), (b, &ia)] {
            if let Some(entry) = special.get_mut(name) {
                entry["ids"] = Value::Array(vec![id.clone()]);
            }
        }
    }
    json
}

#[test]
fn a_tokenizer_with_the_models_size_but_other_ids_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Same vocabulary size, start and end of text swapped: the config's bos/eos ids give it away.
    let m = exported(tmp.path(), "swapped-specials");
    let swapped = swap_tokens(synth::tiny_tokenizer_json(), "<|startoftext|>", "<|endoftext|>");
    std::fs::write(m.join("tokenizer.json"), serde_json::to_vec(&swapped).expect("json")).expect("write");
    std::fs::remove_file(m.join("cliplab.json")).expect("not an export of ours: only the ids can tell");
    let e = refused(&m);
    assert!(e.contains("tokenizer.json") && e.contains("eos_token_id"), "{e}");

    // Two ordinary words swapped: only the hash CLIP Lab recorded at export can tell.
    let words = synth::vocabulary();
    let swapped = swap_tokens(synth::tiny_tokenizer_json(), &words[0], &words[1]);
    let bytes = serde_json::to_vec(&swapped).expect("json");
    let m = exported(tmp.path(), "swapped-words");
    let prov: Value = serde_json::from_slice(&std::fs::read(m.join("cliplab.json")).expect("read")).expect("json");
    assert_eq!(prov["tokenizer_sha256"].as_str().map(str::len), Some(64), "the export records the tokenizer's hash");
    std::fs::write(m.join("tokenizer.json"), &bytes).expect("write");
    let e = refused(&m);
    assert!(e.contains("tokenizer.json") && e.contains("exported with"), "{e}");
    // The same tokenizer in a folder that CLIP Lab did not export is taken as it is.
    std::fs::remove_file(m.join("cliplab.json")).expect("rm");
    check_model_folder(&m).expect("nothing to check it against");
}

#[cfg(unix)]
#[test]
fn exported_files_get_the_users_normal_mode() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let probe = tmp.path().join("probe");
    std::fs::write(&probe, b"x").expect("probe");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    let want = mode(&probe);
    let m = exported(tmp.path(), "model");
    for f in ["model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json", "cliplab.json"] {
        assert_eq!(mode(&m.join(f)), want, "{f}: mode {:o}, want {want:o} (0666 & !umask)", mode(&m.join(f)));
    }
}
