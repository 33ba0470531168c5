//! Drawing a [`Figure`] with plotters: one generic function over `DrawingBackend`, run once with `SVGBackend`
//! ([`svg_of`]) and once with `BitMapBackend` ([`png_of`]), so the SVG and the PNG always show the same thing.
//!
//! Layout: the title and subtitle on top, the panels in a grid, the legend outside the plot on the right (it
//! grows taller, then wraps into more columns and widens the image). Text needs a font and plotters has no
//! system fonts here: the bundled DejaVu Sans is registered as `sans-serif` on first use.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::figure::{Figure, LegendItem, Mark, Markers, Num, Panel, GRID, INK, MUTED};
use crate::{Error, Result};

const FONT: &str = "sans-serif";
const WIDTH: u32 = 900;
const HEADER_H: u32 = 62;
const LEGEND_COL_W: u32 = 220;
const LEGEND_ROW_H: u32 = 18;

type Area<DB> = DrawingArea<DB, Shift>;
type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

static FONT_OK: OnceLock<bool> = OnceLock::new();

/// Registers the bundled DejaVu Sans as `sans-serif` (once).
fn ensure_font() -> Result<()> {
    let ok = *FONT_OK.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, include_bytes!("../../../assets/DejaVuSans.ttf"))
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid("plot: the bundled font assets/DejaVuSans.ttf cannot be read".to_string()))
    }
}

/// Where the legend's items go.
struct LegendLayout {
    cols: usize,
    /// Rows used in the tallest column.
    rows_used: usize,
    /// (column, first row, rows) of each item.
    places: Vec<(usize, usize, usize)>,
}

/// Items with a detail take two rows (text, then detail) unless the legend is long.
fn legend_item_rows(items: &[LegendItem]) -> Vec<usize> {
    let two = items.len() <= 14;
    items.iter().map(|i| if two && i.detail.is_some() { 2 } else { 1 }).collect()
}

fn rows_fitting(height: u32) -> usize {
    (height.saturating_sub(HEADER_H + 40) / LEGEND_ROW_H).max(2) as usize
}

/// Fills columns of `rows_fitting(height)` rows, never splitting an item.
fn legend_layout(items: &[LegendItem], height: u32) -> LegendLayout {
    let max_rows = rows_fitting(height);
    let mut places = Vec::with_capacity(items.len());
    let (mut col, mut row, mut rows_used) = (0usize, 0usize, 0usize);
    for n in legend_item_rows(items) {
        if row > 0 && row + n > max_rows {
            col += 1;
            row = 0;
        }
        places.push((col, row, n));
        row += n;
        rows_used = rows_used.max(row);
    }
    LegendLayout { cols: col + 1, rows_used, places }
}

/// Pixel size of a figure: the legend makes it taller (up to 760) and then wider.
fn figure_size(fig: &Figure) -> (u32, u32) {
    let rows: usize = legend_item_rows(&fig.legend).iter().sum();
    let need = HEADER_H + 40 + rows as u32 * LEGEND_ROW_H;
    let h = if need <= fig.base_h { fig.base_h } else { need.min(760) };
    let cols = legend_layout(&fig.legend, h).cols;
    (WIDTH + (cols as u32 - 1) * LEGEND_COL_W, h)
}

fn plot_err(fig: &Figure, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("plot {}: {e}", fig.chart.name()))
}

pub(super) fn svg_of(fig: &Figure) -> Result<String> {
    ensure_font()?;
    let size = figure_size(fig);
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        draw_figure(&root, fig).map_err(|e| plot_err(fig, e))?;
        root.present().map_err(|e| plot_err(fig, e))?;
    }
    Ok(s)
}

pub(super) fn png_of(fig: &Figure) -> Result<Vec<u8>> {
    use image::ImageEncoder as _;
    ensure_font()?;
    let (w, h) = figure_size(fig);
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw_figure(&root, fig).map_err(|e| plot_err(fig, e))?;
        root.present().map_err(|e| plot_err(fig, e))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&buf, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| plot_err(fig, e))?;
    Ok(png)
}

fn font(size: f64, colour: RGBColor) -> TextStyle<'static> {
    TextStyle { font: (FONT, size).into_font(), color: colour.to_backend_color(), pos: Pos::default() }
}

/// `text` cut with `…` to fit `max_w` pixels.
fn fit<DB: DrawingBackend>(
    area: &Area<DB>,
    text: &str,
    style: &TextStyle,
    max_w: u32,
) -> std::result::Result<String, DrawingAreaErrorKind<DB::ErrorType>> {
    if area.estimate_text_size(text, style)?.0 <= max_w {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0usize, chars.len());
    // Largest prefix that fits with the ellipsis.
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let t: String = chars.iter().take(mid).collect::<String>() + "…";
        if area.estimate_text_size(&t, style)?.0 <= max_w {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(chars.iter().take(lo).collect::<String>().trim_end().to_string() + "…")
}

fn draw_figure<DB: DrawingBackend>(root: &Area<DB>, fig: &Figure) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let (w, h) = root.dim_in_pixel();
    // Header: title and subtitle, cut to the width.
    let title_style = font(22.0, BLACK);
    let sub_style = font(14.0, MUTED);
    let title = fit(root, &fig.title, &title_style, w - 28)?;
    root.draw(&Text::new(title, (14, 10), title_style))?;
    let sub = fit(root, &fig.subtitle, &sub_style, w - 28)?;
    root.draw(&Text::new(sub, (14, 38), sub_style))?;

    let layout = legend_layout(&fig.legend, h);
    let legend_w = layout.cols as u32 * LEGEND_COL_W;
    let body = root.clone().shrink((0, HEADER_H), (w, h - HEADER_H));
    let (plot, legend) = body.split_horizontally(w - legend_w);
    let cells = plot.split_evenly(fig.grid);
    for (cell, panel) in cells.iter().zip(&fig.panels) {
        draw_panel(root, cell, panel)?;
    }
    draw_legend(&legend, &fig.legend, &layout)
}

fn draw_legend<DB: DrawingBackend>(area: &Area<DB>, items: &[LegendItem], layout: &LegendLayout) -> DrawResult<DB> {
    if items.is_empty() {
        return Ok(());
    }
    let (w, _) = area.dim_in_pixel();
    let row_h = LEGEND_ROW_H as i32;
    let (x0, y0) = (4i32, 10i32);
    let (x1, y1) = (w as i32 - 12, y0 + 12 + layout.rows_used as i32 * row_h);
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], WHITE.filled()))?;
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], RGBColor(0xC8, 0xC8, 0xC8).stroke_width(1)))?;
    let col_w = (x1 - x0) / layout.cols.max(1) as i32;
    let text_style = font(13.0, INK);
    let head_style = font(12.5, MUTED);
    let detail_style = font(12.0, MUTED);
    for (item, &(c, r, n)) in items.iter().zip(&layout.places) {
        let x = x0 + 8 + c as i32 * col_w;
        let y = y0 + 8 + r as i32 * row_h;
        let mid = y + row_h / 2 - 1;
        let text_x = x + 24;
        let max_w = (col_w - 32).max(20) as u32;
        match item.mark {
            Mark::Heading => {
                let t = fit(area, &item.text, &head_style, max_w + 24)?;
                area.draw(&Text::new(t, (x, y + 2), head_style.clone()))?;
                continue;
            }
            Mark::Swatch(c) => area.draw(&Rectangle::new([(x, mid - 5), (x + 16, mid + 5)], c.filled()))?,
            Mark::Line(c) => area.draw(&PathElement::new(vec![(x, mid), (x + 18, mid)], c.stroke_width(2)))?,
            Mark::Dashed(c) => {
                for s in [0, 7, 14] {
                    area.draw(&PathElement::new(vec![(x + s, mid), (x + s + 4, mid)], c.stroke_width(2)))?;
                }
            }
        }
        match &item.detail {
            None => {
                let t = fit(area, &item.text, &text_style, max_w)?;
                area.draw(&Text::new(t, (text_x, y + 2), text_style.clone()))?;
            }
            // Two rows: the text, then the detail under it.
            Some(d) if n >= 2 => {
                let t = fit(area, &item.text, &text_style, max_w)?;
                area.draw(&Text::new(t, (text_x, y + 2), text_style.clone()))?;
                let d = fit(area, d, &detail_style, max_w)?;
                area.draw(&Text::new(d, (text_x, y + row_h), detail_style.clone()))?;
            }
            // One row: the text cut short so that the whole detail fits after it.
            Some(d) => {
                let dw = area.estimate_text_size(d, &detail_style)?.0;
                let room = max_w.saturating_sub(dw + 8).max(24);
                let t = fit(area, &item.text, &text_style, room)?;
                let tw = area.estimate_text_size(&t, &text_style)?.0;
                area.draw(&Text::new(t, (text_x, y + 2), text_style.clone()))?;
                let dx = (text_x + tw as i32 + 8).max(x + col_w - 12 - dw as i32);
                area.draw(&Text::new(d.clone(), (dx, y + 3), detail_style.clone()))?;
            }
        }
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(root: &Area<DB>, area: &Area<DB>, p: &Panel) -> DrawResult<DB> {
    let custom_ticks = p.x_ticks.is_some();
    let x_label_h = match (custom_ticks, p.x_desc.is_empty()) {
        (true, true) => 26,
        (true, false) => 42,
        (false, true) => 26,
        (false, false) => 46,
    };
    let mut builder = ChartBuilder::on(area);
    builder.margin(8).margin_right(18).x_label_area_size(x_label_h).y_label_area_size(if p.y_desc.is_empty() {
        44
    } else {
        60
    });
    if !p.caption.is_empty() {
        builder.caption(&p.caption, font(15.0, INK));
    }
    let mut chart = builder.build_cartesian_2d(p.x.clone(), p.y.clone())?;
    let x_fmt = |x: &f64| p.x_num.fmt(*x);
    let y_fmt = |y: &f64| p.y_num.fmt(*y);
    {
        let mut mesh = chart.configure_mesh();
        mesh.label_style(font(12.0, INK))
            .axis_desc_style(font(13.0, INK))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(RGBColor(0x88, 0x88, 0x88))
            .y_labels(8)
            .y_label_formatter(&y_fmt)
            .x_label_formatter(&x_fmt);
        if custom_ticks {
            mesh.x_labels(0);
        } else {
            // Fewer ticks than whole numbers in the range, so that integer ticks do not fall between labels.
            let span = (p.x.end - p.x.start).max(1.0);
            let n = if p.x_num == Num::Int { (span.floor() as usize + 1).min(8) } else { 8 };
            mesh.x_labels(n.max(2));
        }
        if !p.x_desc.is_empty() {
            mesh.x_desc(p.x_desc.as_str());
        }
        if !p.y_desc.is_empty() {
            mesh.y_desc(p.y_desc.as_str());
        }
        mesh.draw()?;
    }

    if !p.bars.is_empty() {
        chart.draw_series(
            p.bars
                .iter()
                .map(|b| Rectangle::new([(b.x.start, b.y.start), (b.x.end, b.y.end)], b.colour.mix(b.alpha).filled())),
        )?;
    }
    for l in &p.lines {
        let style = ShapeStyle { color: l.colour.mix(l.alpha), filled: false, stroke_width: l.width };
        if l.dashed {
            chart.draw_series(DashedLineSeries::new(l.points.iter().copied(), 6, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(l.points.iter().copied(), style))?;
        }
        match &l.markers {
            Markers::None => {}
            Markers::Filled(r) => {
                chart.draw_series(l.points.iter().map(|&pt| Circle::new(pt, *r, l.colour.mix(l.alpha).filled())))?;
            }
            Markers::Hollow(r) => {
                chart.draw_series(l.points.iter().map(|&pt| Circle::new(pt, *r, WHITE.filled())))?;
                chart.draw_series(l.points.iter().map(|&pt| Circle::new(pt, *r, l.colour.stroke_width(2))))?;
            }
            Markers::Sized(rs) => {
                chart.draw_series(
                    l.points
                        .iter()
                        .zip(rs)
                        .filter(|(_, &r)| r > 0)
                        .map(|(&pt, &r)| Circle::new(pt, r, l.colour.filled())),
                )?;
            }
        }
    }
    for n in &p.notes {
        let style = font(11.5, n.colour).pos(Pos::new(n.anchor.0, n.anchor.1));
        let (px, py) = chart.backend_coord(&n.at);
        let dy = if matches!(n.anchor.1, VPos::Bottom) { -3 } else { 0 };
        root.draw(&Text::new(n.text.clone(), (px + n.offset.0, py + dy + n.offset.1), style))?;
    }
    if let Some(ticks) = &p.x_ticks {
        let style = font(12.0, INK).pos(Pos::new(HPos::Center, VPos::Top));
        for (x, text) in ticks {
            let (px, py) = chart.backend_coord(&(*x, p.y.start));
            root.draw(&Text::new(text.clone(), (px, py + 6), style.clone()))?;
        }
    }
    if let Some(msg) = &p.empty {
        let (px, py) = chart.backend_coord(&((p.x.start + p.x.end) / 2.0, (p.y.start + p.y.end) / 2.0));
        root.draw(&Text::new(msg.clone(), (px, py), font(14.0, MUTED).pos(Pos::new(HPos::Center, VPos::Center))))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plots::figure::palette;
    use crate::report::plots::Chart;

    #[test]
    fn legend_grows() {
        let mut fig =
            crate::report::plots::charts::base_figure(Chart::LossSteps, String::new(), Vec::new(), (1, 1), Vec::new());
        assert_eq!(figure_size(&fig), (WIDTH, 520));
        fig.legend = (0..51).map(|i| LegendItem::new(Mark::Swatch(palette(i)), format!("run {i}"))).collect();
        let (w, h) = figure_size(&fig);
        assert!(h <= 760 && w > WIDTH, "{w}x{h}");
        let layout = legend_layout(&fig.legend, h);
        assert_eq!(layout.cols, 2);
        assert!(layout.places.iter().all(|&(c, r, n)| c < 2 && r + n <= rows_fitting(h)));
    }
}
