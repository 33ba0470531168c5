//! The description of a chart: what to draw, in plain numbers, before any backend sees it.
//!
//! A [`Figure`] is a title, a subtitle, a legend and a grid of [`Panel`]s; a panel has its axes (ranges,
//! descriptions, tick format) and its series: [`Bar`]s, [`Line`]s and [`Note`]s. The colours live here too: the
//! fixed colours of "before", gains, losses and reference lines, and [`palette`], the one colour of each run.

use std::ops::Range;

use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::RGBColor;

use super::Chart;

pub(super) const BEFORE: RGBColor = RGBColor(0x9A, 0x9A, 0x9A);
pub(super) const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);
pub(super) const MUTED: RGBColor = RGBColor(0x5F, 0x5F, 0x5F);
pub(super) const GRID: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);
pub(super) const GAIN: RGBColor = RGBColor(0x1B, 0x9E, 0x3E);
pub(super) const LOSS: RGBColor = RGBColor(0xD2, 0x2B, 0x2B);
pub(super) const SAME: RGBColor = RGBColor(0xB4, 0xB4, 0xB4);
pub(super) const REFERENCE: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// Everything one chart draws.
pub(super) struct Figure {
    pub(super) chart: Chart,
    pub(super) title: String,
    pub(super) subtitle: String,
    pub(super) legend: Vec<LegendItem>,
    /// Height before the legend asks for more.
    pub(super) base_h: u32,
    /// Panel grid (rows, cols), filled row by row.
    pub(super) grid: (usize, usize),
    pub(super) panels: Vec<Panel>,
}

#[derive(Clone, Copy)]
pub(super) enum Mark {
    /// Section heading: no mark, muted text.
    Heading,
    Swatch(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
}

pub(super) struct LegendItem {
    pub(super) mark: Mark,
    pub(super) text: String,
    /// Shown after the text, never cut (e.g. the ECE).
    pub(super) detail: Option<String>,
}

impl LegendItem {
    pub(super) fn new(mark: Mark, text: impl Into<String>) -> Self {
        Self { mark, text: text.into(), detail: None }
    }
    pub(super) fn heading(text: impl Into<String>) -> Self {
        Self::new(Mark::Heading, text)
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Num {
    /// Fixed decimals.
    Dec(usize),
    /// Whole numbers (ticks that are not are left blank).
    Int,
    /// Percent of a fraction.
    Pct,
}

impl Num {
    pub(super) fn fmt(self, x: f64) -> String {
        match self {
            Num::Dec(d) => format!("{x:.d$}"),
            Num::Int => {
                if (x - x.round()).abs() < 1e-6 {
                    format!("{}", x.round() as i64)
                } else {
                    String::new()
                }
            }
            Num::Pct => format!("{:.0}%", 100.0 * x),
        }
    }
}

pub(super) struct Bar {
    pub(super) x: Range<f64>,
    pub(super) y: Range<f64>,
    pub(super) colour: RGBColor,
    pub(super) alpha: f64,
}

#[derive(Clone)]
pub(super) enum Markers {
    None,
    Filled(u32),
    Hollow(u32),
    /// One radius per point (0 = none).
    Sized(Vec<u32>),
}

pub(super) struct Line {
    pub(super) points: Vec<(f64, f64)>,
    pub(super) colour: RGBColor,
    pub(super) alpha: f64,
    pub(super) width: u32,
    pub(super) dashed: bool,
    pub(super) markers: Markers,
}

impl Line {
    pub(super) fn solid(points: Vec<(f64, f64)>, colour: RGBColor, width: u32) -> Self {
        Self { points, colour, alpha: 1.0, width, dashed: false, markers: Markers::None }
    }
}

/// Text at a data point (moved by `offset` pixels).
pub(super) struct Note {
    pub(super) at: (f64, f64),
    pub(super) text: String,
    pub(super) anchor: (HPos, VPos),
    pub(super) colour: RGBColor,
    pub(super) offset: (i32, i32),
}

impl Note {
    pub(super) fn new(at: (f64, f64), text: String, anchor: (HPos, VPos), colour: RGBColor) -> Self {
        Self { at, text, anchor, colour, offset: (0, 0) }
    }
    pub(super) fn offset(mut self, dx: i32, dy: i32) -> Self {
        self.offset = (dx, dy);
        self
    }
}

pub(super) struct Panel {
    pub(super) caption: String,
    pub(super) x: Range<f64>,
    pub(super) y: Range<f64>,
    pub(super) x_desc: String,
    pub(super) y_desc: String,
    /// `None`: automatic ticks formatted with `x_num`; `Some`: these labels at these x (no automatic ones).
    pub(super) x_ticks: Option<Vec<(f64, String)>>,
    pub(super) x_num: Num,
    pub(super) y_num: Num,
    pub(super) bars: Vec<Bar>,
    pub(super) lines: Vec<Line>,
    pub(super) notes: Vec<Note>,
    /// Drawn in the middle when there is nothing else to draw.
    pub(super) empty: Option<String>,
}

impl Panel {
    pub(super) fn new(caption: impl Into<String>, x: Range<f64>, y: Range<f64>) -> Self {
        Self {
            caption: caption.into(),
            x,
            y,
            x_desc: String::new(),
            y_desc: String::new(),
            x_ticks: None,
            x_num: Num::Dec(1),
            y_num: Num::Dec(1),
            bars: Vec::new(),
            lines: Vec::new(),
            notes: Vec::new(),
            empty: None,
        }
    }
    pub(super) fn desc(mut self, x: &str, y: &str) -> Self {
        self.x_desc = x.to_string();
        self.y_desc = y.to_string();
        self
    }
}

pub(super) fn fmt_count(n: usize) -> String {
    let s = n.to_string();
    // Digits before the first comma: 1 to 3.
    let head = match s.len() % 3 {
        0 => 3.min(s.len()),
        r => r,
    };
    let mut out = s[..head].to_string();
    for group in s.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(&String::from_utf8_lossy(group));
    }
    out
}

/// `[lo, hi]` padded by 5% (a flat range gets ±0.5, or ±5%).
pub(super) fn padded(lo: f64, hi: f64) -> Range<f64> {
    let span = hi - lo;
    if span <= f64::EPSILON * hi.abs().max(1.0) {
        let d = (hi.abs() * 0.05).max(0.5);
        return (lo - d)..(hi + d);
    }
    (lo - span * 0.05)..(hi + span * 0.05)
}

/// Decimals for ticks over a span.
pub(super) fn decimals_for(span: f64) -> usize {
    if span >= 20.0 {
        0
    } else if span >= 2.0 {
        1
    } else if span >= 0.2 {
        2
    } else {
        3
    }
}

pub(super) fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

// --- colours ---------------------------------------------------------------------------------------------------

/// The colour of run number `run_index` (the same in every chart): ten hand-picked, well separated colours, then
/// colours spread around the hue circle (golden angle) with varying lightness, all distinct for the first
/// several hundred indices. Never grey (grey means "before").
pub fn palette(run_index: usize) -> RGBColor {
    const FIXED: [RGBColor; 10] = [
        RGBColor(0x1F, 0x77, 0xB4), // blue
        RGBColor(0xFF, 0x7F, 0x0E), // orange
        RGBColor(0x2C, 0xA0, 0x2C), // green
        RGBColor(0xD6, 0x27, 0x28), // red
        RGBColor(0x94, 0x67, 0xBD), // purple
        RGBColor(0x8C, 0x56, 0x4B), // brown
        RGBColor(0xE3, 0x77, 0xC2), // pink
        RGBColor(0x17, 0xBE, 0xCF), // cyan
        RGBColor(0xBC, 0xBD, 0x22), // olive
        RGBColor(0x7B, 0x41, 0x73), // plum
    ];
    if let Some(&c) = FIXED.get(run_index) {
        return c;
    }
    let j = run_index - FIXED.len();
    let hue = (15.0 + j as f64 * 137.507_764) % 360.0;
    let sat = [0.72, 0.55, 0.85][j % 3];
    let light = [0.42, 0.55, 0.33][(j / 3) % 3];
    hsl(hue, sat, light)
}

/// [`palette`] as the `#RRGGBB` string the SVG uses.
pub fn palette_hex(run_index: usize) -> String {
    hex(palette(run_index))
}

/// `#RRGGBB` of a colour (upper case, as plotters writes it in SVG).
pub fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// Mixes a colour with white (`t` = 0: the colour, 1: white).
pub(super) fn tint(c: RGBColor, t: f64) -> RGBColor {
    let m = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * t).round().clamp(0.0, 255.0) as u8;
    RGBColor(m(c.0), m(c.1), m(c.2))
}

/// HSL (hue in degrees, saturation and lightness in [0, 1]) to RGB.
fn hsl(h: f64, s: f64, l: f64) -> RGBColor {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = (h % 360.0) / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(to(r), to(g), to(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_is_distinct_and_not_grey() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let c = palette(i);
            assert!(seen.insert((c.0, c.1, c.2)), "colour {i} repeats");
            let (mx, mn) = (c.0.max(c.1).max(c.2), c.0.min(c.1).min(c.2));
            assert!(mx - mn > 40, "colour {i} is greyish: {}", hex(c));
        }
        assert_eq!(palette_hex(0), "#1F77B4");
    }

    #[test]
    fn hsl_primaries() {
        assert_eq!(hsl(0.0, 1.0, 0.5), RGBColor(255, 0, 0));
        assert_eq!(hsl(120.0, 1.0, 0.5), RGBColor(0, 255, 0));
        assert_eq!(hsl(240.0, 1.0, 0.5), RGBColor(0, 0, 255));
    }

    #[test]
    fn counts_have_commas() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(1234), "1,234");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
    }
}
