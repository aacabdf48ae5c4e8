//! Shifted domains derived from a data set, for domain adaptation: the same classes seen
//! differently, with labels kept for evaluation only.

use cinder_device::{Error, Result};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::Dataset;

/// Every image of `d` colour-inverted (`255 - p`) with Gaussian noise of standard deviation
/// `noise` (in units of the full range, so `0.1` is 25.5 grey levels) added to every pixel,
/// rounded and clamped to `[0, 255]`. The noise is drawn once, from `seed`, so the derived
/// set is a fixed data set (the same for the same `d`, `noise` and `seed`). Labels are
/// kept. Returns `Err` when `noise` is negative or not finite.
pub fn inverted_with_noise(d: &Dataset, noise: f32, seed: u64) -> Result<Dataset> {
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(Error::invalid(
            "inverted_with_noise",
            format!("noise must be finite and at least 0, got {noise}"),
            &d.image_shape(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let sd = noise as f64 * 255.0;
    let images = d
        .images()
        .iter()
        .map(|&p| {
            // Box-Muller: one standard normal from two uniforms in (0, 1]
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (255.0 - p as f64 + sd * z).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    Dataset::new(images, d.labels().to_vec(), d.image_shape(), d.classes())
}

/// The side of [`texture`]'s square.
pub const TEXTURE_SIDE: usize = 256;

/// A fixed grey texture, `TEXTURE_SIDE x TEXTURE_SIDE` values in `[0, 1]` (row-major): value
/// noise, the sum of five octaves of seeded random grids (cells of 64 down to 4 pixels,
/// each octave half the amplitude of the one before) interpolated smoothly, then stretched
/// to span `[0, 1]`. The same for the same seed.
pub fn texture(seed: u64) -> Vec<f32> {
    let n = TEXTURE_SIDE;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = vec![0f32; n * n];
    let mut amp = 1.0f32;
    for cell in [64usize, 32, 16, 8, 4] {
        let g = n / cell + 1;
        let grid: Vec<f32> = (0..g * g).map(|_| rng.random::<f32>()).collect();
        for y in 0..n {
            for x in 0..n {
                let (gy, gx) = (y / cell, x / cell);
                let smooth = |f: f32| f * f * (3.0 - 2.0 * f);
                let fy = smooth((y % cell) as f32 / cell as f32);
                let fx = smooth((x % cell) as f32 / cell as f32);
                let at = |yy: usize, xx: usize| grid[yy.min(g - 1) * g + xx.min(g - 1)];
                let top = at(gy, gx) * (1.0 - fx) + at(gy, gx + 1) * fx;
                let bot = at(gy + 1, gx) * (1.0 - fx) + at(gy + 1, gx + 1) * fx;
                t[y * n + x] += amp * (top * (1.0 - fy) + bot * fy);
            }
        }
        amp *= 0.5;
    }
    let lo = t.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = t.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    t.iter().map(|v| (v - lo) / (hi - lo).max(1e-12)).collect()
}

/// MNIST-M's construction (Ganin and Lempitsky) in grey: every pixel becomes `|x - b|`,
/// with `x` the image in `[0, 1]` and `b` a patch of the same size cut from `texture` (a
/// [`texture`]) at a random place (a new place per image, drawn from `seed`), so the
/// background shows the texture and the object shows it inverted. The derived set is a
/// fixed data set (the same for the same inputs). Labels are kept. Returns `Err` for
/// images with more than one channel, sides above [`TEXTURE_SIDE`], or a texture of
/// another size.
pub fn blended_with_texture(d: &Dataset, texture: &[f32], seed: u64) -> Result<Dataset> {
    patch_map(d, texture, seed, "blended_with_texture", |x, b| {
        (x - b).abs()
    })
}

/// The image over a textured background: every pixel becomes `x + (1 - x) a b`, with `x`
/// the image in `[0, 1]`, `b` a patch cut from `texture` at a random place (a new place per
/// image, drawn from `seed`) and `a` the texture's contrast in `[0, 1]`; so black
/// background shows the texture at contrast `a` and white garment stays white. Labels are
/// kept. Returns `Err` as [`blended_with_texture`], or when `a` is outside `[0, 1]`.
pub fn over_texture(d: &Dataset, texture: &[f32], a: f32, seed: u64) -> Result<Dataset> {
    if !(0.0..=1.0).contains(&a) {
        return Err(Error::invalid(
            "over_texture",
            format!("contrast {a} outside [0, 1]"),
            &d.image_shape(),
        ));
    }
    patch_map(d, texture, seed, "over_texture", |x, b| {
        x + (1.0 - x) * a * b
    })
}

/// Applies `f(x, b)` to every pixel `x` (in `[0, 1]`) and its texture value `b`, with one
/// random patch of `texture` per image; the checks of [`blended_with_texture`].
fn patch_map(
    d: &Dataset,
    texture: &[f32],
    seed: u64,
    op: &'static str,
    f: impl Fn(f32, f32) -> f32,
) -> Result<Dataset> {
    let [c, h, w] = d.image_shape();
    if c != 1
        || h > TEXTURE_SIDE
        || w > TEXTURE_SIDE
        || texture.len() != TEXTURE_SIDE * TEXTURE_SIDE
    {
        return Err(Error::invalid(
            op,
            format!(
                "needs one-channel images of at most {TEXTURE_SIDE} pixels a side and a \
                 {TEXTURE_SIDE}x{TEXTURE_SIDE} texture, got {} texture values",
                texture.len()
            ),
            &d.image_shape(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(d.images().len());
    for i in 0..d.len() {
        let (oy, ox) = (
            rng.random_range(0..=TEXTURE_SIDE - h),
            rng.random_range(0..=TEXTURE_SIDE - w),
        );
        for (k, &p) in d.image(i).iter().enumerate() {
            let b = texture[(oy + k / w) * TEXTURE_SIDE + ox + k % w];
            images.push((f(p as f32 / 255.0, b).clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }
    Dataset::new(images, d.labels().to_vec(), d.image_shape(), d.classes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Dataset {
        Dataset::new((0..=255u8).collect(), vec![0, 1, 2, 3], [1, 8, 8], 4).unwrap()
    }

    #[test]
    fn without_noise_it_inverts_exactly() {
        let s = inverted_with_noise(&data(), 0.0, 1).unwrap();
        let want: Vec<u8> = (0..=255u8).map(|p| 255 - p).collect();
        assert_eq!(s.images(), &want[..]);
        assert_eq!(s.labels(), data().labels());
    }

    #[test]
    fn noise_has_the_stated_spread_and_is_seeded() {
        let flat = Dataset::new(vec![128; 40_000], vec![0; 625], [1, 8, 8], 1).unwrap();
        let a = inverted_with_noise(&flat, 0.1, 7).unwrap();
        assert_eq!(a, inverted_with_noise(&flat, 0.1, 7).unwrap());
        assert_ne!(a, inverted_with_noise(&flat, 0.1, 8).unwrap());
        let v: Vec<f64> = a.images().iter().map(|&p| p as f64).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((mean - 127.0).abs() < 0.5, "mean {mean}");
        assert!((sd - 25.5).abs() < 0.5, "sd {sd}");
    }

    #[test]
    fn texture_spans_the_range_and_blending_follows_the_formula() {
        let t = texture(3);
        assert_eq!(t.len(), TEXTURE_SIDE * TEXTURE_SIDE);
        assert_eq!(t, texture(3));
        let (lo, hi) = t
            .iter()
            .fold((1f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(lo == 0.0 && hi == 1.0);
        // black pixels show the patch, white ones its inverse
        let d = Dataset::new(vec![0, 255, 0, 255], vec![1], [1, 2, 2], 2).unwrap();
        let b = blended_with_texture(&d, &t, 4).unwrap();
        let px = b.images();
        assert!((px[0] as f32 + px[1] as f32 - 255.0).abs() <= 1.0 + 255.0 * 0.05);
        assert_eq!(b.labels(), &[1]);
        assert_eq!(b, blended_with_texture(&d, &t, 4).unwrap());
        let rgb = Dataset::new(vec![0; 12], vec![0], [3, 2, 2], 1).unwrap();
        assert!(blended_with_texture(&rgb, &t, 0).is_err());
        assert!(blended_with_texture(&d, &t[1..], 0).is_err());
        // over the texture: white stays white, black shows the texture at contrast 0.5
        let o = over_texture(&d, &t, 0.5, 4).unwrap();
        assert_eq!(o.images()[1], 255);
        assert!((o.images()[0] as f32 - 0.5 * px[0] as f32).abs() <= 1.0);
        assert!(over_texture(&d, &t, 1.5, 4).is_err());
    }

    #[test]
    fn bad_noise_is_an_error() {
        assert!(inverted_with_noise(&data(), -0.1, 0).is_err());
        assert!(inverted_with_noise(&data(), f32::NAN, 0).is_err());
    }
}
