//! PNG pictures: an RGB canvas, text in the bundled font (DejaVu Sans, `assets/fonts`), and
//! grids of images with an optional title, row labels and captions.

use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};

/// The bundled font: a Latin-1 subset of DejaVu Sans (`assets/fonts/README.md`).
pub const FONT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans-subset.ttf"
));

/// The bundled font, parsed once.
pub fn font() -> &'static FontRef<'static> {
    static F: OnceLock<FontRef<'static>> = OnceLock::new();
    F.get_or_init(|| {
        FontRef::try_from_slice(FONT).expect("the bundled font is a valid TrueType file")
    })
}

/// The width in pixels of `text` at the size `px` (advances and kerning). Sizes are
/// ab_glyph's: `px` is the height of the font's ascent to descent, in pixels.
pub fn text_width(text: &str, px: f32) -> f32 {
    let f = font().as_scaled(PxScale::from(px));
    let mut w = 0.0;
    let mut prev = None;
    for ch in text.chars() {
        let g = f.glyph_id(ch);
        if let Some(p) = prev {
            w += f.kern(p, g);
        }
        w += f.h_advance(g);
        prev = Some(g);
    }
    w
}

/// Rasterizes `text` at the size `px`: calls `pixel(x, y, coverage)` for every pixel a
/// glyph covers, (x, y) relative to the top-left corner of the line (the baseline is at
/// the font's ascent). Glyphs sit at their advances, bearings and kerning.
pub fn rasterize(text: &str, px: f32, mut pixel: impl FnMut(i64, i64, f32)) {
    let scale = PxScale::from(px);
    let f = font().as_scaled(scale);
    let mut pen = 0.0;
    let mut prev = None;
    for ch in text.chars() {
        let id = f.glyph_id(ch);
        if let Some(p) = prev {
            pen += f.kern(p, id);
        }
        let glyph = id.with_scale_and_position(scale, point(pen, f.ascent()));
        if let Some(outline) = f.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline
                .draw(|gx, gy, a| pixel(b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64, a));
        }
        pen += f.h_advance(id);
        prev = Some(id);
    }
}

/// `text`, cut and ended with an ellipsis when it is wider than `max` pixels at `px`.
pub fn fit(text: &str, px: f32, max: f32) -> String {
    if text_width(text, px) <= max {
        return text.to_string();
    }
    let mut t: String = text.to_string();
    while !t.is_empty() && text_width(&format!("{t}\u{2026}"), px) > max {
        t.pop();
    }
    format!("{}\u{2026}", t.trim_end())
}

/// The height of a line of text at `px` (ascent, descent and line gap), rounded up.
pub fn line_height(px: f32) -> usize {
    let f = font().as_scaled(PxScale::from(px));
    (f.ascent() - f.descent() + f.line_gap()).ceil() as usize
}

/// An RGB canvas.
pub struct Canvas {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    /// `h * w * 3` bytes.
    pub rgb: Vec<u8>,
}

impl Canvas {
    /// A canvas filled with `bg`.
    pub fn new(w: usize, h: usize, bg: [u8; 3]) -> Canvas {
        Canvas {
            w,
            h,
            rgb: bg.iter().copied().cycle().take(w * h * 3).collect(),
        }
    }

    /// Sets one pixel (ignored outside the canvas).
    pub fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.w && y < self.h {
            let i = (y * self.w + x) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// The pixel at (x, y).
    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Mixes `c` into the pixel at (x, y) with weight `a` in [0, 1] (ignored outside).
    pub fn blend(&mut self, x: i64, y: i64, c: [u8; 3], a: f32) {
        if x < 0 || y < 0 || x as usize >= self.w || y as usize >= self.h {
            return;
        }
        let (x, y) = (x as usize, y as usize);
        let old = self.get(x, y);
        let a = a.clamp(0.0, 1.0);
        let mix = |o: u8, n: u8| (o as f32 * (1.0 - a) + n as f32 * a).round() as u8;
        self.set(x, y, [0, 1, 2].map(|k| mix(old[k], c[k])));
    }

    /// Fills the rectangle of width `w` and height `h` whose top-left corner is (x, y).
    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// Fills a disc of radius `r` around (cx, cy), its edge anti-aliased.
    pub fn disc(&mut self, cx: f32, cy: f32, r: f32, c: [u8; 3]) {
        let (x0, x1) = ((cx - r - 1.0).floor() as i64, (cx + r + 1.0).ceil() as i64);
        let (y0, y1) = ((cy - r - 1.0).floor() as i64, (cy + r + 1.0).ceil() as i64);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                self.blend(x, y, c, r + 0.5 - d);
            }
        }
    }

    /// Draws `text` at the size `px` in `color`, its line's top-left corner at (x, y)
    /// (anti-aliased over what is there). Returns the text's width in pixels.
    pub fn text(&mut self, x: usize, y: usize, text: &str, px: f32, color: [u8; 3]) -> f32 {
        rasterize(text, px, |gx, gy, a| {
            self.blend(x as i64 + gx, y as i64 + gy, color, a)
        });
        text_width(text, px)
    }

    /// Draws a `[C, H, W]` image (C = 1 or 3, values mapped from `[lo, hi]` to 0-255) with
    /// its top-left corner at (x, y), each pixel `scale` x `scale`.
    #[allow(clippy::too_many_arguments)]
    pub fn image(
        &mut self,
        x: usize,
        y: usize,
        img: &[f32],
        shape: [usize; 3],
        lo: f32,
        hi: f32,
        scale: usize,
    ) {
        let [c, h, w] = shape;
        let to_u8 = |v: f32| (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8;
        for yy in 0..h {
            for xx in 0..w {
                let px = if c >= 3 {
                    [0, 1, 2].map(|k| to_u8(img[(k * h + yy) * w + xx]))
                } else {
                    [to_u8(img[yy * w + xx]); 3]
                };
                for dy in 0..scale {
                    for dx in 0..scale {
                        self.set(x + xx * scale + dx, y + yy * scale + dy, px);
                    }
                }
            }
        }
    }

    /// Writes the canvas as an RGB PNG, through a temp file and a rename. Returns `Err`
    /// naming the file when it cannot be written.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("png.tmp");
        let write = || -> anyhow::Result<()> {
            let f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let mut enc = png::Encoder::new(f, self.w as u32, self.h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()?.write_image_data(&self.rgb)?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::anyhow!("{}: {e}", path.display())
        })
    }
}

/// A caption: lines of text with their colours, drawn under an image.
pub type Caption = Vec<(String, [u8; 3])>;

/// The size of the text in grids, in pixels per em.
pub const GRID_TEXT: f32 = 12.0;

/// Background of the grids.
pub const GRID_BG: [u8; 3] = [24, 24, 24];

/// A grid of images, `cols` per row, with an optional title line, labels left of the rows
/// and captions under the images.
pub struct Grid<'a> {
    images: &'a [f32],
    shape: [usize; 3],
    cols: usize,
    range: (f32, f32),
    scale: usize,
    title: Option<&'a str>,
    row_labels: Option<&'a [String]>,
    captions: Option<&'a [Caption]>,
}

impl<'a> Grid<'a> {
    /// `images` holds `n` images of `shape` back to back, values in [0, 1]; `cols` per row,
    /// each pixel 2 x 2.
    pub fn new(images: &'a [f32], shape: [usize; 3], cols: usize) -> Grid<'a> {
        Grid {
            images,
            shape,
            cols,
            range: (0.0, 1.0),
            scale: 2,
            title: None,
            row_labels: None,
            captions: None,
        }
    }

    /// The values shown as black and white.
    pub fn range(mut self, lo: f32, hi: f32) -> Self {
        self.range = (lo, hi);
        self
    }

    /// Each image pixel `scale` x `scale`.
    pub fn scale(mut self, scale: usize) -> Self {
        self.scale = scale.max(1);
        self
    }

    /// A line of text above the grid.
    pub fn title(mut self, title: &'a str) -> Self {
        self.title = Some(title);
        self
    }

    /// A label left of each row (light grey; extra labels are ignored).
    pub fn row_labels(mut self, labels: &'a [String]) -> Self {
        self.row_labels = Some(labels);
        self
    }

    /// A caption under each image (images without one get none).
    pub fn captions(mut self, captions: &'a [Caption]) -> Self {
        self.captions = Some(captions);
        self
    }

    /// Draws the grid.
    pub fn draw(&self) -> Canvas {
        let per: usize = self.shape.iter().product();
        let n = self.images.len() / per.max(1);
        let cols = self.cols.max(1).min(n.max(1));
        let rows = n.div_ceil(cols).max(1);
        let lh = line_height(GRID_TEXT);
        let lines = self
            .captions
            .map_or(0, |c| c.iter().map(Vec::len).max().unwrap_or(0));
        let (iw, ih) = (self.shape[2] * self.scale, self.shape[1] * self.scale);
        let (cw, ch) = (iw + 4, ih + 4 + lines * lh);
        let left = self.row_labels.map_or(0, |labels| {
            labels
                .iter()
                .take(rows)
                .map(|l| text_width(l, GRID_TEXT).ceil() as usize)
                .max()
                .unwrap_or(0)
                + 10
        });
        let top = if self.title.is_some() { lh + 8 } else { 0 };
        let mut width = left + cols * cw;
        if let Some(t) = self.title {
            width = width.max(text_width(t, GRID_TEXT).ceil() as usize + 12);
        }
        let mut c = Canvas::new(width, top + rows * ch, GRID_BG);
        if let Some(t) = self.title {
            c.text(6, 4, t, GRID_TEXT, [235, 235, 235]);
        }
        if let Some(labels) = self.row_labels {
            for (r, l) in labels.iter().take(rows).enumerate() {
                let y = top + r * ch + 2 + ih / 2 - lh / 2;
                c.text(5, y, l, GRID_TEXT, [210, 210, 210]);
            }
        }
        for i in 0..n {
            let (x, y) = (left + (i % cols) * cw + 2, top + (i / cols) * ch + 2);
            c.image(
                x,
                y,
                &self.images[i * per..(i + 1) * per],
                self.shape,
                self.range.0,
                self.range.1,
                self.scale,
            );
            if let Some(cap) = self.captions.and_then(|caps| caps.get(i)) {
                for (k, (text, color)) in cap.iter().enumerate() {
                    let t = fit(text, GRID_TEXT, iw as f32);
                    c.text(x, y + ih + 1 + k * lh, &t, GRID_TEXT, *color);
                }
            }
        }
        c
    }
}
