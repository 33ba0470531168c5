//! Scenes (one, two or three flat-coloured shapes on a plain background), their captions, and drawing them.

use image::{Rgb, RgbImage};
use rand::Rng;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------------------------
// Scenes
// ---------------------------------------------------------------------------------------------------------------

/// The shape drawn in a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Cross,
    Ring,
    Stripes,
    Diamond,
}

impl Shape {
    /// Every shape, in a fixed order.
    pub const ALL: [Shape; 7] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Cross,
        Shape::Ring,
        Shape::Stripes,
        Shape::Diamond,
    ];

    /// The noun phrase for one of them ("circle", "striped tile").
    pub fn noun(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
            Shape::Stripes => "striped tile",
            Shape::Diamond => "diamond",
        }
    }

    /// The noun phrase for several of them ("circles", "striped tiles").
    pub fn plural(self) -> &'static str {
        match self {
            Shape::Circle => "circles",
            Shape::Square => "squares",
            Shape::Triangle => "triangles",
            Shape::Cross => "crosses",
            Shape::Ring => "rings",
            Shape::Stripes => "striped tiles",
            Shape::Diamond => "diamonds",
        }
    }

    /// Whether the point `(u, v)`, in the shape's unit box (`[-1, 1]²`, `v` pointing down), is inside it.
    fn contains(self, u: f32, v: f32) -> bool {
        match self {
            Shape::Circle => u * u + v * v <= 1.0,
            Shape::Square => u.abs() <= 0.9 && v.abs() <= 0.9,
            // Apex at the top, base at v = 0.95 as wide as the box.
            Shape::Triangle => (-1.0..=0.95).contains(&v) && u.abs() <= (v + 1.0) / 1.95,
            Shape::Cross => {
                (u.abs() <= 0.3 && v.abs() <= 1.0) || (v.abs() <= 0.3 && u.abs() <= 1.0)
            }
            Shape::Ring => {
                let r2 = u * u + v * v;
                (0.55 * 0.55..=1.0).contains(&r2)
            }
            // Three horizontal bars with two gaps, 1.6 wide and 1.8 high.
            Shape::Stripes => {
                u.abs() <= 0.8 && v.abs() <= 0.9 && ((v + 0.9) / 0.36).floor() as i32 % 2 == 0
            }
            Shape::Diamond => u.abs() + v.abs() <= 1.0,
        }
    }
}

/// The colour of the shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
}

impl Color {
    /// Every colour, in a fixed order.
    pub const ALL: [Color; 6] = [
        Color::Red,
        Color::Green,
        Color::Blue,
        Color::Yellow,
        Color::Purple,
        Color::Orange,
    ];

    /// The caption word.
    pub fn word(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Yellow => "yellow",
            Color::Purple => "purple",
            Color::Orange => "orange",
        }
    }

    /// The pixel value. Saturated and far apart from each other and from both backgrounds.
    pub fn rgb(self) -> Rgb<u8> {
        Rgb(match self {
            Color::Red => [220, 30, 30],
            Color::Green => [30, 170, 50],
            Color::Blue => [30, 80, 230],
            Color::Yellow => [245, 215, 20],
            Color::Purple => [150, 50, 190],
            Color::Orange => [250, 130, 10],
        })
    }
}

/// The plain background of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    Light,
    Dark,
}

impl Background {
    /// Both backgrounds.
    pub const ALL: [Background; 2] = [Background::Light, Background::Dark];

    /// The caption word ("light", "dark").
    pub fn word(self) -> &'static str {
        match self {
            Background::Light => "light",
            Background::Dark => "dark",
        }
    }

    /// The pixel value (neutral grey, so that no shape colour is confused with it).
    pub fn rgb(self) -> Rgb<u8> {
        Rgb(match self {
            Background::Light => [225, 225, 225],
            Background::Dark => [35, 35, 35],
        })
    }
}

/// Where a single shape sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    Center,
    Left,
    Right,
    Top,
    Bottom,
}

impl Position {
    /// Every position, in a fixed order.
    pub const ALL: [Position; 5] = [
        Position::Center,
        Position::Left,
        Position::Right,
        Position::Top,
        Position::Bottom,
    ];

    /// The caption phrase ("in the middle", "on the left", ...).
    pub fn phrase(self) -> &'static str {
        match self {
            Position::Center => "in the middle",
            Position::Left => "on the left",
            Position::Right => "on the right",
            Position::Top => "at the top",
            Position::Bottom => "at the bottom",
        }
    }
}

/// How many shapes a scene has and where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One shape at a position.
    Single(Position),
    /// Two shapes side by side.
    Pair,
    /// Three shapes: two above, one below.
    Trio,
}

impl Layout {
    /// Every layout, in a fixed order.
    pub fn all() -> Vec<Layout> {
        Position::ALL
            .iter()
            .map(|&p| Layout::Single(p))
            .chain([Layout::Pair, Layout::Trio])
            .collect()
    }

    /// The number of shapes drawn.
    pub fn count(self) -> usize {
        match self {
            Layout::Single(_) => 1,
            Layout::Pair => 2,
            Layout::Trio => 3,
        }
    }

    /// Centres and radius of the shapes, as fractions of the image side.
    fn placements(self) -> (&'static [(f32, f32)], f32) {
        match self {
            Layout::Single(Position::Center) => (&[(0.5, 0.5)], 0.34),
            Layout::Single(Position::Left) => (&[(0.27, 0.5)], 0.24),
            Layout::Single(Position::Right) => (&[(0.73, 0.5)], 0.24),
            Layout::Single(Position::Top) => (&[(0.5, 0.27)], 0.24),
            Layout::Single(Position::Bottom) => (&[(0.5, 0.73)], 0.24),
            Layout::Pair => (&[(0.26, 0.5), (0.74, 0.5)], 0.22),
            Layout::Trio => (&[(0.27, 0.29), (0.73, 0.29), (0.5, 0.73)], 0.2),
        }
    }
}

/// What one generated image shows: `layout.count()` equal shapes of one colour on a plain background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scene {
    pub shape: Shape,
    pub color: Color,
    pub background: Background,
    pub layout: Layout,
}

/// Number of caption templates [`Scene::describe`] knows (template 0 is [`Scene::caption`]).
pub const CAPTION_TEMPLATES: usize = 8;

impl Scene {
    /// A uniformly random shape and colour and background; single shapes are more common than two or three.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Scene {
        let shape = Shape::ALL[rng.random_range(0..Shape::ALL.len())];
        let color = Color::ALL[rng.random_range(0..Color::ALL.len())];
        let background = Background::ALL[rng.random_range(0..Background::ALL.len())];
        let layout = match rng.random_range(0..10u32) {
            0..=5 => Layout::Single(Position::ALL[rng.random_range(0..Position::ALL.len())]),
            6 | 7 => Layout::Pair,
            _ => Layout::Trio,
        };
        Scene {
            shape,
            color,
            background,
            layout,
        }
    }

    /// Every possible scene, in a fixed order.
    pub fn all() -> Vec<Scene> {
        let layouts = Layout::all();
        let mut out = Vec::new();
        for &shape in &Shape::ALL {
            for &color in &Color::ALL {
                for &background in &Background::ALL {
                    for &layout in &layouts {
                        out.push(Scene {
                            shape,
                            color,
                            background,
                            layout,
                        });
                    }
                }
            }
        }
        out
    }

    /// The canonical caption, e.g. "a red circle in the middle on a light background".
    pub fn caption(&self) -> String {
        self.describe(0)
    }

    /// The caption in template `template` (taken modulo [`CAPTION_TEMPLATES`]), e.g.
    /// "there are three blue rings here on a dark background". Different scenes always get different captions
    /// from the same template.
    pub fn describe(&self, template: usize) -> String {
        let color = self.color.word();
        let (things, be) = match self.layout {
            Layout::Single(pos) => {
                let noun = self.shape.noun();
                let article = if color.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                (format!("{article} {color} {noun} {}", pos.phrase()), "is")
            }
            Layout::Pair => (format!("two {color} {}", self.shape.plural()), "are"),
            Layout::Trio => (format!("three {color} {}", self.shape.plural()), "are"),
        };
        let bg = self.background.word();
        match template % CAPTION_TEMPLATES {
            0 => format!("{things} on a {bg} background"),
            1 => format!("a drawing of {things} on a {bg} background"),
            2 => format!("there {be} {things} here on a {bg} background"),
            3 => format!("a picture of {things} against a {bg} background"),
            4 => format!("a {bg} background with {things}"),
            5 => format!("a simple {bg} image showing {things}"),
            6 => format!("an image of {things} on a {bg} background"),
            _ => format!("{things} drawn on a {bg} background"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------------------------------------------

/// Draws `scene` as a `size`×`size` image: flat colours, no anti-aliasing (a pixel is inside a shape when its
/// centre is). Takes well under a millisecond at 64×64.
pub fn draw_scene(scene: &Scene, size: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(size, size, scene.background.rgb());
    let fill = scene.color.rgb();
    let side = size as f32;
    let (centres, radius) = scene.layout.placements();
    let r = radius * side;
    if r <= 0.0 {
        return img;
    }
    for &(fx, fy) in centres {
        let (cx, cy) = (fx * side, fy * side);
        // Pixels whose centre can fall inside the unit box around (cx, cy).
        let x0 = (cx - r - 0.5).floor().max(0.0) as u32;
        let y0 = (cy - r - 0.5).floor().max(0.0) as u32;
        let x1 = ((cx + r + 0.5).ceil() as u32).min(size);
        let y1 = ((cy + r + 0.5).ceil() as u32).min(size);
        for y in y0..y1 {
            let v = (y as f32 + 0.5 - cy) / r;
            for x in x0..x1 {
                let u = (x as f32 + 0.5 - cx) / r;
                if scene.shape.contains(u, v) {
                    img.put_pixel(x, y, fill);
                }
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_fit_their_unit_box() {
        // Nothing is drawn outside [-1, 1]², which draw_scene's bounding box relies on.
        for shape in Shape::ALL {
            for i in 0..=100 {
                let t = -1.5 + 3.0 * i as f32 / 100.0;
                for edge in [-1.01f32, 1.01] {
                    assert!(!shape.contains(edge, t), "{shape:?} at ({edge}, {t})");
                    assert!(!shape.contains(t, edge), "{shape:?} at ({t}, {edge})");
                }
            }
        }
    }
}
