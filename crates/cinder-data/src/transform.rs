//! CPU transforms applied to each image (as f32 in `[0, 1]`, `[C, H, W]`) in the loader's
//! prefetch thread, drawn from a generator seeded per (seed, epoch, batch) so that a run is
//! reproducible.

use rand::RngExt;
use rand::rngs::StdRng;

/// One step of the per-image pipeline (after the conversion to f32 in `[0, 1]`).
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// `(x - mean[c]) / std[c]` per channel (one value applies to every channel).
    Normalize {
        /// Per-channel means.
        mean: Vec<f32>,
        /// Per-channel standard deviations.
        std: Vec<f32>,
    },
    /// Zero-pad by `padding` on every side, then crop back to the original size at a random
    /// offset (the CIFAR augmentation).
    RandomCrop {
        /// Padding on each side.
        padding: usize,
    },
    /// Mirror left-right with probability `p`.
    HorizontalFlip {
        /// Probability of flipping.
        p: f32,
    },
    /// Add `N(0, std^2)` noise to every pixel (denoising autoencoders).
    GaussianNoise {
        /// Standard deviation.
        std: f32,
    },
}

/// A standard normal sample (Box-Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

impl Transform {
    /// Applies the transform to one image `img` of `shape` `[C, H, W]` in place.
    pub fn apply(&self, img: &mut [f32], shape: [usize; 3], rng: &mut StdRng) {
        let [c, h, w] = shape;
        match self {
            Transform::Normalize { mean, std } => {
                for ch in 0..c {
                    let m = mean.get(ch).or(mean.first()).copied().unwrap_or(0.0);
                    let s = std.get(ch).or(std.first()).copied().unwrap_or(1.0);
                    for v in &mut img[ch * h * w..(ch + 1) * h * w] {
                        *v = (*v - m) / s;
                    }
                }
            }
            Transform::RandomCrop { padding } => {
                let p = *padding;
                if p == 0 {
                    return;
                }
                let dy = rng.random_range(0..=2 * p) as isize - p as isize;
                let dx = rng.random_range(0..=2 * p) as isize - p as isize;
                let src = img.to_vec();
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let (sy, sx) = (y as isize + dy, x as isize + dx);
                            let inside =
                                sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w;
                            img[(ch * h + y) * w + x] = if inside {
                                src[(ch * h + sy as usize) * w + sx as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
            Transform::HorizontalFlip { p } => {
                if rng.random_range(0.0..1.0) < *p {
                    for row in img.chunks_exact_mut(w) {
                        row.reverse();
                    }
                }
            }
            Transform::GaussianNoise { std } => {
                for v in img.iter_mut() {
                    *v += std * normal(rng);
                }
            }
        }
    }
}
