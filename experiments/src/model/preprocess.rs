//! Image preprocessing that gives the same numbers as Hugging Face transformers' `CLIPImageProcessor` (the
//! slow, PIL-based one; `CLIPImageProcessorPil` in transformers 5), driven by a `preprocessor_config.json`.
//!
//! The steps, each switched by its `do_*` flag like in transformers:
//!
//! 1. **RGB conversion** as transformers does it with PIL: grayscale is repeated into three channels; an image
//!    with an alpha channel is composited onto white with PIL's `alpha_composite` integer arithmetic (what
//!    transformers 5 does; [`AlphaMode::Drop`] gives PIL's plain `convert("RGB")`, which drops alpha, as older
//!    transformers did). 16-bit images become 8-bit the way PIL opens them: 16-bit RGB(A) and gray+alpha keep
//!    the high byte, 16-bit grayscale (`I;16`) is clipped to 255.
//! 2. **Resize** so that the shortest side is `size.shortest_edge` (the long side is
//!    `int(shortest_edge * long / short)`, as `get_resize_output_image_size(default_to_square=False)`), or to
//!    `size.height`×`size.width`. The resampler is a transcription of Pillow's `ImagingResample` for 8-bit
//!    images (`src/libImaging/Resample.c`): separable filter (bicubic with a = -0.5 by default) whose support
//!    grows with the downscale factor, per-output normalised coefficients turned into 22-bit fixed point, two
//!    passes each rounding and clipping to `u8`. Pillow 13 runs the vertical pass first when the height shrinks
//!    by more than twice as many pixels as the width, older Pillow always the horizontal one first; the order
//!    changes some pixels by one level, so it is a setting ([`PassOrder`], Pillow 13 by default). Nearest
//!    follows PIL's affine nearest-neighbour path. All six PIL filters are supported, bit-exactly.
//! 3. **Center crop** to `crop_size` with transformers' offsets (`top = (h - crop_h) // 2`), padding with zero
//!    pixels where the image is smaller than the crop.
//! 4. **Rescale** (`f32(u8 as f64 * rescale_factor)`) and **normalize** (`(x - mean) / std` in `f32`), fused into
//!    one 256-entry lookup table per channel, so the floats equal numpy's bit for bit.
//!
//! Only the part of the resized image that survives the crop is computed; every computed pixel is exactly the
//! one PIL would produce.
//!
//! Checked against transformers 5.24 / Pillow 13.0 / numpy 2.4 by `tests/preprocess.rs` (reference values from
//! `tests/reference/preprocess_ref.py`).
//!
//! EXIF orientation is ignored, as transformers ignores it. Not bit-equal to the Python side: JPEG decoding (the
//! `image` crate's decoder is not libjpeg-turbo, so decoded pixels can differ by a few levels) and float images.

use std::borrow::Cow;
use std::ops::Range;
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

// ---------------------------------------------------------------------------------------------------------------
// Configuration

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

    fn validate(&self) -> std::result::Result<(), String> {
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

// ---------------------------------------------------------------------------------------------------------------
// RGB conversion

/// What the RGB conversion does with an alpha channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlphaMode {
    /// Composite onto opaque white with PIL's `Image.alpha_composite` (transformers 5's `convert_to_rgb`).
    #[default]
    CompositeOnWhite,
    /// Drop alpha without compositing (PIL's `convert("RGB")`, which older transformers used).
    Drop,
}

/// PIL's `alpha_composite(white, (v, a))` for one channel (AlphaComposite.c with 7 precision bits).
#[inline]
fn composite_on_white(v: u8, coef1: u32) -> u8 {
    // dst = 255 everywhere: coef2 = 255 * 128 - coef1.
    let coef2 = 255 * 128 - coef1;
    let tmp = u32::from(v) * coef1 + 255 * coef2 + (0x80 << 7);
    let div255 = ((tmp >> 8) + tmp) >> 8;
    (div255 >> 7).min(255) as u8
}

/// `coef1` of PIL's alpha composite over opaque white, or `None` where PIL copies the background (alpha 0).
#[inline]
fn composite_coef(a: u8) -> Option<u32> {
    if a == 0 {
        return None;
    }
    let a = u32::from(a);
    let blend = 255 * (255 - a);
    let outa255 = a * 255 + blend;
    Some(a * 255 * 255 * 128 / outa255)
}

#[inline]
fn push_rgba(out: &mut Vec<u8>, rgb: [u8; 3], a: u8, alpha: AlphaMode) {
    match alpha {
        AlphaMode::Drop => out.extend_from_slice(&rgb),
        AlphaMode::CompositeOnWhite => match composite_coef(a) {
            None => out.extend_from_slice(&[255, 255, 255]),
            Some(c) => out.extend_from_slice(&[
                composite_on_white(rgb[0], c),
                composite_on_white(rgb[1], c),
                composite_on_white(rgb[2], c),
            ]),
        },
    }
}

fn gray_to_rgb(n: usize, values: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 3);
    for v in values {
        out.extend_from_slice(&[v, v, v]);
    }
    out
}

fn rgba_to_rgb(n: usize, pixels: impl Iterator<Item = ([u8; 3], u8)>, alpha: AlphaMode) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 3);
    for (rgb, a) in pixels {
        push_rgba(&mut out, rgb, a, alpha);
    }
    out
}

#[inline]
fn hi(v: u16) -> u8 {
    (v >> 8) as u8
}

#[inline]
fn unit_to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Interleaved 8-bit RGB pixels of `img`, converted as PIL would (see the module docs), borrowed when the image
/// already is 8-bit RGB.
fn rgb8_pixels(img: &image::DynamicImage, alpha: AlphaMode) -> Cow<'_, [u8]> {
    use image::DynamicImage as D;
    let n = img.width() as usize * img.height() as usize;
    Cow::Owned(match img {
        D::ImageRgb8(b) => return Cow::Borrowed(b.as_raw().as_slice()),
        D::ImageLuma8(b) => gray_to_rgb(n, b.as_raw().iter().copied()),
        D::ImageLumaA8(b) => rgba_to_rgb(
            n,
            b.as_raw().chunks_exact(2).map(|p| ([p[0]; 3], p[1])),
            alpha,
        ),
        D::ImageRgba8(b) => rgba_to_rgb(
            n,
            b.as_raw()
                .chunks_exact(4)
                .map(|p| ([p[0], p[1], p[2]], p[3])),
            alpha,
        ),
        // PIL opens 16-bit grayscale as I;16, whose conversion to RGB clips at 255.
        D::ImageLuma16(b) => gray_to_rgb(n, b.as_raw().iter().map(|&v| v.min(255) as u8)),
        // PIL reads 16-bit gray+alpha / RGB / RGBA keeping the high byte of each sample.
        D::ImageLumaA16(b) => rgba_to_rgb(
            n,
            b.as_raw()
                .chunks_exact(2)
                .map(|p| ([hi(p[0]); 3], hi(p[1]))),
            alpha,
        ),
        D::ImageRgb16(b) => b.as_raw().iter().map(|&v| hi(v)).collect(),
        D::ImageRgba16(b) => rgba_to_rgb(
            n,
            b.as_raw()
                .chunks_exact(4)
                .map(|p| ([hi(p[0]), hi(p[1]), hi(p[2])], hi(p[3]))),
            alpha,
        ),
        D::ImageRgb32F(b) => b.as_raw().iter().map(|&v| unit_to_u8(v)).collect(),
        D::ImageRgba32F(b) => rgba_to_rgb(
            n,
            b.as_raw().chunks_exact(4).map(|p| {
                (
                    [unit_to_u8(p[0]), unit_to_u8(p[1]), unit_to_u8(p[2])],
                    unit_to_u8(p[3]),
                )
            }),
            alpha,
        ),
        other => other.to_rgb8().into_raw(),
    })
}

/// `img` converted to 8-bit RGB the way transformers' slow `CLIPImageProcessor` converts it (PIL semantics).
pub fn convert_rgb(img: &image::DynamicImage, alpha: AlphaMode) -> Result<image::RgbImage> {
    let data = rgb8_pixels(img, alpha).into_owned();
    image::RgbImage::from_raw(img.width(), img.height(), data)
        .ok_or_else(|| Error::Invalid("RGB conversion produced a buffer of the wrong size".into()))
}

// ---------------------------------------------------------------------------------------------------------------
// Pillow's resampler (Resample.c, 8 bits per channel) and its nearest-neighbour scale (Geometry.c)

/// Fixed-point fraction bits of Pillow's 8-bit resampler: 32 bits minus 8 for the value minus 2 for overshoot.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Rounding offset the accumulators start from.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

#[derive(Clone, Copy)]
enum Filter {
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    /// The filter kernels, with Pillow's exact operation order (no fused multiply-adds).
    fn eval(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // Pillow writes the constants as C floats: 0.54f + 0.46f * cos(x), evaluated in double.
                    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// One output sample's taps: source `start`, and `len` coefficients from `offset` in [`Coeffs::k`].
#[derive(Clone, Copy)]
struct Taps {
    start: usize,
    offset: usize,
    len: usize,
}

/// Fixed-point coefficients of one axis, for a range of output samples.
struct Coeffs {
    taps: Vec<Taps>,
    k: Vec<i32>,
}

impl Coeffs {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the whole input (box = 0..in_size), restricted
    /// to the outputs in `outs` (each output's coefficients depend on nothing but its own index).
    fn new(in_size: usize, out_size: usize, filter: Filter, outs: Range<usize>) -> Self {
        // Pillow: scale = (double)(in1 - in0) / outSize with float box edges in0 = 0, in1 = in_size.
        let scale = f64::from(in_size as f32) / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = filter.support() * filterscale;
        let ss = 1.0 / filterscale;
        let fixed_one = f64::from(1u32 << PRECISION_BITS);

        let mut taps = Vec::with_capacity(outs.len());
        let mut k = Vec::with_capacity(outs.len() * (support.ceil() as usize * 2 + 1));
        let mut w = Vec::new();
        for xx in outs {
            let center = 0.0 + (xx as f64 + 0.5) * scale;
            // C casts truncate toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let len = (xmax - xmin).max(0) as usize;
            let xmin = xmin as usize;
            w.clear();
            let mut ww = 0.0;
            for x in 0..len {
                let v = filter.eval((((x + xmin) as f64) - center + 0.5) * ss);
                w.push(v);
                ww += v;
            }
            taps.push(Taps {
                start: xmin,
                offset: k.len(),
                len,
            });
            for &v in &w {
                let v = if ww != 0.0 { v / ww } else { v };
                k.push(if v < 0.0 {
                    (-0.5 + v * fixed_one) as i32
                } else {
                    (0.5 + v * fixed_one) as i32
                });
            }
        }
        Coeffs { taps, k }
    }

    /// Source range the outputs read.
    fn source_span(&self) -> Range<usize> {
        match (self.taps.first(), self.taps.last()) {
            (Some(a), Some(b)) => a.start..b.start + b.len,
            _ => 0..0,
        }
    }
}

/// Horizontal pass over `rows` of `src` (`src_w` RGB pixels per row, its first column being source column
/// `col0`): one output row per source row, one output pixel per tap set.
fn horizontal_pass(
    src: &[u8],
    src_w: usize,
    col0: usize,
    rows: Range<usize>,
    co: &Coeffs,
) -> Vec<u8> {
    let out_w3 = co.taps.len() * 3;
    let src_w3 = src_w * 3;
    let mut out = vec![0u8; rows.len() * out_w3];
    if out_w3 == 0 {
        return out;
    }
    for (orow, y) in out.chunks_exact_mut(out_w3).zip(rows) {
        let srow = &src[y * src_w3..(y + 1) * src_w3];
        for (o, t) in orow.chunks_exact_mut(3).zip(&co.taps) {
            let k = &co.k[t.offset..t.offset + t.len];
            let first = t.start - col0;
            let px = &srow[first * 3..(first + t.len) * 3];
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (&kv, p) in k.iter().zip(px.chunks_exact(3)) {
                s0 = s0.wrapping_add(i32::from(p[0]).wrapping_mul(kv));
                s1 = s1.wrapping_add(i32::from(p[1]).wrapping_mul(kv));
                s2 = s2.wrapping_add(i32::from(p[2]).wrapping_mul(kv));
            }
            o[0] = clip8(s0);
            o[1] = clip8(s1);
            o[2] = clip8(s2);
        }
    }
    out
}

/// Vertical pass over the columns `cols` of `src` (`src_w` RGB pixels per row, its first row being source row
/// `row0`): one output row per tap set, `cols.len()` pixels wide.
fn vertical_pass(
    src: &[u8],
    src_w: usize,
    cols: Range<usize>,
    row0: usize,
    co: &Coeffs,
) -> Vec<u8> {
    let w3 = cols.len() * 3;
    let src_w3 = src_w * 3;
    let mut out = vec![0u8; co.taps.len() * w3];
    if w3 == 0 {
        return out;
    }
    let mut acc = vec![0i32; w3];
    for (orow, t) in out.chunks_exact_mut(w3).zip(&co.taps) {
        acc.fill(HALF);
        let k = &co.k[t.offset..t.offset + t.len];
        for (j, &kv) in k.iter().enumerate() {
            let y = t.start + j - row0;
            let srow = &src[y * src_w3 + cols.start * 3..][..w3];
            for (a, &p) in acc.iter_mut().zip(srow) {
                *a = a.wrapping_add(i32::from(p).wrapping_mul(kv));
            }
        }
        for (o, &a) in orow.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// PIL's nearest-neighbour source index per output index (`ImagingScaleAffine`: a running double sum).
fn nearest_table(in_size: usize, out_size: usize) -> Vec<Option<usize>> {
    let a = f64::from(in_size as f32) / out_size as f64;
    let mut pos = 0.0 + a * 0.5;
    let mut table = Vec::with_capacity(out_size);
    for _ in 0..out_size {
        // COORD(v): -1 for negatives, else truncation.
        let idx = if pos < 0.0 { None } else { Some(pos as usize) };
        table.push(idx.filter(|&i| i < in_size));
        pos += a;
    }
    table
}

fn copy_region(src: &[u8], in_w: usize, cols: Range<usize>, rows: Range<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(cols.len() * rows.len() * 3);
    for y in rows {
        out.extend_from_slice(&src[(y * in_w + cols.start) * 3..(y * in_w + cols.end) * 3]);
    }
    out
}

/// Whether Pillow (13 and later) runs the vertical pass first: when the height shrinks by more than twice
/// as many pixels as the width (`ImagingResampleInner`). Older Pillow always ran the horizontal pass first;
/// the order changes the rounding of the intermediate image, so it matters for bit-exactness.
pub fn pillow_vertical_first(in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
    let dh = in_h as i64 - out_h as i64;
    let dw = in_w as i64 - out_w as i64;
    dh > 0 && dh > 2 * dw
}

/// The order of the two passes of the separable resampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassOrder {
    /// Pillow 13's choice ([`pillow_vertical_first`]).
    #[default]
    Pillow13,
    /// Always horizontal first, as Pillow 12 and earlier.
    HorizontalFirst,
}

/// The `cols`×`rows` region of `src` (`in_w`×`in_h` interleaved RGB) resized to `out_w`×`out_h` with PIL's
/// `Image.resize`, as `cols.len() * rows.len() * 3` bytes. The ranges must lie inside the output size.
fn resize_region(
    src: &[u8],
    (in_w, in_h): (usize, usize),
    (out_w, out_h): (usize, usize),
    resample: Resample,
    order: PassOrder,
    cols: Range<usize>,
    rows: Range<usize>,
) -> Vec<u8> {
    if in_w == out_w && in_h == out_h {
        return copy_region(src, in_w, cols, rows);
    }
    let filter = match resample {
        Resample::Nearest => {
            let xs = nearest_table(in_w, out_w);
            let ys = nearest_table(in_h, out_h);
            let mut out = Vec::with_capacity(cols.len() * rows.len() * 3);
            for y in rows {
                for x in cols.clone() {
                    match (ys[y], xs[x]) {
                        (Some(sy), Some(sx)) => {
                            out.extend_from_slice(&src[(sy * in_w + sx) * 3..][..3])
                        }
                        _ => out.extend_from_slice(&[0, 0, 0]),
                    }
                }
            }
            return out;
        }
        Resample::Lanczos => Filter::Lanczos,
        Resample::Bilinear => Filter::Bilinear,
        Resample::Bicubic => Filter::Bicubic,
        Resample::Box => Filter::Box,
        Resample::Hamming => Filter::Hamming,
    };
    // Only the outputs in the region are computed, and of the intermediate image only what they read: every
    // output value depends on its own taps alone, so this changes nothing but the work done.
    let horiz = (out_w != in_w).then(|| Coeffs::new(in_w, out_w, filter, cols.clone()));
    let vert = (out_h != in_h).then(|| Coeffs::new(in_h, out_h, filter, rows.clone()));
    let vertical_first = match order {
        PassOrder::Pillow13 => pillow_vertical_first(in_w, in_h, out_w, out_h),
        PassOrder::HorizontalFirst => false,
    };
    match (horiz, vert) {
        (None, None) => copy_region(src, in_w, cols, rows),
        (Some(h), None) => horizontal_pass(src, in_w, 0, rows, &h),
        (None, Some(v)) => vertical_pass(src, in_w, cols, 0, &v),
        (Some(h), Some(v)) if vertical_first => {
            // All output rows of the region, over the source columns the horizontal taps read.
            let src_cols = h.source_span();
            let col0 = src_cols.start;
            let temp = vertical_pass(src, in_w, src_cols.clone(), 0, &v);
            horizontal_pass(&temp, src_cols.len(), col0, 0..rows.len(), &h)
        }
        (Some(h), Some(v)) => {
            // The source rows the vertical taps read, over all output columns of the region.
            let src_rows = v.source_span();
            let row0 = src_rows.start;
            let temp = horizontal_pass(src, in_w, 0, src_rows, &h);
            vertical_pass(&temp, cols.len(), 0..cols.len(), row0, &v)
        }
    }
}

/// `img` resized to `width`×`height` exactly as PIL's `Image.resize((width, height), resample)` resizes an RGB
/// image (Pillow 13's pass order with [`PassOrder::Pillow13`]).
pub fn resize_rgb8(
    img: &image::RgbImage,
    width: u32,
    height: u32,
    resample: Resample,
    order: PassOrder,
) -> Result<image::RgbImage> {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if in_w == 0 || in_h == 0 || out_w == 0 || out_h == 0 {
        return Err(Error::Invalid(format!(
            "cannot resize a {in_w}×{in_h} image to {out_w}×{out_h}: sizes must be at least 1×1"
        )));
    }
    let data = resize_region(
        img.as_raw(),
        (in_w, in_h),
        (out_w, out_h),
        resample,
        order,
        0..out_w,
        0..out_h,
    );
    image::RgbImage::from_raw(width, height, data)
        .ok_or_else(|| Error::Invalid("resize produced a buffer of the wrong size".into()))
}

// ---------------------------------------------------------------------------------------------------------------
// The processor

/// Preprocesses images into CLIP's `pixel_values` as transformers' slow `CLIPImageProcessor` does.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    config: ImageProcessorConfig,
    alpha: AlphaMode,
    order: PassOrder,
}

impl ImageProcessor {
    /// A processor for `config`, compositing alpha onto white like transformers 5 and ordering the resize
    /// passes like Pillow 13.
    pub fn new(config: ImageProcessorConfig) -> Self {
        Self {
            config,
            alpha: AlphaMode::default(),
            order: PassOrder::default(),
        }
    }

    /// The same processor with another alpha handling.
    pub fn with_alpha_mode(mut self, alpha: AlphaMode) -> Self {
        self.alpha = alpha;
        self
    }

    /// The same processor with another resize pass order (to match an older Pillow).
    pub fn with_pass_order(mut self, order: PassOrder) -> Self {
        self.order = order;
        self
    }

    pub fn pass_order(&self) -> PassOrder {
        self.order
    }

    pub fn config(&self) -> &ImageProcessorConfig {
        &self.config
    }

    pub fn alpha_mode(&self) -> AlphaMode {
        self.alpha
    }

    /// `pixel_values` of one image: channel-major (3, H, W) `f32`, `3 * H * W` values, with
    /// `(H, W) = config.output_size_for(height, width)`.
    pub fn preprocess(&self, img: &image::DynamicImage) -> Result<Vec<f32>> {
        let cfg = &self.config;
        cfg.validate().map_err(Error::Invalid)?;
        let (w, h) = (img.width() as usize, img.height() as usize);
        if w == 0 || h == 0 {
            return Err(Error::Invalid(format!(
                "the image is empty ({w}×{h} pixels)"
            )));
        }
        let rgb = rgb8_pixels(img, self.alpha);
        let (rh, rw) = cfg.resized_size(h, w);
        if rh == 0 || rw == 0 {
            return Err(Error::Invalid(format!(
                "resizing {w}×{h} pixels gives an empty image"
            )));
        }

        // Output window in resized coordinates: out(i, j) = resized(i + top, j + left), zero outside.
        let (oh, ow, top, left) = if cfg.do_center_crop {
            let (ch, cw) = (cfg.crop_size.height, cfg.crop_size.width);
            (ch, cw, floor_half(rh, ch), floor_half(rw, cw))
        } else {
            (rh, rw, 0, 0)
        };
        let rows = clamp_range(top, oh, rh);
        let cols = clamp_range(left, ow, rw);
        let region = resize_region(
            &rgb,
            (w, h),
            (rw, rh),
            cfg.resample,
            self.order,
            cols.clone(),
            rows.clone(),
        );
        drop(rgb);

        let lut = self.value_table();
        let plane = oh * ow;
        let mut out = vec![0f32; 3 * plane];
        for (c, (out_plane, lut)) in out.chunks_exact_mut(plane).zip(&lut).enumerate() {
            let pad = lut[0];
            for (i, out_row) in out_plane.chunks_exact_mut(ow).enumerate() {
                let y = i as isize + top;
                if y < rows.start as isize || y >= rows.end as isize {
                    out_row.fill(pad);
                    continue;
                }
                let src_row =
                    &region[(y as usize - rows.start) * cols.len() * 3..][..cols.len() * 3];
                for (j, o) in out_row.iter_mut().enumerate() {
                    let x = j as isize + left;
                    *o = if x < cols.start as isize || x >= cols.end as isize {
                        pad
                    } else {
                        lut[usize::from(src_row[(x as usize - cols.start) * 3 + c])]
                    };
                }
            }
        }
        Ok(out)
    }

    /// The image after RGB conversion and resizing (before the crop): what PIL's `resize` hands back inside
    /// transformers. Mostly for checking against Python.
    pub fn resized(&self, img: &image::DynamicImage) -> Result<image::RgbImage> {
        let rgb = convert_rgb(img, self.alpha)?;
        let (rh, rw) = self
            .config
            .resized_size(rgb.height() as usize, rgb.width() as usize);
        if (rw, rh) == (rgb.width() as usize, rgb.height() as usize) {
            return Ok(rgb);
        }
        let (rw, rh) = (
            u32::try_from(rw)
                .map_err(|_| Error::Invalid(format!("resize width {rw} is too large")))?,
            u32::try_from(rh)
                .map_err(|_| Error::Invalid(format!("resize height {rh} is too large")))?,
        );
        resize_rgb8(&rgb, rw, rh, self.config.resample, self.order)
    }

    /// Reads, decodes and preprocesses an image file; errors name the file.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>> {
        let bytes = read_file(path)?;
        let img = Self::decode(&bytes, path)?;
        self.preprocess(&img).map_err(|e| match e {
            Error::Invalid(message) => Error::BadImage {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Decodes image bytes (format from the content, else from `name`'s extension); errors name `name`.
    pub fn decode(bytes: &[u8], name: &Path) -> Result<image::DynamicImage> {
        let bad = |message: String| Error::BadImage {
            path: name.to_path_buf(),
            message,
        };
        let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| bad(e.to_string()))?;
        if reader.format().is_none() {
            match image::ImageFormat::from_path(name) {
                Ok(format) => reader.set_format(format),
                Err(_) => return Err(bad("unrecognised image format".into())),
            }
        }
        reader.decode().map_err(|e| bad(e.to_string()))
    }

    /// Stacks preprocessed images into a `[B, 3, H, W]` `f32` tensor, `(H, W)` being `config.output_size()`.
    pub fn batch_tensor(
        &self,
        images: &[Vec<f32>],
        device: &candle_core::Device,
    ) -> Result<candle_core::Tensor> {
        let (h, w) = self.config.output_size();
        let n = 3 * h * w;
        let mut data = Vec::with_capacity(images.len() * n);
        for (i, img) in images.iter().enumerate() {
            if img.len() != n {
                return Err(Error::Invalid(format!(
                    "image {i} of the batch has {} values, expected 3×{h}×{w} = {n} (without a center crop, \
                     images of other aspect ratios give other sizes)",
                    img.len()
                )));
            }
            data.extend_from_slice(img);
        }
        Ok(candle_core::Tensor::from_vec(
            data,
            (images.len(), 3, h, w),
            device,
        )?)
    }

    /// Per channel, the output value of each pixel value: rescale (`f32(v as f64 * factor)`, as numpy does in
    /// float64 then casts) then normalize (`(x - mean) / std` in float32).
    fn value_table(&self) -> [[f32; 256]; 3] {
        let cfg = &self.config;
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            let mean = cfg.image_mean[c] as f32;
            let std = cfg.image_std[c] as f32;
            for (v, out) in table.iter_mut().enumerate() {
                let mut x = if cfg.do_rescale {
                    (v as f64 * cfg.rescale_factor) as f32
                } else {
                    v as f32
                };
                if cfg.do_normalize {
                    x = (x - mean) / std;
                }
                *out = x;
            }
        }
        lut
    }
}

/// Python's `(size - crop) // 2` (floor division, negative when the crop is larger).
fn floor_half(size: usize, crop: usize) -> isize {
    (size as isize - crop as isize).div_euclid(2)
}

/// The part of `start..start + len` inside `0..size`.
fn clamp_range(start: isize, len: usize, size: usize) -> Range<usize> {
    let lo = start.clamp(0, size as isize) as usize;
    let hi = (start + len as isize).clamp(0, size as isize) as usize;
    lo..hi.max(lo)
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

    #[test]
    fn load_and_decode_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = ImageProcessor::new(ImageProcessorConfig::with_size(8));

        let missing = dir.path().join("missing.png");
        let err = p.load(&missing).expect_err("missing");
        assert!(matches!(err, Error::MissingFile { .. }), "{err}");
        assert!(err.to_string().contains("missing.png"), "{err}");

        let garbage = dir.path().join("garbage.png");
        std::fs::write(&garbage, b"this is not an image at all").expect("write");
        let err = p.load(&garbage).expect_err("garbage");
        assert!(matches!(err, Error::BadImage { .. }), "{err}");
        assert!(err.to_string().contains("garbage.png"), "{err}");

        let no_ext = Path::new("photos/unknown");
        let err = ImageProcessor::decode(b"\x00\x01\x02", no_ext).expect_err("unknown format");
        assert!(err.to_string().contains("photos/unknown"), "{err}");

        let truncated_png = b"\x89PNG\r\n\x1a\n\x00\x00";
        let err =
            ImageProcessor::decode(truncated_png, Path::new("cut.png")).expect_err("truncated");
        assert!(err.to_string().contains("cut.png"), "{err}");
    }

    #[test]
    fn composite_matches_pil_formula_and_keeps_opaque_pixels() {
        for v in 0..=255u8 {
            // Alpha 255 leaves the colour as it is; alpha 0 gives the white background.
            assert_eq!(
                composite_on_white(v, composite_coef(255).expect("nonzero")),
                v
            );
            assert!(composite_coef(0).is_none());
        }
        // A half-transparent black pixel over white is mid grey (PIL gives 128 for alpha 127).
        assert_eq!(
            composite_on_white(0, composite_coef(127).expect("nonzero")),
            128
        );
    }

    #[test]
    fn coefficients_sum_to_one_and_identity_resize_is_a_copy() {
        for (i, o) in [(61, 24), (24, 61), (7, 7), (300, 224), (3, 1)] {
            for f in [
                Filter::Box,
                Filter::Bilinear,
                Filter::Hamming,
                Filter::Bicubic,
                Filter::Lanczos,
            ] {
                let co = Coeffs::new(i, o, f, 0..o);
                for t in &co.taps {
                    assert!(t.start + t.len <= i);
                    let s: i64 = co.k[t.offset..t.offset + t.len]
                        .iter()
                        .map(|&k| i64::from(k))
                        .sum();
                    assert!(
                        (s - (1 << PRECISION_BITS)).abs() <= t.len as i64,
                        "{i}->{o}: {s}"
                    );
                }
            }
        }
        let img = image::RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 7]));
        assert_eq!(
            resize_rgb8(&img, 5, 4, Resample::Bicubic, PassOrder::Pillow13).expect("resize"),
            img
        );
    }

    #[test]
    fn pillow13_pass_order() {
        // Vertical first only when the height shrinks by more than twice as many pixels as the width.
        assert!(pillow_vertical_first(40, 90, 24, 54));
        assert!(pillow_vertical_first(61, 47, 70, 20)); // width grows, height shrinks
        assert!(!pillow_vertical_first(61, 47, 31, 24));
        assert!(!pillow_vertical_first(30, 40, 20, 20)); // 20 == 2 * 10: not more than twice
        assert!(pillow_vertical_first(30, 40, 20, 19));
        // Height unchanged; upscale.
        assert!(!pillow_vertical_first(10, 10, 30, 10));
        assert!(!pillow_vertical_first(15, 10, 55, 37));

        // The order matters: the two orders round the intermediate image differently.
        let img = image::RgbImage::from_fn(40, 90, |x, y| {
            image::Rgb([
                ((x * 37 + y * 91) % 256) as u8,
                ((x * y) % 256) as u8,
                if (x + y) % 2 == 0 { 0 } else { 255 },
            ])
        });
        let v = resize_rgb8(&img, 24, 54, Resample::Bicubic, PassOrder::Pillow13).expect("resize");
        let h = resize_rgb8(&img, 24, 54, Resample::Bicubic, PassOrder::HorizontalFirst)
            .expect("resize");
        assert_ne!(v, h);
    }

    #[test]
    fn crop_pads_with_zero_pixels() {
        // A 2×2 white image, no resize, crop 4×4: a ring of zero pixels around it (offset -1 on both axes).
        let cfg = ImageProcessorConfig {
            do_resize: false,
            crop_size: CropSize {
                height: 4,
                width: 4,
            },
            do_normalize: false,
            ..ImageProcessorConfig::clip_default()
        };
        let img =
            image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(2, 2, image::Luma([255])));
        let out = ImageProcessor::new(cfg)
            .preprocess(&img)
            .expect("preprocess");
        assert_eq!(out.len(), 48);
        let plane: Vec<f32> = out[..16].to_vec();
        #[rustfmt::skip]
        let want = [0., 0., 0., 0.,  0., 1., 1., 0.,  0., 1., 1., 0.,  0., 0., 0., 0.];
        assert_eq!(plane, want);
    }

    #[test]
    fn empty_image_is_an_error() {
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::new(0, 3));
        let p = ImageProcessor::new(ImageProcessorConfig::with_size(8));
        assert!(p.preprocess(&img).is_err());
    }

    #[test]
    fn batch_tensor_shape_and_errors() {
        let p = ImageProcessor::new(ImageProcessorConfig::with_size(4));
        let a = vec![0.5f32; 48];
        let b = vec![1.5f32; 48];
        let t = p
            .batch_tensor(&[a.clone(), b], &candle_core::Device::Cpu)
            .expect("batch");
        assert_eq!(t.dims(), &[2, 3, 4, 4]);
        let err = p
            .batch_tensor(&[a, vec![0.0; 47]], &candle_core::Device::Cpu)
            .expect_err("bad length");
        assert!(err.to_string().contains("image 1"), "{err}");
    }
}
