//! Charts: per-epoch curves of losses and accuracies, and class-coloured scatter plots with
//! a legend of class names. plotters lays out the axes, ticks and series; it draws on a
//! [`Canvas`] through [`CanvasBackend`], whose text is set in the bundled font by
//! [`rasterize`] (no system font libraries), and the canvas is saved as a PNG.

use std::convert::Infallible;
use std::path::Path;

use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

use super::picture::{Canvas, line_height, rasterize, text_width};

/// Ten colours that stand apart on white, one per class (from Sasha Trubetskoy's list of
/// 20 distinct colours).
pub const COLORS: [[u8; 3]; 10] = [
    [230, 25, 75],
    [60, 180, 75],
    [154, 99, 36],
    [67, 99, 216],
    [245, 130, 49],
    [145, 30, 180],
    [66, 212, 244],
    [240, 50, 230],
    [128, 128, 0],
    [0, 0, 117],
];

/// The colours of a chart's curves, in order.
pub const LINE_COLORS: [[u8; 3]; 4] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
];

/// A plotters backend that draws on a [`Canvas`], with text in the bundled font.
pub struct CanvasBackend<'a>(pub &'a mut Canvas);

impl DrawingBackend for CanvasBackend<'_> {
    type ErrorType = Infallible;

    fn get_size(&self) -> (u32, u32) {
        (self.0.w as u32, self.0.h as u32)
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Infallible>> {
        Ok(())
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Infallible>> {
        Ok(())
    }

    fn draw_pixel(
        &mut self,
        (x, y): BackendCoord,
        c: BackendColor,
    ) -> Result<(), DrawingErrorKind<Infallible>> {
        let (r, g, b) = c.rgb;
        self.0.blend(x as i64, y as i64, [r, g, b], c.alpha as f32);
        Ok(())
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        (x, y): BackendCoord,
    ) -> Result<(), DrawingErrorKind<Infallible>> {
        let c = style.color();
        if c.alpha == 0.0 {
            return Ok(());
        }
        let px = style.size() as f32;
        let (w, h) = (text_width(text, px).round() as i64, px.round() as i64);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Center => -w / 2,
            HPos::Right => -w,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let (r, g, b) = c.rgb;
        rasterize(text, px, |gx, gy, a| {
            let (tx, ty) = trans.transform((gx + dx) as i32, (gy + dy) as i32);
            self.0.blend(
                (x + tx) as i64,
                (y + ty) as i64,
                [r, g, b],
                a * c.alpha as f32,
            );
        });
        Ok(())
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Infallible>> {
        let px = style.size() as f32;
        Ok((text_width(text, px).ceil() as u32, px.ceil() as u32))
    }
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Turns a plotters error into `anyhow`'s.
fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e:?}")
}

/// The font family named to plotters (the backend sets every text in the bundled font).
const FONT: &str = "sans-serif";

/// One curve: a name for the legend (none when empty) and its values at x = 1, 2, ...
/// (epochs, components); values that are not finite are left out.
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// The values at x = 1, 2, ...
    pub values: Vec<f64>,
}

impl Series {
    /// The curve `label` through `values[i]` at x = i + 1.
    pub fn per_epoch(label: &str, values: impl IntoIterator<Item = f64>) -> Series {
        Series {
            label: label.to_string(),
            values: values.into_iter().collect(),
        }
    }

    /// The points with a finite value.
    fn finite(&self) -> Vec<(i32, f64)> {
        (1..)
            .zip(self.values.iter().copied())
            .filter(|(_, y)| y.is_finite())
            .collect()
    }
}

/// One chart of a curves picture: its title, its y axis' name and its curves (their
/// legend goes under the chart).
pub struct Panel {
    /// The chart's title.
    pub title: String,
    /// The y axis' description.
    pub y_label: String,
    /// The curves.
    pub series: Vec<Series>,
}

/// The range `lo..hi` of `v` with 5% room on each side (a unit range around a single
/// value; `0..1` when there is none).
fn padded(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.05
    };
    (lo - pad, hi + pad)
}

/// Tick labels: at most 4 significant digits, no trailing zeros.
fn tick(v: f64) -> String {
    if v == 0.0 || v.abs() < 1e-12 {
        return "0".into();
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-3..5).contains(&mag) {
        return format!("{v:.1e}");
    }
    let decimals = (3 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The size of the legends' text.
const LEGEND_TEXT: f32 = 15.0;

/// Where the legend entries of `series` (those with a label) go in a strip `width` pixels
/// wide: (the series' index, x, row).
fn legend_layout(series: &[Series], width: usize) -> Vec<(usize, usize, usize)> {
    let (mut x, mut row) = (0usize, 0usize);
    let mut entries = Vec::new();
    for (i, s) in series
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.label.is_empty())
    {
        let w = 30 + text_width(&s.label, LEGEND_TEXT).ceil() as usize + 22;
        if x > 0 && x + w > width {
            (x, row) = (0, row + 1);
        }
        entries.push((i, x, row));
        x += w;
    }
    entries
}

/// Draws `panels` side by side, each 540 pixels wide and 400 high plus its legend, with x
/// described as `x_label` (whole numbers: epochs, components), and writes the PNG to
/// `path`. Returns `Err` naming the file when it cannot be written.
pub fn curves(path: &Path, x_label: &str, panels: &[Panel]) -> anyhow::Result<()> {
    let (pw, ph) = (540usize, 400usize);
    let inner = pw - 2 * 16;
    let lh = line_height(LEGEND_TEXT) + 6;
    let layouts: Vec<_> = panels
        .iter()
        .map(|p| legend_layout(&p.series, inner))
        .collect();
    let rows = layouts
        .iter()
        .map(|l| l.last().map_or(0, |e| e.2 + 1))
        .max()
        .unwrap_or(0);
    let h = ph + rows * lh + if rows > 0 { 8 } else { 0 };
    let mut canvas = Canvas::new(pw * panels.len().max(1), h, [255, 255, 255]);
    {
        let root = CanvasBackend(&mut canvas).into_drawing_area();
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(&areas) {
            let (chart, _) = area.split_vertically(ph as u32);
            draw_panel(&chart, x_label, panel)?;
        }
        root.present().map_err(err)?;
    }
    for (k, (panel, entries)) in panels.iter().zip(&layouts).enumerate() {
        for &(i, x, row) in entries {
            let color = LINE_COLORS[i % LINE_COLORS.len()];
            let (x, y) = (k * pw + 16 + x, ph + 4 + row * lh);
            let mid = y + lh / 2;
            canvas.fill_rect(x, mid - 1, 24, 3, color);
            canvas.disc(x as f32 + 12.0, mid as f32 + 0.5, 3.5, color);
            let label = &panel.series[i].label;
            let ty = mid - line_height(LEGEND_TEXT) / 2;
            canvas.text(x + 30, ty, label, LEGEND_TEXT, [40; 3]);
        }
    }
    canvas.save(path)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    x_label: &str,
    panel: &Panel,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let all: Vec<(i32, f64)> = panel.series.iter().flat_map(|s| s.finite()).collect();
    let last = panel
        .series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(1) as i32;
    let (y0, y1) = padded(all.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(74)
        .build_cartesian_2d(0..last + 1, y0..y1)
        .map_err(err)?;
    let x_tick = |x: &i32| {
        if (1..=last).contains(x) {
            x.to_string()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(&panel.y_label)
        .x_labels((last as usize + 2).min(12))
        .x_label_formatter(&x_tick)
        .y_label_formatter(&|y| tick(*y))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(242, 242, 242))
        .max_light_lines(1)
        .draw()
        .map_err(err)?;
    for (k, s) in panel.series.iter().enumerate() {
        let color = rgb(LINE_COLORS[k % LINE_COLORS.len()]);
        let pts = s.finite();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    Ok(())
}

/// A scatter plot of 2-D points (`xy` flat, two per point) coloured by `labels`, titled
/// `title` with the axes `axes`, and a legend of `classes` (one name per label) on the
/// right; written as a PNG `size` + 170 pixels wide and `size` high. The axes span the 1st
/// to 99th percentiles of each coordinate (a few outliers do not squeeze the rest).
pub fn scatter(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    xy: &[f32],
    labels: &[u8],
    classes: &[String],
    size: usize,
) -> anyhow::Result<()> {
    let legend_w = 170usize;
    let mut canvas = Canvas::new(size + legend_w, size, [255, 255, 255]);
    let (xs, ys): (Vec<f32>, Vec<f32>) = xy.chunks_exact(2).map(|p| (p[0], p[1])).unzip();
    let bounds = |v: &[f32]| {
        let mut s: Vec<f64> = v
            .iter()
            .filter(|x| x.is_finite())
            .map(|&x| x as f64)
            .collect();
        s.sort_by(f64::total_cmp);
        if s.is_empty() {
            return (0.0, 1.0);
        }
        let lo = s[s.len() / 100];
        let hi = s[(s.len() * 99 / 100).min(s.len() - 1)];
        padded([lo, hi].into_iter())
    };
    let ((x0, x1), (y0, y1)) = (bounds(&xs), bounds(&ys));
    {
        let root = CanvasBackend(&mut canvas).into_drawing_area();
        let (plot, _) = root.split_horizontally(size as u32);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .bold_line_style(RGBColor(220, 220, 220))
            .light_line_style(RGBColor(245, 245, 245))
            .max_light_lines(1)
            .draw()
            .map_err(err)?;
        let inside = |x: f64, y: f64| (x0..=x1).contains(&x) && (y0..=y1).contains(&y);
        chart
            .draw_series(
                xs.iter()
                    .zip(&ys)
                    .zip(labels)
                    .map(|((&x, &y), &l)| (x as f64, y as f64, l))
                    .filter(|&(x, y, _)| inside(x, y))
                    .map(|(x, y, l)| {
                        let c = rgb(COLORS[l as usize % COLORS.len()]);
                        Circle::new((x, y), 2, c.mix(0.75).filled())
                    }),
            )
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    // the legend: a disc in the class's colour, then its name
    let row = 24usize;
    let top = size.saturating_sub(row * classes.len()) / 2;
    for (k, name) in classes.iter().enumerate() {
        let y = top + row * k;
        let c = COLORS[k % COLORS.len()];
        canvas.disc(size as f32 + 14.0, (y + row / 2) as f32, 6.0, c);
        let ty = y + row / 2 - line_height(LEGEND_TEXT) / 2;
        canvas.text(size + 28, ty, name, LEGEND_TEXT, [40; 3]);
    }
    canvas.save(path)
}
