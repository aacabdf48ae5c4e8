//! The examples' pictures: image grids and class-coloured scatter plots are PNG files that
//! decode to the expected size and pixels.

#[path = "../examples/common/mod.rs"]
mod common;

use common::generative::{COLORS, scatter};
use common::picture::grid;

fn decode(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn grid_and_scatter_pngs_decode_with_the_expected_sizes() {
    let dir = std::env::temp_dir().join(format!("cinder_pictures_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // three 28x28 images, 2 per row, scale 2: cells of 58 x 58 pixels
    let mut imgs = vec![0f32; 3 * 784];
    imgs[784..2 * 784].fill(1.0);
    let p = dir.join("grid.png");
    grid(&imgs, [1, 28, 28], 2, (0.0, 1.0), 2, None)
        .save(&p)
        .unwrap();
    let (w, h, px) = decode(&p);
    assert_eq!((w, h), (116, 116));
    let at = |x: usize, y: usize| px[(y * w as usize + x) * 3..][..3].to_vec();
    // the second image (white) starts at x = 58 + 1, y = 1; the first is black
    assert_eq!(at(60, 10), [255, 255, 255]);
    assert_eq!(at(10, 10), [0, 0, 0]);

    // points of class 3 at (0, 0) and of class 7 at (1, 1)
    let p = dir.join("scatter.png");
    let xy: Vec<f32> = (0..200)
        .flat_map(|i| if i % 2 == 0 { [0.0, 0.0] } else { [1.0, 1.0] })
        .collect();
    let labels: Vec<u8> = (0..100).flat_map(|_| [3u8, 7]).collect();
    scatter(&xy, &labels, 200, &p).unwrap();
    let (w, h, px) = decode(&p);
    assert_eq!((w, h), (200, 214));
    let at = |x: usize, y: usize| px[(y * w as usize + x) * 3..][..3].to_vec();
    // (0, 0) is drawn at the bottom-left corner, (1, 1) at the top-right, 6 pixels in,
    // under the 14-pixel legend
    assert_eq!(at(6, 14 + 194), COLORS[3].to_vec());
    assert_eq!(at(194, 14 + 6), COLORS[7].to_vec());
    assert_eq!(at(100, 110), vec![255, 255, 255]);
    std::fs::remove_dir_all(&dir).unwrap();
}
