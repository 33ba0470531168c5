//! Decoding limits like Pillow's: an image above `2 * Image.MAX_IMAGE_PIXELS` (178,956,970 pixels, Pillow's
//! `DecompressionBombError`) is refused from its header, with an error naming the file and the size, before any
//! pixel buffer is allocated. Its own test binary (one test), so the process's peak memory measures this alone.

use std::io::Write;
use std::path::Path;

use experiments::model::preprocess::{decode_image, DecodeLimits, ImageProcessor};

/// A valid 1-bit grayscale PNG of `width` x `height` black pixels, written as a stream (a few KB whatever the
/// size: the zlib data is all zero rows).
fn black_png(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).expect("chunk length").to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // bit depth 1, grayscale, deflate, no filter, no interlace
    let row = vec![0u8; 1 + width.div_ceil(8) as usize]; // filter byte + packed pixels
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..height {
        z.write_all(&row).expect("deflate");
    }
    let idat = z.finish().expect("deflate");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// Peak resident memory of this process so far (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn images_above_pillows_bomb_limit_are_refused_before_decoding() {
    let limits = DecodeLimits::default();
    assert_eq!(limits.max_pixels, 178_956_970);

    // 10,000 x 20,000 = 200 million pixels: Pillow raises DecompressionBombError. Decoded it would take
    // 200 MB as gray (600 MB as RGB for the model).
    let png = black_png(10_000, 20_000);
    assert!(png.len() < 100_000, "{} bytes", png.len());
    // The same kind of file under the limit decodes (the PNG is valid).
    let small = decode_image(&black_png(100, 50), Path::new("small.png"), &limits).expect("small PNG");
    assert_eq!((small.width(), small.height()), (100, 50));

    let before = peak_rss();
    let start = std::time::Instant::now();
    let err = decode_image(&png, Path::new("photos/bomb.png"), &limits).expect_err("a decompression bomb");
    let elapsed = start.elapsed();
    let msg = err.to_string();
    assert!(msg.contains("photos/bomb.png") && msg.contains("10000 x 20000"), "{msg}");
    assert!(msg.contains("178956970") && !msg.contains('\n'), "{msg}");
    // The processor's decode (what `score` and `run` use) has the same limit.
    let err = ImageProcessor::decode(&png, Path::new("bomb.png")).expect_err("bomb via the processor");
    assert!(err.to_string().contains("10000 x 20000"), "{err}");
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grown = after.saturating_sub(before);
        assert!(grown < 50 << 20, "refusing the bomb raised the peak memory by {} MB", grown >> 20);
    }
    eprintln!("refused in {elapsed:?}: {msg}");

    // A JPEG whose header says 60,000 x 60,000 is refused from the header too.
    let jpeg = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/jpeg/smooth_420_baseline.jpg"),
    )
    .expect("reference jpeg");
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).expect("a baseline SOF0 marker");
    let mut huge = jpeg.clone();
    huge[sof + 5..sof + 9].copy_from_slice(&[0xea, 0x60, 0xea, 0x60]); // height, width: 60000
    let err = decode_image(&huge, Path::new("huge.jpg"), &limits).expect_err("a huge JPEG header");
    assert!(err.to_string().contains("huge.jpg") && err.to_string().contains("60000 x 60000"), "{err}");
    // A caller may set its own limit.
    let err = decode_image(&jpeg, Path::new("s.jpg"), &DecodeLimits { max_pixels: 1000 }).expect_err("over 1000");
    assert!(err.to_string().contains("45 x 37"), "{err}");
}
