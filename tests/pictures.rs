//! The examples' pictures: image grids (with titles, row labels and captions in the bundled
//! font), class-coloured scatter plots with a legend of class names, and curves are PNG
//! files that decode to the expected size and pixels.

#[path = "../examples/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use ab_glyph::Font;
use cinder::data::{cifar, mnist};
use common::picture::{Canvas, GRID_BG, GRID_TEXT, Grid, fit, font, line_height, text_width};
use common::plot::{COLORS, LINE_COLORS, Panel, Series, curves, scatter};

fn decode(path: &Path) -> (usize, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("cinder-pictures-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The pixels of the rectangle [x0, x1) x [y0, y1) of an RGB image `w` wide.
fn pixels(px: &[u8], w: usize, (x0, y0, x1, y1): (usize, usize, usize, usize)) -> Vec<[u8; 3]> {
    let mut v = Vec::new();
    for y in y0..y1 {
        for x in x0..x1 {
            let i = (y * w + x) * 3;
            v.push([px[i], px[i + 1], px[i + 2]]);
        }
    }
    v
}

/// How many of `v` are within 40 of `c` in every channel.
fn near(v: &[[u8; 3]], c: [u8; 3]) -> usize {
    v.iter()
        .filter(|p| (0..3).all(|k| p[k].abs_diff(c[k]) <= 40))
        .count()
}

#[test]
fn the_bundled_font_has_every_class_name() {
    let f = font();
    for name in mnist::FASHION_CLASSES.iter().chain(&cifar::CLASSES) {
        for ch in name.chars() {
            assert_ne!(f.glyph_id(ch).0, 0, "no glyph for {ch:?} of {name:?}");
        }
        // legible: about 6 pixels a character at the grids' size, one line tall
        let w = text_width(name, GRID_TEXT);
        assert!(
            w > 3.0 * name.len() as f32 && w < 9.0 * name.len() as f32,
            "{name}: {w}"
        );
    }
    assert!((12..=16).contains(&line_height(GRID_TEXT)));
    // a name too wide for its cell is cut with an ellipsis
    assert_eq!(fit("Ankle boot", GRID_TEXT, 200.0), "Ankle boot");
    let cut = fit("Ankle boot", GRID_TEXT, 40.0);
    assert!(
        cut.ends_with('\u{2026}') && text_width(&cut, GRID_TEXT) <= 40.0,
        "{cut}"
    );
}

#[test]
fn text_is_drawn_where_and_as_wide_as_it_says() {
    let mut c = Canvas::new(200, 40, [0, 0, 0]);
    let w = c.text(10, 10, "Trouser", 16.0, [255, 255, 255]);
    assert!((w - text_width("Trouser", 16.0)).abs() < 1e-3);
    let (lit_x, lit_y): (Vec<usize>, Vec<usize>) = (0..40)
        .flat_map(|y| (0..200).map(move |x| (x, y)))
        .filter(|&(x, y)| c.get(x, y)[0] > 128)
        .unzip();
    assert!(lit_x.len() > 60, "{} pixels lit", lit_x.len());
    let (x0, x1) = (*lit_x.iter().min().unwrap(), *lit_x.iter().max().unwrap());
    let (y0, y1) = (*lit_y.iter().min().unwrap(), *lit_y.iter().max().unwrap());
    assert!(
        (10..=12).contains(&x0) && (x1 as f32) <= 10.0 + w + 1.0,
        "x {x0}..{x1}, w {w}"
    );
    assert!(y0 >= 10 && y1 < 10 + line_height(16.0), "y {y0}..{y1}");
    // anti-aliased: some pixels are neither black nor white
    assert!((0..40).any(|y| (0..200).any(|x| (40..200).contains(&c.get(x, y)[0]))));
}

#[test]
fn grids_place_images_titles_row_labels_and_captions() {
    let dir = TempDir::new("grid");
    // three 28x28 images, 2 per row, scale 2: cells of 60 x 60 pixels
    let mut imgs = vec![0f32; 3 * 784];
    imgs[784..2 * 784].fill(1.0);
    let p = dir.0.join("grid.png");
    Grid::new(&imgs, [1, 28, 28], 2).draw().save(&p).unwrap();
    let (w, h, px) = decode(&p);
    assert_eq!((w, h), (120, 120));
    let at = |x: usize, y: usize| pixels(&px, w, (x, y, x + 1, y + 1))[0];
    // the second image (white) starts at x = 60 + 2, y = 2; the first is black
    assert_eq!(at(64, 10), [255, 255, 255]);
    assert_eq!(at(10, 10), [0, 0, 0]);
    assert_eq!(at(0, 0), GRID_BG);
    assert_eq!(at(119, 119), GRID_BG);

    // a title, row labels and two-line captions in the caption colours
    let lh = line_height(GRID_TEXT);
    let rows = ["Sneaker".to_string(), "Bag".to_string()];
    let caps = vec![
        vec![
            ("Trouser".into(), [110, 230, 110]),
            ("Dress".into(), [255, 120, 120])
        ];
        3
    ];
    let p = dir.0.join("captioned.png");
    Grid::new(&imgs, [1, 28, 28], 2)
        .title("a title")
        .row_labels(&rows)
        .captions(&caps)
        .draw()
        .save(&p)
        .unwrap();
    let (w, h, px) = decode(&p);
    let left = text_width("Sneaker", GRID_TEXT).ceil() as usize + 10;
    let top = lh + 8;
    let cell_h = 60 + 2 * lh;
    assert_eq!((w, h), (left + 120, top + 2 * cell_h));
    // the title's text is light on the dark background, above the grid
    assert!(near(&pixels(&px, w, (0, 0, w, top)), [235, 235, 235]) > 10);
    // the row labels left of the images
    assert!(near(&pixels(&px, w, (0, top, left, top + 60)), [210, 210, 210]) > 10);
    assert!(
        near(
            &pixels(&px, w, (0, top + cell_h, left, top + cell_h + 60)),
            [210; 3]
        ) > 5
    );
    // under the first image: its true class in green, then its prediction in red
    let (cx, cy) = (left + 2, top + 2 + 56 + 1);
    let line1 = pixels(&px, w, (cx, cy, cx + 56, cy + lh));
    let line2 = pixels(&px, w, (cx, cy + lh, cx + 56, cy + 2 * lh));
    assert!(near(&line1, [110, 230, 110]) > 10 && near(&line1, [255, 120, 120]) == 0);
    assert!(near(&line2, [255, 120, 120]) > 10 && near(&line2, [110, 230, 110]) == 0);
    // the images are where the margins put them
    let at = |x: usize, y: usize| pixels(&px, w, (x, y, x + 1, y + 1))[0];
    assert_eq!(at(left + 60 + 4, top + 10), [255, 255, 255]);
}

#[test]
fn scatter_plots_colour_points_by_class_and_name_the_classes() {
    let dir = TempDir::new("scatter");
    // points of class 3 at (0, 0) and of class 7 at (1, 1), many of each
    let p = dir.0.join("scatter.png");
    let xy: Vec<f32> = (0..400)
        .flat_map(|i| if i % 2 == 0 { [0.0, 0.0] } else { [1.0, 1.0] })
        .collect();
    let labels: Vec<u8> = (0..200).flat_map(|_| [3u8, 7]).collect();
    let names: Vec<String> = mnist::FASHION_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    scatter(&p, "a scatter", ("z1", "z2"), &xy, &labels, &names, 300).unwrap();
    let (w, h, px) = decode(&p);
    assert_eq!((w, h), (470, 300));
    // (0, 0) is at the plot's lower left, (1, 1) at its upper right
    let lower_left = pixels(&px, w, (60, 150, 160, 258));
    let upper_right = pixels(&px, w, (160, 30, 300, 150));
    // (200 translucent points on one spot add up to the class's colour)
    assert!(near(&lower_left, COLORS[3]) > 5);
    assert!(near(&lower_left, COLORS[7]) == 0);
    assert!(near(&upper_right, COLORS[7]) > 5);
    assert!(near(&upper_right, COLORS[3]) == 0);
    // the legend: a disc of every class's colour and dark text beside it
    let legend = pixels(&px, w, (300, 0, 470, 300));
    for c in COLORS {
        assert!(near(&legend, c) > 20, "no legend disc of {c:?}");
    }
    assert!(near(&pixels(&px, w, (330, 0, 470, 300)), [40, 40, 40]) > 200);
}

#[test]
fn curves_have_a_panel_per_chart_and_a_legend_under_each() {
    let dir = TempDir::new("curves");
    let p = dir.0.join("curves.png");
    let panel = |title: &str| Panel {
        title: title.into(),
        y_label: "loss".into(),
        series: vec![
            Series::per_epoch("training", [2.0, 1.5, 1.2, f64::NAN, 1.0]),
            Series::per_epoch("validation", [2.1, 1.7, 1.6, 1.5, 1.5]),
        ],
    };
    curves(&p, "epoch", &[panel("a"), panel("b")]).unwrap();
    let (w, h, px) = decode(&p);
    assert_eq!(w, 2 * 540);
    let legend_h = line_height(15.0) + 6 + 8;
    assert_eq!(h, 400 + legend_h);
    for x0 in [0, 540] {
        let chart = pixels(&px, w, (x0, 0, x0 + 540, 400));
        let legend = pixels(&px, w, (x0, 400, x0 + 540, h));
        for c in &LINE_COLORS[..2] {
            assert!(near(&chart, *c) > 100, "no curve of {c:?}");
            assert!(near(&legend, *c) > 20, "no legend entry of {c:?}");
        }
        assert!(near(&legend, [40, 40, 40]) > 20, "no legend text");
    }
    // a single epoch and an empty chart are drawn too
    let one = Panel {
        title: "one".into(),
        y_label: "accuracy".into(),
        series: vec![Series::per_epoch("", [0.5])],
    };
    let none = Panel {
        title: "none".into(),
        y_label: "accuracy".into(),
        series: vec![],
    };
    curves(&p, "epoch", &[one, none]).unwrap();
    let (w, h, _) = decode(&p);
    assert_eq!((w, h), (1080, 400));
}
