//! CPU transforms applied to each image (as f32 in `[0, 1]`, `[C, H, W]`) in the loader's
//! prefetch thread, drawn from a generator seeded per (seed, epoch, batch) so that a run is
//! reproducible.

use std::fmt;
use std::sync::Arc;

use cinder_device::{Error, Result};
use rand::RngExt;
use rand::rngs::StdRng;

/// The function a [`Transform::Lambda`] runs: one image (`[C, H, W]` f32, in place), its
/// shape and the batch's generator.
pub type LambdaFn = dyn Fn(&mut [f32], [usize; 3], &mut StdRng) -> Result<()> + Send + Sync;

/// A user transform with a name (PyTorch's `transforms.Lambda`): see [`Transform::lambda`].
#[derive(Clone)]
pub struct Lambda {
    name: String,
    f: Arc<LambdaFn>,
}

impl Lambda {
    /// The name given to [`Transform::lambda`].
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Lambda {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lambda({:?})", self.name)
    }
}

impl PartialEq for Lambda {
    /// Two lambdas are equal when they share the same function (clones of one another).
    fn eq(&self, other: &Lambda) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.f, &other.f)
    }
}

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
    /// A user function (see [`Transform::lambda`]).
    Lambda(Lambda),
}

/// A standard normal sample (Box-Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

fn bad(msg: String, shape: [usize; 3]) -> Error {
    Error::invalid("Transform", msg, &shape)
}

impl Transform {
    /// A named user transform: `f(image, shape, rng)` changes one `[C, H, W]` image in
    /// place. An `Err` it returns, or a panic, ends the loader's epoch with an `Err` (see
    /// [`crate::DataLoader::epoch`]).
    pub fn lambda(
        name: impl Into<String>,
        f: impl Fn(&mut [f32], [usize; 3], &mut StdRng) -> Result<()> + Send + Sync + 'static,
    ) -> Transform {
        Transform::Lambda(Lambda {
            name: name.into(),
            f: Arc::new(f),
        })
    }

    /// Applies the transform to one image `img` of `shape` `[C, H, W]` in place.
    ///
    /// Returns `Err(InvalidArgument)`, leaving `img` unchanged, when `img.len()` is not
    /// `C * H * W`; for `Normalize`, when `mean` or `std` has neither one value nor `C`, or
    /// a `std` is zero, negative or not finite, or a `mean` is not finite; for
    /// `HorizontalFlip`, when `p` is outside `[0, 1]`; for `GaussianNoise`, when `std` is
    /// negative or not finite. A `Lambda` returns what its function returns.
    pub fn apply(&self, img: &mut [f32], shape: [usize; 3], rng: &mut StdRng) -> Result<()> {
        let [c, h, w] = shape;
        if img.len() != c * h * w {
            return Err(bad(
                format!("an image of {} values is not of shape {shape:?}", img.len()),
                shape,
            ));
        }
        match self {
            Transform::Normalize { mean, std } => {
                for (name, v) in [("mean", mean), ("std", std)] {
                    if v.len() != 1 && v.len() != c {
                        return Err(bad(
                            format!(
                                "Normalize: {} {name} values for {c} channels (give 1 or {c})",
                                v.len()
                            ),
                            shape,
                        ));
                    }
                }
                if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
                    return Err(bad(format!("Normalize: mean {m} is not finite"), shape));
                }
                if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                    return Err(bad(
                        format!("Normalize: std {s} is not a positive finite number"),
                        shape,
                    ));
                }
                for ch in 0..c {
                    let m = if mean.len() == 1 { mean[0] } else { mean[ch] };
                    let s = if std.len() == 1 { std[0] } else { std[ch] };
                    for v in &mut img[ch * h * w..(ch + 1) * h * w] {
                        *v = (*v - m) / s;
                    }
                }
            }
            Transform::RandomCrop { padding } => {
                let p = *padding;
                if p == 0 {
                    return Ok(());
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
                if !(0.0..=1.0).contains(p) {
                    return Err(bad(
                        format!("HorizontalFlip: p = {p} is outside [0, 1]"),
                        shape,
                    ));
                }
                if rng.random_range(0.0..1.0) < *p && w > 0 {
                    for row in img.chunks_exact_mut(w) {
                        row.reverse();
                    }
                }
            }
            Transform::GaussianNoise { std } => {
                if !(std.is_finite() && *std >= 0.0) {
                    return Err(bad(
                        format!("GaussianNoise: std {std} is not a non-negative finite number"),
                        shape,
                    ));
                }
                for v in img.iter_mut() {
                    *v += std * normal(rng);
                }
            }
            Transform::Lambda(l) => (l.f)(img, shape, rng)?,
        }
        Ok(())
    }
}
