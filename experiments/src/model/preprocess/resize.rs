//! Pillow's resampler for 8-bit images (`src/libImaging/Resample.c`) and its nearest-neighbour scale
//! (`Geometry.c`), transcribed so that every output pixel equals PIL's `Image.resize`.

use std::ops::Range;

use super::config::Resample;
use crate::{Error, Result};

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
pub(super) fn resize_region(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
