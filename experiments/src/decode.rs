//! The one place image bytes become pixels, with Pillow's results: JPEG through libjpeg-turbo with its defaults
//! (what Pillow uses: ISLOW IDCT, fancy upsampling), every other format through the `image` crate; images above
//! a pixel limit (Pillow's decompression-bomb limit by default) refused from their header, before any pixel
//! buffer is allocated; truncated JPEGs refused as Pillow refuses them ("image file is truncated").

use std::cell::Cell;
use std::io::{BufRead, Cursor, Read};
use std::panic::AssertUnwindSafe;
use std::path::Path;

use image::{DynamicImage, ImageFormat};
use mozjpeg::ColorSpace;

use crate::{Error, Result};

/// Pillow's `Image.MAX_IMAGE_PIXELS`: above it Pillow warns (`DecompressionBombWarning`), above twice it refuses
/// the image (`DecompressionBombError`).
pub const PILLOW_MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// How large an image [`decode_image`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest `width * height` decoded; larger images are refused from their header.
    pub max_pixels: u64,
}

impl DecodeLimits {
    /// Pillow's limit: refuse above `2 * Image.MAX_IMAGE_PIXELS` = 178,956,970 pixels, where Pillow raises
    /// `DecompressionBombError` (so every image the Python side accepts is accepted here too). At that size an
    /// RGB image is 537 MB; a bomb of a few hundred KB cannot make a decode allocate more than that.
    pub const fn pillow() -> Self {
        Self {
            max_pixels: 2 * PILLOW_MAX_IMAGE_PIXELS,
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::pillow()
    }
}

/// Decodes image bytes (format from the content, else from `name`'s extension) into the image Pillow's
/// `Image.open` gives: JPEG grayscale as `L` ([`DynamicImage::ImageLuma8`]), colour JPEG as RGB, CMYK / YCCK
/// JPEG converted to RGB as Pillow's `convert("RGB")` does (Pillow opens it as Adobe-inverted CMYK). EXIF
/// orientation is not applied (Pillow's `Image.open` does not apply it). Errors are [`Error::BadImage`] naming
/// `name`: unknown format, broken or truncated data, or more pixels than `limits` allow (refused before
/// decoding). A panic inside a decoder becomes an error too.
pub fn decode_image(bytes: &[u8], name: &Path, limits: &DecodeLimits) -> Result<DynamicImage> {
    let bad = |message: String| Error::BadImage {
        path: name.to_path_buf(),
        message,
    };
    let format = match image::guess_format(bytes).or_else(|_| ImageFormat::from_path(name)) {
        Ok(format) => format,
        Err(_) => return Err(bad("unrecognised image format".into())),
    };
    let decoded = std::panic::catch_unwind(|| match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, limits),
        other => decode_with_image_crate(bytes, other, limits),
    });
    match decoded {
        Ok(result) => result.map_err(bad),
        Err(_) => Err(bad(format!("the {format:?} decoder crashed on this file"))),
    }
}

type Decoded = std::result::Result<DynamicImage, String>;

fn check_size(width: u64, height: u64, limits: &DecodeLimits) -> std::result::Result<(), String> {
    let pixels = width.saturating_mul(height);
    if pixels > limits.max_pixels {
        let pillow = 2 * PILLOW_MAX_IMAGE_PIXELS;
        let whose = if limits.max_pixels == pillow {
            "Pillow's decompression-bomb limit".to_string()
        } else {
            format!("Pillow's is {pillow}")
        };
        return Err(format!(
            "image is {width} x {height} = {pixels} pixels, above the limit of {} pixels ({whose}); refused \
             before decoding",
            limits.max_pixels
        ));
    }
    Ok(())
}

fn decode_with_image_crate(bytes: &[u8], format: ImageFormat, limits: &DecodeLimits) -> Decoded {
    let reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) = reader.into_dimensions().map_err(|e| e.to_string())?;
    check_size(width.into(), height.into(), limits)?;
    image::ImageReader::with_format(Cursor::new(bytes), format).decode().map_err(|e| e.to_string())
}

/// The JPEG bytes as libjpeg's data source, noting when libjpeg asks for more than there is. With the whole file
/// in memory, that is exactly where Pillow's decoder runs out of data and refuses the file ("image file is
/// truncated"): a file cut in its scan data or without its end-of-image marker. (libjpeg itself only warns, inserts
/// an end marker and returns grey for the rest; its other warnings, such as stray bytes before a marker, are
/// ignored, as Pillow ignores them.)
struct WatchedEnd<'a> {
    rest: &'a [u8],
    ran_out: &'a Cell<bool>,
}

impl Read for WatchedEnd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.fill_buf()?.read(buf)?;
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for WatchedEnd<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.rest.is_empty() {
            self.ran_out.set(true);
        }
        Ok(self.rest)
    }

    fn consume(&mut self, amount: usize) {
        self.rest = &self.rest[amount.min(self.rest.len())..];
    }
}

/// JPEG through libjpeg-turbo (as mozjpeg builds it) with libjpeg's defaults, which are Pillow's: ISLOW IDCT,
/// fancy upsampling. The `mozjpeg` crate reports libjpeg's fatal errors by unwinding; they are caught here.
fn decode_jpeg(bytes: &[u8], limits: &DecodeLimits) -> Decoded {
    let ran_out = Cell::new(false);
    let source = WatchedEnd {
        rest: bytes,
        ran_out: &ran_out,
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| decode_jpeg_from(source, limits)));
    if ran_out.get() {
        return Err("image file is truncated (the JPEG data ends before the image does)".into());
    }
    match result {
        Ok(decoded) => decoded,
        Err(payload) => Err(match payload.downcast::<String>() {
            Ok(message) => *message,
            Err(_) => "libjpeg failed on this file".into(),
        }),
    }
}

fn decode_jpeg_from(source: WatchedEnd<'_>, limits: &DecodeLimits) -> Decoded {
    let io = |e: std::io::Error| e.to_string();
    let jpeg = mozjpeg::Decompress::new_reader(source).map_err(io)?;
    let (width, height) = jpeg.size();
    check_size(width as u64, height as u64, limits)?;
    let (w, h) = match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(format!("image is {width} x {height}, too large")),
    };
    // Pillow's modes: L for grayscale, CMYK for 4 channels (converted below), RGB for the rest.
    let out_space = match jpeg.color_space() {
        ColorSpace::JCS_GRAYSCALE => ColorSpace::JCS_GRAYSCALE,
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => ColorSpace::JCS_CMYK,
        _ => ColorSpace::JCS_RGB,
    };
    let mut started = jpeg.to_colorspace(out_space).map_err(io)?;
    let pixels: Vec<u8> = started.read_scanlines().map_err(io)?;
    // Reads up to the end-of-image marker (a missing one shows as running out of data).
    started.finish().map_err(io)?;
    let image = match out_space {
        ColorSpace::JCS_GRAYSCALE => image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8),
        ColorSpace::JCS_CMYK => {
            image::RgbImage::from_raw(w, h, inverted_cmyk_to_rgb(&pixels)).map(DynamicImage::ImageRgb8)
        }
        _ => image::RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8),
    };
    image.ok_or_else(|| format!("decoded pixel buffer does not match {w} x {h}"))
}

/// libjpeg's CMYK output (stored values) to RGB as Pillow does it: Pillow opens every 4-channel JPEG with the
/// Adobe-inverted raw mode `CMYK;I` (each value `255 - v`), then `convert("RGB")` runs `cmyk2rgb` in
/// libImaging/Convert.c: `nk = 255 - k; out = clip8(nk - MULDIV255(c, nk))` with
/// `MULDIV255(a, b) = ((a*b + 128) >> 8 + (a*b + 128)) >> 8`.
fn inverted_cmyk_to_rgb(raw: &[u8]) -> Vec<u8> {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let mut out = Vec::with_capacity(raw.len() / 4 * 3);
    for px in raw.chunks_exact(4) {
        // Pillow's K is 255 - raw K, so nk = 255 - K is the raw value.
        let nk = u32::from(px[3]);
        for &v in &px[..3] {
            let c = 255 - u32::from(v);
            out.push(nk.saturating_sub(muldiv255(c, nk)) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_follows_pillow() {
        // Raw (stored, inverted) values: raw 255 = no ink. White, black (raw K 0), and a mid value checked by
        // hand against Pillow's formula: c = 255 - 55 = 200, nk = 128: 128 - ((25728 >> 8) + 25728) >> 8 = 28.
        assert_eq!(inverted_cmyk_to_rgb(&[255, 255, 255, 255]), [255, 255, 255]);
        assert_eq!(inverted_cmyk_to_rgb(&[255, 0, 12, 0]), [0, 0, 0]);
        assert_eq!(inverted_cmyk_to_rgb(&[55, 255, 0, 128]), [28, 128, 0]);
    }

    #[test]
    fn size_limit_message_names_the_size() {
        let limits = DecodeLimits { max_pixels: 100 };
        assert!(check_size(10, 10, &limits).is_ok());
        let msg = check_size(10, 11, &limits).expect_err("above");
        assert!(msg.contains("10 x 11 = 110 pixels") && msg.contains("limit of 100"), "{msg}");
        assert_eq!(DecodeLimits::default().max_pixels, 178_956_970);
    }

    #[test]
    fn unknown_formats_are_errors_naming_the_file() {
        let err = decode_image(b"\x00\x01\x02", Path::new("photos/unknown"), &DecodeLimits::default())
            .expect_err("unknown format");
        assert!(err.to_string().contains("photos/unknown"), "{err}");
    }
}
