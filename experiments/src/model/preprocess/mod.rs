//! Image preprocessing that gives the same numbers as Hugging Face transformers' `CLIPImageProcessor` (the
//! slow, PIL-based one; `CLIPImageProcessorPil` in transformers 5), driven by a `preprocessor_config.json`.
//!
//! The steps, each switched by its `do_*` flag like in transformers:
//!
//! 0. **Decoding** ([`decode_image`], also what dataset import uses) gives Pillow's `Image.open` pixels: JPEG
//!    through libjpeg-turbo with Pillow's settings (ISLOW IDCT, fancy upsampling; grayscale as `L`, CMYK/YCCK
//!    converted to RGB with Pillow's `cmyk2rgb` from its Adobe-inverted `CMYK;I`), other formats through the
//!    `image` crate. Truncated JPEGs are refused as Pillow refuses them, and images above a pixel limit
//!    ([`DecodeLimits`], Pillow's decompression-bomb limit by default) are refused from their header.
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
//!    changes some pixels by one level: [`ImageProcessor`] follows Pillow 13, and [`resize_rgb8`] takes the
//!    order as an argument ([`PassOrder`]). Nearest follows PIL's affine nearest-neighbour path. All six PIL
//!    filters are supported, bit-exactly.
//! 3. **Center crop** to `crop_size` with transformers' offsets (`top = (h - crop_h) // 2`), padding with zero
//!    pixels where the image is smaller than the crop.
//! 4. **Rescale** (`f32(u8 as f64 * rescale_factor)`) and **normalize** (`(x - mean) / std` in `f32`), fused into
//!    one 256-entry lookup table per channel, so the floats equal numpy's bit for bit.
//!
//! Only the part of the resized image that survives the crop is computed; every computed pixel is exactly the
//! one PIL would produce.
//!
//! Checked against transformers 5.24 / Pillow 13.0 / numpy 2.4 by `tests/preprocess.rs` (reference values from
//! `tests/reference/preprocess_ref.py`), and JPEG decoding against Pillow 13.0 / libjpeg-turbo 3.2 bit for bit by
//! `tests/jpeg.rs` (baseline and progressive, 4:4:4 / 4:2:2 / 4:2:0, grayscale, CMYK; from
//! `tests/reference/jpeg_ref.py`).
//!
//! EXIF orientation is ignored, as transformers (and Pillow's `Image.open`) ignore it. Not bit-equal to the
//! Python side: float images, and formats other than PNG / JPEG where the `image` crate's decoder and Pillow's may
//! disagree (untested).
//!
//! The files follow the steps: step 0 is the bottom layer's [`crate::decode`] (dataset import decodes with it
//! too), [`config`](ImageProcessorConfig) reads the
//! settings, `convert` does step 1, `resize` step 2 (Pillow's resampler), `processor` runs the whole pipeline
//! ([`ImageProcessor`]).

mod config;
mod convert;
mod processor;
mod resize;

pub use config::{
    CropSize, ImageProcessorConfig, Resample, ResizeTarget, DEFAULT_RESCALE_FACTOR, DEFAULT_SIZE, OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
};
pub use convert::{convert_rgb, AlphaMode};
pub use crate::decode::{decode_image, DecodeLimits, PILLOW_MAX_IMAGE_PIXELS};
pub use processor::ImageProcessor;
pub use resize::{pillow_vertical_first, resize_rgb8, PassOrder};
