//! [`ImageProcessor`]: the steps in transformers' order (convert, resize, center crop, rescale + normalize),
//! computing only the part of the resized image that survives the crop.

use std::ops::Range;
use std::path::Path;

use super::config::ImageProcessorConfig;
use super::convert::{convert_rgb, rgb8_pixels, AlphaMode};
use crate::decode::{decode_image, DecodeLimits};
use super::resize::{resize_region, resize_rgb8, PassOrder};
use crate::error::read_file;
use crate::{Error, Result};

/// Preprocesses images into CLIP's `pixel_values` as transformers' slow `CLIPImageProcessor` does.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    config: ImageProcessorConfig,
    alpha: AlphaMode,
}

impl ImageProcessor {
    /// A processor for `config`, compositing alpha onto white like transformers 5 and ordering the resize
    /// passes like Pillow 13.
    pub fn new(config: ImageProcessorConfig) -> Self {
        Self {
            config,
            alpha: AlphaMode::default(),
        }
    }

    /// The same processor with another alpha handling.
    pub fn with_alpha_mode(mut self, alpha: AlphaMode) -> Self {
        self.alpha = alpha;
        self
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
            PassOrder::Pillow13,
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
        resize_rgb8(&rgb, rw, rh, self.config.resample, PassOrder::Pillow13)
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

    /// Decodes image bytes (format from the content, else from `name`'s extension) with Pillow's results and
    /// Pillow's size limit: [`decode_image`] with [`DecodeLimits::default`]. Errors name `name`.
    pub fn decode(bytes: &[u8], name: &Path) -> Result<image::DynamicImage> {
        decode_image(bytes, name, &DecodeLimits::default())
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
    use crate::model::preprocess::CropSize;

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

        // A JPEG cut off after its first marker.
        let cut_jpeg = dir.path().join("cut.jpg");
        std::fs::write(&cut_jpeg, [0xffu8, 0xd8, 0xff, 0x00, 0x13, 0x37]).expect("write");
        let err = p.load(&cut_jpeg).expect_err("cut jpeg");
        assert!(matches!(err, Error::BadImage { .. }), "{err}");
        assert!(err.to_string().contains("cut.jpg"), "{err}");

        let no_ext = Path::new("photos/unknown");
        let err = ImageProcessor::decode(b"\x00\x01\x02", no_ext).expect_err("unknown format");
        assert!(err.to_string().contains("photos/unknown"), "{err}");

        let truncated_png = b"\x89PNG\r\n\x1a\n\x00\x00";
        let err =
            ImageProcessor::decode(truncated_png, Path::new("cut.png")).expect_err("truncated");
        assert!(err.to_string().contains("cut.png"), "{err}");
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
