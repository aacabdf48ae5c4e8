//! PNG pictures: grids of images with optional captions drawn in a 3x5 pixel digit font.

use std::path::Path;

/// An RGB canvas.
pub struct Canvas {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    /// `h * w * 3` bytes.
    pub rgb: Vec<u8>,
}

/// 3x5 glyphs of the digits 0-9, one row of 3 bits per entry (MSB left).
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 3, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 2, 2, 2],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

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

    /// Draws a number in the digit font at (x, y), each font pixel `scale` wide.
    pub fn number(&mut self, x: usize, y: usize, n: usize, color: [u8; 3], scale: usize) {
        for (k, ch) in n.to_string().bytes().enumerate() {
            let g = DIGITS[(ch - b'0') as usize];
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                self.set(
                                    x + (k * 4 + col) * scale + dx,
                                    y + row * scale + dy,
                                    color,
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes the canvas as an RGB PNG, through a temp file and a rename.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("png.tmp");
        {
            let f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let mut enc = png::Encoder::new(f, self.w as u32, self.h as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header()?.write_image_data(&self.rgb)?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// A caption: numbers with their colours, drawn left to right.
pub type Caption = Vec<(usize, [u8; 3])>;

/// A grid of images, `cols` per row, each with an optional caption of (number, colour)
/// pairs drawn under it. `images` holds `n` images of `shape` back to back.
pub fn grid(
    images: &[f32],
    shape: [usize; 3],
    cols: usize,
    range: (f32, f32),
    scale: usize,
    captions: Option<&[Caption]>,
) -> Canvas {
    let per: usize = shape.iter().product();
    let n = images.len() / per.max(1);
    let cols = cols.max(1).min(n.max(1));
    let rows = n.div_ceil(cols).max(1);
    let cap_h = if captions.is_some() { 7 * 2 } else { 0 };
    let (cw, ch) = (shape[2] * scale + 2, shape[1] * scale + 2 + cap_h);
    let mut c = Canvas::new(cols * cw, rows * ch, [24, 24, 24]);
    for i in 0..n {
        let (x, y) = ((i % cols) * cw + 1, (i / cols) * ch + 1);
        c.image(
            x,
            y,
            &images[i * per..(i + 1) * per],
            shape,
            range.0,
            range.1,
            scale,
        );
        if let Some(caps) = captions {
            let mut cx = x;
            for &(num, color) in &caps[i] {
                c.number(cx, y + shape[1] * scale + 2, num, color, 2);
                cx += (num.to_string().len() * 4 + 2) * 2;
            }
        }
    }
    c
}
