//! Times the dataset import at scale: generates a caption-contest dataset (by default 3,000 224×224 images with
//! 3 rows each, 9,000 rows), imports it, re-verifies its images, and prints how long each took. Fails when the
//! import does not keep every row and image or the verification finds a problem.
//!
//! ```text
//! cargo run --release -p experiments --example import_scale [-- IMAGES [ROWS_PER_IMAGE [SIZE]]]
//! ```

use std::time::Instant;

use experiments::data::synth::{caption_contest, write_dataset};
use experiments::data::{import, verify_images, ColumnMap, ImportOptions, OnError};
use experiments::events::NullObserver;

fn arg(i: usize, default: usize) -> Result<usize, Box<dyn std::error::Error>> {
    Ok(std::env::args().nth(i).map(|s| s.parse()).transpose()?.unwrap_or(default))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (images, rows_per_image, size) = (arg(1, 3000)?, arg(2, 3)?, arg(3, 224)?);
    let dir = tempfile::tempdir()?;
    let start = Instant::now();
    let samples = caption_contest(images, 5, rows_per_image, u32::try_from(size)?, 11);
    let metadata = write_dataset(dir.path(), &samples)?;
    println!("generated {} rows / {images} images in {:?}", samples.len(), start.elapsed());

    let opts = ImportOptions {
        name: "scale".into(),
        metadata,
        images_dir: None,
        columns: ColumnMap::default(),
        on_error: OnError::Reject,
        extract_dir: None,
    };
    let start = Instant::now();
    let ds = import(&opts, &mut NullObserver)?;
    println!("imported {} rows / {} images in {:?}", ds.rows.len(), ds.images.len(), start.elapsed());
    if (ds.rows.len(), ds.images.len()) != (images * rows_per_image.max(1), images) {
        return Err(format!("expected {} rows and {images} images", images * rows_per_image.max(1)).into());
    }

    let start = Instant::now();
    let problems = verify_images(&ds.images);
    println!("verified in {:?}", start.elapsed());
    if let Some(first) = problems.first() {
        return Err(format!("{} image problem(s) after import; first: {first}", problems.len()).into());
    }
    Ok(())
}
