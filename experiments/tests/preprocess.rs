//! `experiments::model::preprocess` against Hugging Face transformers' slow/PIL `CLIPImageProcessor`.
//!
//! The reference values in `tests/reference/preprocess_ref.json` come from
//! `experiments/tests/reference/preprocess_ref.py` (run `python3 experiments/tests/reference/preprocess_ref.py`
//! to regenerate them; the versions used are recorded in the JSON). The script and this file build the same
//! test images from the same integer formulas (`px_*` below); keep them in sync.
//!
//! Checked per case: the image after RGB conversion and after PIL's resize (captured inside the processor call)
//! bit-exactly, and the final `pixel_values` within 1e-5 (and bit-exactly via a hash of the float32 bytes).

use std::io::Cursor;
use std::path::Path;

use experiments::model::preprocess::{AlphaMode, ImageProcessor, ImageProcessorConfig};
use image::{DynamicImage, ImageBuffer, Luma, LumaA, Pixel, Rgb, Rgba};
use serde_json::Value;

const REF: &str = include_str!("reference/preprocess_ref.json");

fn reference() -> Value {
    serde_json::from_str(REF).expect("preprocess_ref.json is valid JSON")
}

// --- Test images: KEEP IN SYNC with preprocess_ref.py -----------------------------------------------------------

fn px_rgb(x: u32, y: u32, c: u32) -> u8 {
    let base = (x * 7 + y * 13 + c * 50) % 256;
    (if (x / 4 + y / 3 + c).is_multiple_of(2) {
        255 - base
    } else {
        base
    }) as u8
}

fn px_alpha(x: u32, y: u32) -> u8 {
    if y < 10 {
        0
    } else if y >= 80 {
        255
    } else {
        ((x * 5 + y * 3) % 256) as u8
    }
}

fn px_gray(x: u32, y: u32) -> u8 {
    ((x * x + y * 5 + ((x * y) % 7) * 20) % 256) as u8
}

fn px_gray16(x: u32, y: u32) -> u16 {
    if (x + y).is_multiple_of(3) {
        ((x * 13 + y * 7) % 256) as u16
    } else {
        ((x * 997 + y * 1999) % 65536) as u16
    }
}

fn px_rgb16(x: u32, y: u32, c: u32) -> u16 {
    ((x * 1201 + y * 2503 + c * 7001) % 65536) as u16
}

fn px_alpha16(x: u32, y: u32) -> u16 {
    ((x * 3001 + y * 4999) % 65536) as u16
}

/// A `w`×`h` RGB image of channel formula `px` (`px_rgb` or `px_rgb16`).
fn rgb_of<T>(w: u32, h: u32, px: fn(u32, u32, u32) -> T) -> ImageBuffer<Rgb<T>, Vec<T>>
where
    Rgb<T>: Pixel<Subpixel = T>,
{
    ImageBuffer::from_fn(w, h, |x, y| Rgb([px(x, y, 0), px(x, y, 1), px(x, y, 2)]))
}

/// The same with the alpha formula `alpha` (`px_alpha` or `px_alpha16`).
fn rgba_of<T>(w: u32, h: u32, px: fn(u32, u32, u32) -> T, alpha: fn(u32, u32) -> T) -> ImageBuffer<Rgba<T>, Vec<T>>
where
    Rgba<T>: Pixel<Subpixel = T>,
{
    ImageBuffer::from_fn(w, h, |x, y| Rgba([px(x, y, 0), px(x, y, 1), px(x, y, 2), alpha(x, y)]))
}

fn rgb(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(rgb_of(w, h, px_rgb))
}

fn make_image(name: &str) -> DynamicImage {
    match name {
        "rgb61x47" => rgb(61, 47),
        "rgb15x10" => rgb(15, 10),
        "rgb300x250" => rgb(300, 250),
        "rgb250x300" => rgb(250, 300),
        "rgb30x100" => rgb(30, 100),
        "rgba40x90" => DynamicImage::ImageRgba8(rgba_of(40, 90, px_rgb, px_alpha)),
        "gray33x33" => {
            DynamicImage::ImageLuma8(ImageBuffer::from_fn(33, 33, |x, y| Luma([px_gray(x, y)])))
        }
        other => panic!("unknown test image {other}"),
    }
}

fn make_png16(name: &str) -> DynamicImage {
    match name {
        "gray16_20x17" => {
            DynamicImage::ImageLuma16(ImageBuffer::from_fn(20, 17, |x, y| Luma([px_gray16(x, y)])))
        }
        "gray_alpha16_9x5" => DynamicImage::ImageLumaA16(ImageBuffer::from_fn(9, 5, |x, y| {
            LumaA([px_gray16(x, y), px_alpha16(x, y)])
        })),
        "rgb16_19x13" => DynamicImage::ImageRgb16(rgb_of(19, 13, px_rgb16)),
        "rgba16_11x7" => DynamicImage::ImageRgba16(rgba_of(11, 7, px_rgb16, px_alpha16)),
        other => panic!("unknown 16-bit test image {other}"),
    }
}

// --- Helpers ----------------------------------------------------------------------------------------------------

fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn shape(entry: &Value) -> Vec<usize> {
    entry["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|v| v.as_u64().expect("dim") as usize)
        .collect()
}

/// Compares u8 HWC data with a reference entry: shape, hash, and whole data or samples.
fn check_u8(what: &str, got: &[u8], got_shape: &[usize], entry: &Value) {
    assert_eq!(got_shape, shape(entry).as_slice(), "{what}: shape");
    if let Some(data) = entry["data"].as_array() {
        let want: Vec<u8> = data.iter().map(|v| v.as_u64().expect("u8") as u8).collect();
        if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
            let diffs = (0..want.len()).filter(|&i| got[i] != want[i]).count();
            panic!(
                "{what}: {diffs} of {} values differ, first at flat index {i}: got {}, want {}",
                want.len(),
                got[i],
                want[i]
            );
        }
    }
    if let Some(samples) = entry["samples"].as_array() {
        for s in samples {
            let i = s[0].as_u64().expect("index") as usize;
            let want = s[1].as_u64().expect("value") as u8;
            assert_eq!(got[i], want, "{what}: sample at flat index {i}");
        }
    }
    assert_eq!(
        fnv1a64(got.iter().copied()),
        entry["fnv1a64"].as_str().expect("hash"),
        "{what}: hash"
    );
}

fn case_processor(case: &Value) -> ImageProcessor {
    // The processor's own to_dict() (the new form transformers writes) as a preprocessor_config.json ...
    let cfg: ImageProcessorConfig =
        serde_json::from_value(case["to_dict"].clone()).expect("to_dict parses");
    // ... equals the kwargs the case was built from, read as a (possibly old-form) config.
    let from_kwargs = ImageProcessorConfig::from_value(&case["kwargs"]).expect("kwargs parse");
    assert_eq!(cfg, from_kwargs, "{}: to_dict vs kwargs", case["name"]);
    let alpha = match case["alpha"].as_str().expect("alpha") {
        "composite" => AlphaMode::CompositeOnWhite,
        "drop" => AlphaMode::Drop,
        other => panic!("unknown alpha mode {other}"),
    };
    ImageProcessor::new(cfg).with_alpha_mode(alpha)
}

fn cases() -> Vec<Value> {
    reference()["cases"].as_array().expect("cases").clone()
}

/// A case's name, its processor and its test image.
fn case_setup(case: &Value) -> (&str, ImageProcessor, DynamicImage) {
    (case["name"].as_str().expect("name"), case_processor(case), make_image(case["image"].as_str().expect("image")))
}

// --- Tests -----------------------------------------------------------------------------------------------------

#[test]
fn rgb_conversion_matches_transformers() {
    for case in cases() {
        let (name, p, img) = case_setup(&case);
        let conv = experiments::model::preprocess::convert_rgb(&img, p.alpha_mode()).expect("convert");
        let s = [conv.height() as usize, conv.width() as usize, 3];
        check_u8(
            &format!("{name} converted"),
            conv.as_raw(),
            &s,
            &case["converted"],
        );
    }
}

#[test]
fn resized_u8_is_bit_exact_with_pil() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in cases() {
        let Some(entry) = case.get("resized") else {
            continue;
        };
        let (name, p, img) = case_setup(&case);
        let resized = p.resized(&img).expect("resize");
        let s = [resized.height() as usize, resized.width() as usize, 3];
        let outcome = std::panic::catch_unwind(|| {
            check_u8(&format!("{name} resized"), resized.as_raw(), &s, entry)
        });
        if outcome.is_err() {
            failures.push(name.to_string());
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "resize differs from PIL in {failures:?}"
    );
    assert!(checked >= 15, "only {checked} resize cases");
}

#[test]
fn pixel_values_match_transformers() {
    for case in cases() {
        let (name, p, img) = case_setup(&case);
        let got = p.preprocess(&img).expect("preprocess");
        let entry = &case["output"];

        let want_shape = shape(entry);
        let (h, w) = p
            .config()
            .output_size_for(img.height() as usize, img.width() as usize);
        assert_eq!(vec![3, h, w], want_shape, "{name}: output shape");
        assert_eq!(got.len(), 3 * h * w, "{name}: output length");

        // 1e-5, relative for the large values of the cases without rescale (the float32 step there is ~3e-5).
        let close = |i: usize, want: f64| {
            let g = f64::from(got[i]);
            let tol = 1e-5 * want.abs().max(1.0);
            assert!(
                (g - want).abs() <= tol,
                "{name}: value at flat index {i}: got {g}, want {want}"
            );
        };
        if let Some(data) = entry["data"].as_array() {
            assert_eq!(data.len(), got.len(), "{name}: data length");
            for (i, v) in data.iter().enumerate() {
                close(i, v.as_f64().expect("float"));
            }
        }
        if let Some(samples) = entry["samples"].as_array() {
            for s in samples {
                close(
                    s[0].as_u64().expect("index") as usize,
                    s[1].as_f64().expect("float"),
                );
            }
        }
        let sum: f64 = got.iter().map(|&v| f64::from(v)).sum();
        let sum_sq: f64 = got.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let want_sum = entry["sum"].as_f64().expect("sum");
        let want_sq = entry["sum_sq"].as_f64().expect("sum_sq");
        assert!(
            (sum - want_sum).abs() <= 1e-6 * want_sq.max(1.0),
            "{name}: sum {sum} vs {want_sum}"
        );
        assert!(
            (sum_sq - want_sq).abs() <= 1e-6 * want_sq.max(1.0),
            "{name}: sum_sq {sum_sq} vs {want_sq}"
        );
        // Bit-exact: rescale and normalize are done in the same float64 / float32 steps as numpy.
        assert_eq!(
            fnv1a64(got.iter().flat_map(|v| v.to_le_bytes())),
            entry["fnv1a64"].as_str().expect("hash"),
            "{name}: float32 bytes differ from numpy's"
        );
    }
}

#[test]
fn sixteen_bit_pngs_convert_like_pil() {
    let r = reference();
    for case in r["png16"].as_array().expect("png16") {
        let name = case["name"].as_str().expect("name");
        let src = make_png16(name);
        let mut png = Vec::new();
        src.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encode 16-bit PNG");
        let decoded = ImageProcessor::decode(&png, Path::new(name)).expect("decode");
        assert_eq!(
            decoded.color(),
            src.color(),
            "{name}: the decoder keeps 16 bits"
        );
        let conv = experiments::model::preprocess::convert_rgb(&decoded, AlphaMode::CompositeOnWhite)
            .expect("convert");
        let s = [conv.height() as usize, conv.width() as usize, 3];
        check_u8(
            &format!("{name} ({})", case["pil_mode"]),
            conv.as_raw(),
            &s,
            &case["converted"],
        );
    }
}

#[test]
fn default_config_equals_transformers_default() {
    let r = reference();
    let default_dict = &r["default_to_dict"];
    let parsed: ImageProcessorConfig =
        serde_json::from_value(default_dict.clone()).expect("parses");
    assert_eq!(parsed, ImageProcessorConfig::clip_default());
    // Our preprocessor_config.json has exactly transformers' own keys and values, plus processor_class.
    let mut ours = ImageProcessorConfig::clip_default().to_json();
    let obj = ours.as_object_mut().expect("object");
    assert_eq!(
        obj.remove("processor_class"),
        Some(Value::from("CLIPProcessor"))
    );
    assert_eq!(&ours, default_dict);
    assert_eq!(
        ImageProcessorConfig::clip_default().output_size(),
        (224, 224)
    );
    assert_eq!(ImageProcessorConfig::with_size(32).output_size(), (32, 32));
}

#[test]
fn load_png_file_equals_reference() {
    let r = reference();
    let case = r["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == "rgba40x90_s24")
        .expect("case rgba40x90_s24")
        .clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rgba.png");
    make_image("rgba40x90").save(&path).expect("save png");

    let p = case_processor(&case);
    let loaded = p.load(&path).expect("load");
    assert_eq!(
        loaded,
        p.preprocess(&make_image("rgba40x90")).expect("preprocess")
    );
    assert_eq!(
        fnv1a64(loaded.iter().flat_map(|v| v.to_le_bytes())),
        case["output"]["fnv1a64"].as_str().expect("hash")
    );

    let tensor = p
        .batch_tensor(&[loaded.clone(), loaded], &candle_core::Device::Cpu)
        .expect("batch");
    assert_eq!(tensor.dims(), &[2, 3, 24, 24]);
}

