//! The settings of a `CLIPImageProcessor` (`preprocessor_config.json`): reading every form transformers has
//! written, writing the new one, and the sizes each step produces.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::read_file;
use crate::{Error, Result};

/// OpenAI CLIP's per-channel mean (transformers' `OPENAI_CLIP_MEAN`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's per-channel standard deviation (transformers' `OPENAI_CLIP_STD`).
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
/// `CLIPImageProcessor`'s default `rescale_factor`.
pub const DEFAULT_RESCALE_FACTOR: f64 = 1.0 / 255.0;
/// `CLIPImageProcessor`'s default `size.shortest_edge` and square `crop_size`.
pub const DEFAULT_SIZE: usize = 224;

/// What `size` asks the resize step for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTarget {
    /// Scale so that the shorter side has this length, keeping the aspect ratio (`{"shortest_edge": n}`, or a
    /// plain integer in old configs).
    ShortestEdge(usize),
    /// Resize to exactly this size (`{"height": h, "width": w}` or `[h, w]`).
    Exact { height: usize, width: usize },
}

impl Serialize for ResizeTarget {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match *self {
            ResizeTarget::ShortestEdge(n) => {
                let mut m = serializer.serialize_map(Some(1))?;
                m.serialize_entry("shortest_edge", &n)?;
                m.end()
            }
            ResizeTarget::Exact { height, width } => {
                let mut m = serializer.serialize_map(Some(2))?;
                m.serialize_entry("height", &height)?;
                m.serialize_entry("width", &width)?;
                m.end()
            }
        }
    }
}

/// The `crop_size` of the center crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CropSize {
    pub height: usize,
    pub width: usize,
}

/// A PIL resampling filter, by its PIL code (the `resample` value of `preprocessor_config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resample {
    /// 0
    Nearest,
    /// 1
    Lanczos,
    /// 2
    Bilinear,
    /// 3 (CLIP's)
    Bicubic,
    /// 4
    Box,
    /// 5
    Hamming,
}

impl Resample {
    /// The filter with this PIL code, if there is one.
    pub fn from_pil(code: u64) -> Option<Self> {
        Some(match code {
            0 => Resample::Nearest,
            1 => Resample::Lanczos,
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            4 => Resample::Box,
            5 => Resample::Hamming,
            _ => return None,
        })
    }

    /// PIL's code of this filter.
    pub fn pil_code(self) -> u8 {
        match self {
            Resample::Nearest => 0,
            Resample::Lanczos => 1,
            Resample::Bilinear => 2,
            Resample::Bicubic => 3,
            Resample::Box => 4,
            Resample::Hamming => 5,
        }
    }
}

impl Serialize for Resample {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.pil_code())
    }
}

/// The settings of a `CLIPImageProcessor`, as in `preprocessor_config.json`.
///
/// Deserialising accepts the old and new forms transformers has written (`size` as an int, `{"shortest_edge"}`,
/// `{"height","width"}` or `[h, w]`; `crop_size` as an int, `{"height","width"}` or `[h, w]`; `image_mean` /
/// `image_std` as a list of three or one number); missing or `null` fields take `CLIPImageProcessor`'s defaults
/// and unknown fields are ignored. Serialising writes the new form.
///
/// `do_convert_rgb` is kept for the round trip, but the output always has three channels: images are always
/// converted (see [`AlphaMode`] for what happens to alpha).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct ImageProcessorConfig {
    pub do_resize: bool,
    pub size: ResizeTarget,
    pub resample: Resample,
    pub do_center_crop: bool,
    pub crop_size: CropSize,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    pub do_convert_rgb: bool,
}

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        Self::clip_default()
    }
}

impl TryFrom<Value> for ImageProcessorConfig {
    type Error = String;

    fn try_from(value: Value) -> std::result::Result<Self, String> {
        Self::from_value(&value)
    }
}

impl ImageProcessorConfig {
    /// `openai/clip-vit-base-patch32`'s preprocessing (which is also `CLIPImageProcessor`'s defaults): shortest
    /// edge 224, bicubic, center crop 224×224, rescale by 1/255, OpenAI CLIP mean and std.
    pub fn clip_default() -> Self {
        Self {
            do_resize: true,
            size: ResizeTarget::ShortestEdge(DEFAULT_SIZE),
            resample: Resample::Bicubic,
            do_center_crop: true,
            crop_size: CropSize {
                height: DEFAULT_SIZE,
                width: DEFAULT_SIZE,
            },
            do_rescale: true,
            rescale_factor: DEFAULT_RESCALE_FACTOR,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
            do_convert_rgb: true,
        }
    }

    /// [`clip_default`](Self::clip_default) with shortest edge and square crop `size` (tiny test models use 32).
    pub fn with_size(size: usize) -> Self {
        Self {
            size: ResizeTarget::ShortestEdge(size),
            crop_size: CropSize {
                height: size,
                width: size,
            },
            ..Self::clip_default()
        }
    }

    /// Reads a `preprocessor_config.json`; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = read_file(path)?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::bad_file(path, format!("not valid JSON: {e}")))?;
        Self::from_value(&value).map_err(|msg| Error::bad_file(path, msg))
    }

    /// Parses the JSON object of a `preprocessor_config.json` (see the type's docs for the accepted forms).
    pub fn from_value(value: &Value) -> std::result::Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| format!("expected a JSON object, got {}", json_kind(value)))?;
        let d = Self::clip_default();
        let config = Self {
            do_resize: get_bool(obj, "do_resize", d.do_resize)?,
            size: match present(obj, "size") {
                Some(v) => parse_size(v)?,
                None => d.size,
            },
            resample: match present(obj, "resample") {
                Some(v) => parse_resample(v)?,
                None => d.resample,
            },
            do_center_crop: get_bool(obj, "do_center_crop", d.do_center_crop)?,
            crop_size: match present(obj, "crop_size") {
                Some(v) => parse_crop_size(v)?,
                None => d.crop_size,
            },
            do_rescale: get_bool(obj, "do_rescale", d.do_rescale)?,
            rescale_factor: match present(obj, "rescale_factor") {
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| format!("`rescale_factor`: expected a number, got {v}"))?,
                None => d.rescale_factor,
            },
            do_normalize: get_bool(obj, "do_normalize", d.do_normalize)?,
            image_mean: match present(obj, "image_mean") {
                Some(v) => parse_triplet("image_mean", v)?,
                None => d.image_mean,
            },
            image_std: match present(obj, "image_std") {
                Some(v) => parse_triplet("image_std", v)?,
                None => d.image_std,
            },
            do_convert_rgb: get_bool(obj, "do_convert_rgb", d.do_convert_rgb)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// A `preprocessor_config.json` that `CLIPImageProcessor.from_pretrained` reads back as this config.
    pub fn to_json(&self) -> Value {
        let size = match self.size {
            ResizeTarget::ShortestEdge(n) => serde_json::json!({ "shortest_edge": n }),
            ResizeTarget::Exact { height, width } => {
                serde_json::json!({ "height": height, "width": width })
            }
        };
        serde_json::json!({
            "crop_size": { "height": self.crop_size.height, "width": self.crop_size.width },
            "do_center_crop": self.do_center_crop,
            "do_convert_rgb": self.do_convert_rgb,
            "do_normalize": self.do_normalize,
            "do_rescale": self.do_rescale,
            "do_resize": self.do_resize,
            "image_mean": self.image_mean,
            "image_processor_type": "CLIPImageProcessor",
            "image_std": self.image_std,
            "processor_class": "CLIPProcessor",
            "resample": self.resample.pil_code(),
            "rescale_factor": self.rescale_factor,
            "size": size,
        })
    }

    /// `(height, width)` of the tensor [`ImageProcessor::preprocess`] produces: the crop size with
    /// `do_center_crop`, else the `size` of an exact resize. Without a crop, a shortest-edge resize keeps the
    /// aspect ratio, so the size depends on the image ([`output_size_for`](Self::output_size_for)); this then
    /// returns the square `(shortest_edge, shortest_edge)`, right for square images only.
    pub fn output_size(&self) -> (usize, usize) {
        if self.do_center_crop {
            return (self.crop_size.height, self.crop_size.width);
        }
        match self.size {
            ResizeTarget::ShortestEdge(n) => (n, n),
            ResizeTarget::Exact { height, width } => (height, width),
        }
    }

    /// `(height, width)` of the output for an image of `height`×`width` pixels.
    pub fn output_size_for(&self, height: usize, width: usize) -> (usize, usize) {
        if self.do_center_crop {
            (self.crop_size.height, self.crop_size.width)
        } else {
            self.resized_size(height, width)
        }
    }

    /// `(height, width)` after the resize step (the image's own size when `do_resize` is off), as transformers'
    /// `get_resize_output_image_size`.
    pub fn resized_size(&self, height: usize, width: usize) -> (usize, usize) {
        if !self.do_resize {
            return (height, width);
        }
        match self.size {
            ResizeTarget::Exact { height, width } => (height, width),
            ResizeTarget::ShortestEdge(target) => {
                if height == 0 || width == 0 {
                    return (height, width);
                }
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                // Python: int(requested_new_short * long / short), a true (float) division then truncation.
                let new_long = ((target * long) as f64 / short as f64) as usize;
                if width <= height {
                    (new_long, target)
                } else {
                    (target, new_long)
                }
            }
        }
    }

    pub(super) fn validate(&self) -> std::result::Result<(), String> {
        match self.size {
            ResizeTarget::ShortestEdge(0) => {
                return Err("`size.shortest_edge` must be at least 1".into())
            }
            ResizeTarget::Exact { height, width } if height == 0 || width == 0 => {
                return Err(format!("`size` must be at least 1×1, got {height}×{width}"))
            }
            _ => {}
        }
        if self.crop_size.height == 0 || self.crop_size.width == 0 {
            return Err(format!(
                "`crop_size` must be at least 1×1, got {}×{}",
                self.crop_size.height, self.crop_size.width
            ));
        }
        Ok(())
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The field, unless absent or `null`.
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn get_bool(
    obj: &Map<String, Value>,
    key: &str,
    default: bool,
) -> std::result::Result<bool, String> {
    match present(obj, key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("`{key}`: expected true or false, got {v}")),
    }
}

fn get_dim(v: &Value, what: &str) -> std::result::Result<usize, String> {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("`{what}`: expected a non-negative integer, got {v}"))
}

fn parse_size(v: &Value) -> std::result::Result<ResizeTarget, String> {
    match v {
        Value::Number(_) => Ok(ResizeTarget::ShortestEdge(get_dim(v, "size")?)),
        Value::Array(a) if a.len() == 2 => Ok(ResizeTarget::Exact {
            height: get_dim(&a[0], "size[0]")?,
            width: get_dim(&a[1], "size[1]")?,
        }),
        Value::Object(m) => {
            if let Some(se) = present(m, "shortest_edge") {
                if present(m, "longest_edge").is_some() {
                    return Err("`size.longest_edge` is not supported (CLIP resizes by `shortest_edge` only)".into());
                }
                Ok(ResizeTarget::ShortestEdge(get_dim(se, "size.shortest_edge")?))
            } else if let (Some(h), Some(w)) = (present(m, "height"), present(m, "width")) {
                Ok(ResizeTarget::Exact {
                    height: get_dim(h, "size.height")?,
                    width: get_dim(w, "size.width")?,
                })
            } else {
                Err(format!(
                    "`size`: expected {{\"shortest_edge\": n}} or {{\"height\": h, \"width\": w}}, got {v}"
                ))
            }
        }
        _ => Err(format!(
            "`size`: expected an integer, {{\"shortest_edge\": n}}, {{\"height\": h, \"width\": w}} or [h, w], got {v}"
        )),
    }
}

fn parse_crop_size(v: &Value) -> std::result::Result<CropSize, String> {
    match v {
        Value::Number(_) => {
            let n = get_dim(v, "crop_size")?;
            Ok(CropSize {
                height: n,
                width: n,
            })
        }
        Value::Array(a) if a.len() == 2 => Ok(CropSize {
            height: get_dim(&a[0], "crop_size[0]")?,
            width: get_dim(&a[1], "crop_size[1]")?,
        }),
        Value::Object(m) => match (present(m, "height"), present(m, "width")) {
            (Some(h), Some(w)) => Ok(CropSize {
                height: get_dim(h, "crop_size.height")?,
                width: get_dim(w, "crop_size.width")?,
            }),
            _ => Err(format!(
                "`crop_size`: expected {{\"height\": h, \"width\": w}}, got {v}"
            )),
        },
        _ => Err(format!(
            "`crop_size`: expected an integer, {{\"height\": h, \"width\": w}} or [h, w], got {v}"
        )),
    }
}

fn parse_resample(v: &Value) -> std::result::Result<Resample, String> {
    v.as_u64().and_then(Resample::from_pil).ok_or_else(|| {
        format!(
            "`resample`: unsupported value {v} (PIL codes: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, \
             5 hamming)"
        )
    })
}

fn parse_triplet(key: &str, v: &Value) -> std::result::Result<[f64; 3], String> {
    let num = |x: &Value| {
        x.as_f64()
            .ok_or_else(|| format!("`{key}`: expected numbers, got {x}"))
    };
    match v {
        Value::Number(_) => {
            let x = num(v)?;
            Ok([x, x, x])
        }
        Value::Array(a) if a.len() == 3 => Ok([num(&a[0])?, num(&a[1])?, num(&a[2])?]),
        _ => Err(format!(
            "`{key}`: expected a list of 3 numbers (one per RGB channel), got {v}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> std::result::Result<ImageProcessorConfig, String> {
        ImageProcessorConfig::from_value(
            &serde_json::from_str::<Value>(s).expect("test JSON is valid"),
        )
    }

    #[test]
    fn old_openai_config_is_the_default() {
        let old = r#"{
          "crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
          "feature_extractor_type": "CLIPFeatureExtractor",
          "image_mean": [0.48145466, 0.4578275, 0.40821073],
          "image_std": [0.26862954, 0.26130258, 0.27577711],
          "resample": 3, "size": 224
        }"#;
        assert_eq!(
            parse(old).expect("parses"),
            ImageProcessorConfig::clip_default()
        );
        assert_eq!(
            parse("{}").expect("parses"),
            ImageProcessorConfig::clip_default()
        );
    }

    #[test]
    fn three_size_forms() {
        let int = parse(r#"{"size": 32, "crop_size": 32}"#).expect("int form");
        assert_eq!(int.size, ResizeTarget::ShortestEdge(32));
        assert_eq!(
            int.crop_size,
            CropSize {
                height: 32,
                width: 32
            }
        );
        assert_eq!(int, ImageProcessorConfig::with_size(32));

        let se =
            parse(r#"{"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}"#)
                .expect("shortest_edge form");
        assert_eq!(se, ImageProcessorConfig::with_size(32));

        let hw = parse(
            r#"{"size": {"height": 40, "width": 30}, "crop_size": {"height": 20, "width": 10}}"#,
        )
        .expect("height/width form");
        assert_eq!(
            hw.size,
            ResizeTarget::Exact {
                height: 40,
                width: 30
            }
        );
        assert_eq!(
            hw.crop_size,
            CropSize {
                height: 20,
                width: 10
            }
        );

        let list = parse(r#"{"size": [40, 30], "crop_size": [20, 10]}"#).expect("list form");
        assert_eq!(list, hw);

        let nulls = parse(
            r#"{"size": null, "crop_size": null, "do_convert_rgb": null, "image_mean": null}"#,
        )
        .expect("nulls take defaults");
        assert_eq!(nulls, ImageProcessorConfig::clip_default());
    }

    #[test]
    fn other_fields_and_errors() {
        let c = parse(r#"{"resample": 2, "do_rescale": false, "image_mean": 0.5, "rescale_factor": 0.5, "x": [1]}"#)
            .expect("parses");
        assert_eq!(c.resample, Resample::Bilinear);
        assert!(!c.do_rescale);
        assert_eq!(c.image_mean, [0.5; 3]);
        assert_eq!(c.rescale_factor, 0.5);

        for (bad, needle) in [
            (r#"{"resample": 7}"#, "resample"),
            (r#"{"size": "big"}"#, "size"),
            (r#"{"size": {"longest_edge": 3}}"#, "size"),
            (
                r#"{"size": {"shortest_edge": 3, "longest_edge": 9}}"#,
                "longest_edge",
            ),
            (r#"{"size": 0}"#, "shortest_edge"),
            (r#"{"crop_size": {"height": 3}}"#, "crop_size"),
            (r#"{"image_std": [1, 2]}"#, "image_std"),
            (r#"{"do_resize": "yes"}"#, "do_resize"),
            ("[1, 2]", "object"),
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn to_json_round_trips() {
        for cfg in [
            ImageProcessorConfig::clip_default(),
            ImageProcessorConfig::with_size(32),
            ImageProcessorConfig {
                size: ResizeTarget::Exact {
                    height: 7,
                    width: 9,
                },
                resample: Resample::Nearest,
                do_center_crop: false,
                image_mean: [0.1, 0.2, 0.3],
                ..ImageProcessorConfig::clip_default()
            },
        ] {
            let json = cfg.to_json();
            assert_eq!(json["image_processor_type"], "CLIPImageProcessor");
            assert_eq!(json["processor_class"], "CLIPProcessor");
            assert_eq!(
                ImageProcessorConfig::from_value(&json).expect("reads back"),
                cfg
            );
            let via_serde: ImageProcessorConfig =
                serde_json::from_value(json.clone()).expect("serde reads back");
            assert_eq!(via_serde, cfg);
            // The derived Serialize writes the same fields as to_json (less the two type names).
            let mut ser = serde_json::to_value(&cfg).expect("serialises");
            let obj = ser.as_object_mut().expect("an object");
            obj.insert("image_processor_type".into(), "CLIPImageProcessor".into());
            obj.insert("processor_class".into(), "CLIPProcessor".into());
            assert_eq!(ser, json);
        }
    }

    #[test]
    fn from_file_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope").join("preprocessor_config.json");
        let err = ImageProcessorConfig::from_file(&missing).expect_err("missing");
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
        assert!(
            err.to_string().contains("preprocessor_config.json"),
            "{err}"
        );

        let bad = dir.path().join("preprocessor_config.json");
        std::fs::write(&bad, "{ not json").expect("write");
        let err = ImageProcessorConfig::from_file(&bad).expect_err("garbage");
        assert!(err.to_string().contains(&*bad.to_string_lossy()), "{err}");

        std::fs::write(&bad, r#"{"resample": 9}"#).expect("write");
        let err = ImageProcessorConfig::from_file(&bad).expect_err("bad resample");
        assert!(err.to_string().contains(&*bad.to_string_lossy()), "{err}");
        assert!(err.to_string().contains("resample"), "{err}");

        std::fs::write(
            &bad,
            ImageProcessorConfig::with_size(32).to_json().to_string(),
        )
        .expect("write");
        assert_eq!(
            ImageProcessorConfig::from_file(&bad).expect("reads"),
            ImageProcessorConfig::with_size(32)
        );
    }
}
