//! RGB conversion with PIL's semantics: grayscale repeated into three channels, alpha composited onto white
//! with PIL's integer `alpha_composite` (or dropped, as PIL's `convert("RGB")`), 16-bit images cut to 8 bits as
//! PIL opens them.

use std::borrow::Cow;

use crate::{Error, Result};

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
pub(super) fn rgb8_pixels(img: &image::DynamicImage, alpha: AlphaMode) -> Cow<'_, [u8]> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
