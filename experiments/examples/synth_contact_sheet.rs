//! Saves a contact sheet of the generated scenes to look at: every shape in a few colours / layouts at 64×64
//! (left half) and the same scenes at 32×32 shown 2× (right half), and prints their captions.
//!
//! ```text
//! cargo run -p experiments --example synth_contact_sheet [-- OUT.png]
//! ```
//!
//! Writes `OUT.png`, by default `cliplab_synth_contact_sheet.png` in the temporary folder.

use experiments::data::synth::{draw_scene, Background, Color, Layout, Position, Scene, Shape};
use image::RgbImage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let layouts = [Layout::Single(Position::Center), Layout::Single(Position::Left), Layout::Pair, Layout::Trio];
    let mut scenes = Vec::new();
    for (i, &shape) in Shape::ALL.iter().enumerate() {
        for (j, &layout) in layouts.iter().enumerate() {
            let color = Color::ALL[(i + j) % Color::ALL.len()];
            let background = Background::ALL[(i + j) % 2];
            scenes.push(Scene { shape, color, background, layout });
        }
    }
    let cols = layouts.len() as u32;
    let rows = Shape::ALL.len() as u32;
    let cell = 64 + 4;
    let mut sheet = RgbImage::from_pixel(cols * cell * 2, rows * cell, image::Rgb([128, 128, 128]));
    for (k, s) in scenes.iter().enumerate() {
        let (c, r) = (k as u32 % cols, k as u32 / cols);
        let big = draw_scene(s, 64);
        let small = draw_scene(s, 32);
        for y in 0..64 {
            for x in 0..64 {
                sheet.put_pixel(c * cell + 2 + x, r * cell + 2 + y, *big.get_pixel(x, y));
                sheet.put_pixel((cols + c) * cell + 2 + x, r * cell + 2 + y, *small.get_pixel(x / 2, y / 2));
            }
        }
        println!("{}", s.caption());
    }
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| std::env::temp_dir().join("cliplab_synth_contact_sheet.png"), Into::into);
    sheet.save(&path)?;
    println!("contact sheet: {}", path.display());
    Ok(())
}
