//! RealNVP (Dinh, Sohl-Dickstein and Bengio, "Density estimation using Real NVP", 2017): a
//! normalizing flow of affine coupling layers with checkerboard and channel masks, the 2x2
//! squeeze and the multi-scale architecture that factors out half of the dimensions after
//! every scale but the last; uniform dequantization of 8-bit pixels and the logit transform
//! in front, so that [`RealNvp::bits_per_dim`] is the discrete data's bits per dimension.
//!
//! Every op is an existing `Tensor` op (convolutions, `exp`, `tanh`, `log`, `narrow`,
//! `concat`, `reshape`, `permute`): the model has no kernel of its own.

use cinder_autograd::Tensor;
use cinder_device::{Device, Error, Result};
use cinder_nn::{Conv2d, Conv2dConfig, Init, Module, Path};

const LN_2PI: f32 = 1.837_877_1;
const LN_2: f32 = std::f32::consts::LN_2;

/// Options of a [`RealNvp`].
#[derive(Clone, Debug, PartialEq)]
pub struct RealNvpConfig {
    /// Image shape `[C, H, W]` of the input.
    pub image: [usize; 3],
    /// Scales (at least 1). Every scale but the last runs `couplings` checkerboard
    /// couplings, a squeeze (`[C, H, W] -> [4C, H/2, W/2]`), `couplings` channel couplings
    /// and factors out half of the channels; the last runs `couplings` checkerboard
    /// couplings. `H` and `W` must be divisible by `2^(scales - 1)`.
    pub scales: usize,
    /// Coupling layers of each kind per scale (at least 1); the masks alternate parity.
    pub couplings: usize,
    /// Channels of the hidden layers of every `s`/`t` network (at least 1).
    pub hidden: usize,
    /// Residual blocks (two 3x3 convolutions each) per `s`/`t` network (0 or more).
    pub blocks: usize,
    /// The logit transform's `alpha`: `y = logit(alpha + (1 - 2 alpha) x)`, in `(0, 0.5)`.
    pub alpha: f32,
}

impl RealNvpConfig {
    /// The Fashion-MNIST flow of the `flow` example: `[1, 28, 28]`, 2 scales, 3 couplings
    /// of each kind, `hidden` channels and `blocks` residual blocks per `s`/`t` network,
    /// `alpha = 0.05`.
    pub fn fashion_mnist(hidden: usize, blocks: usize) -> RealNvpConfig {
        RealNvpConfig {
            image: [1, 28, 28],
            scales: 2,
            couplings: 3,
            hidden,
            blocks,
            alpha: 0.05,
        }
    }
}

/// The `s`/`t` network of a coupling: `conv 3x3 - relu`, `blocks` residual blocks
/// (`h + conv(relu(conv(h)))`, then relu), and a 3x3 convolution to `2 * out` channels
/// (the raw scale, then the shift) whose weights and bias start at zero, so that every
/// coupling, and the flow, starts as the identity.
struct StNet {
    conv_in: Conv2d,
    blocks: Vec<(Conv2d, Conv2d)>,
    conv_out: Conv2d,
}

impl StNet {
    fn new(path: &Path, cin: usize, hidden: usize, blocks: usize, out: usize) -> Result<StNet> {
        let same = Conv2dConfig::default().padding(1);
        let conv_in = Conv2d::new(&path.pp("conv_in"), cin, hidden, 3, same)?;
        let blocks = (0..blocks)
            .map(|i| {
                let b = path.pp(&format!("block{i}"));
                Ok((
                    Conv2d::new(&b.pp("conv1"), hidden, hidden, 3, same)?,
                    Conv2d::new(&b.pp("conv2"), hidden, hidden, 3, same)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let conv_out = Conv2d::new(&path.pp("conv_out"), hidden, 2 * out, 3, same)?;
        conv_out.weight.set_data(&conv_out.weight.zeros_like()?)?;
        if let Some(b) = &conv_out.bias {
            b.set_data(&b.zeros_like()?)?;
        }
        Ok(StNet {
            conv_in,
            blocks,
            conv_out,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(x)?.relu()?;
        for (a, b) in &self.blocks {
            h = h.add(&b.forward(&a.forward(&h)?.relu()?)?)?.relu()?;
        }
        self.conv_out.forward(&h)
    }
}

/// Which part of the input a coupling passes through unchanged (and conditions on).
enum Mask {
    /// Pixels where `(i + j) % 2 == parity`, in every channel: `mask` is 1 there
    /// (`[1, 1, H, W]`), `inv = 1 - mask`.
    Checker { mask: Tensor, inv: Tensor },
    /// The first half of the channels (`first`) or the second.
    Channel { first: bool },
}

/// An affine coupling: `y = x_b + (1 - b) (x exp(s) + t)` with `s = scale * tanh(raw)`,
/// `(raw, t)` from the `s`/`t` network of the part `x_b` that passes unchanged.
struct Coupling {
    net: StNet,
    /// The learned per-channel scale of `tanh`, `[1, C', 1, 1]` (`C'` the channels that
    /// are transformed), initialized to 1.
    scale: Tensor,
    mask: Mask,
}

impl Coupling {
    fn checker(
        path: &Path,
        dev: &Device,
        [c, h, w]: [usize; 3],
        parity: usize,
        cfg: &RealNvpConfig,
    ) -> Result<Coupling> {
        let m: Vec<f32> = (0..h * w)
            .map(|k| ((k / w + k % w) % 2 == parity) as u8 as f32)
            .collect();
        let mask = Tensor::from_slice(dev, &m, &[1, 1, h, w])?;
        let inv = mask.rsub_scalar(1.0)?;
        Ok(Coupling {
            net: StNet::new(&path.pp("net"), c + 1, cfg.hidden, cfg.blocks, c)?,
            scale: path.var("scale", &[1, c, 1, 1], Init::Constant(1.0))?,
            mask: Mask::Checker { mask, inv },
        })
    }

    fn channel(path: &Path, c: usize, first: bool, cfg: &RealNvpConfig) -> Result<Coupling> {
        let half = c / 2;
        Ok(Coupling {
            net: StNet::new(&path.pp("net"), half, cfg.hidden, cfg.blocks, half)?,
            scale: path.var("scale", &[1, half, 1, 1], Init::Constant(1.0))?,
            mask: Mask::Channel { first },
        })
    }

    /// `(s, t)` from the conditioning input.
    fn st(&self, cond: &Tensor, out: usize) -> Result<(Tensor, Tensor)> {
        let o = self.net.forward(cond)?;
        let s = o.narrow(1, 0, out)?.tanh()?.mul(&self.scale)?;
        Ok((s, o.narrow(1, out, out)?))
    }

    fn checker_input(x_b: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let s = x_b.shape();
        let m = mask.broadcast_to(&[s[0], 1, s[2], s[3]])?;
        Tensor::concat(&[x_b, &m], 1)
    }

    /// `(y, log|det dy/dx|)` per example.
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let c = x.shape()[1];
        match &self.mask {
            Mask::Checker { mask, inv } => {
                let x_b = x.mul(mask)?;
                let (s, t) = self.st(&Coupling::checker_input(&x_b, mask)?, c)?;
                let (s, t) = (s.mul(inv)?, t.mul(inv)?);
                let y = x_b.add(&x.mul(&s.exp()?)?.add(&t)?.mul(inv)?)?;
                Ok((y, s.sum_axes(&[1, 2, 3], false)?))
            }
            Mask::Channel { first } => {
                let half = c / 2;
                let (a, b) = (x.narrow(1, 0, half)?, x.narrow(1, half, half)?);
                let (cond, other) = if *first { (&a, &b) } else { (&b, &a) };
                let (s, t) = self.st(cond, half)?;
                let moved = other.mul(&s.exp()?)?.add(&t)?;
                let y = if *first {
                    Tensor::concat(&[cond, &moved], 1)?
                } else {
                    Tensor::concat(&[&moved, cond], 1)?
                };
                Ok((y, s.sum_axes(&[1, 2, 3], false)?))
            }
        }
    }

    /// `x` from `y`: `x = y_b + (1 - b) (y - t) exp(-s)`, with `(s, t)` computed from the
    /// same unchanged part as in [`Coupling::forward`].
    fn inverse(&self, y: &Tensor) -> Result<Tensor> {
        let c = y.shape()[1];
        match &self.mask {
            Mask::Checker { mask, inv } => {
                let y_b = y.mul(mask)?;
                let (s, t) = self.st(&Coupling::checker_input(&y_b, mask)?, c)?;
                let (s, t) = (s.mul(inv)?, t.mul(inv)?);
                y_b.add(&y.sub(&t)?.mul(&s.neg()?.exp()?)?.mul(inv)?)
            }
            Mask::Channel { first } => {
                let half = c / 2;
                let (a, b) = (y.narrow(1, 0, half)?, y.narrow(1, half, half)?);
                let (cond, moved) = if *first { (&a, &b) } else { (&b, &a) };
                let (s, t) = self.st(cond, half)?;
                let other = moved.sub(&t)?.mul(&s.neg()?.exp()?)?;
                if *first {
                    Tensor::concat(&[cond, &other], 1)
                } else {
                    Tensor::concat(&[&other, cond], 1)
                }
            }
        }
    }
}

enum Step {
    Coupling(Box<Coupling>),
    /// `[C, H, W] -> [4C, H/2, W/2]`.
    Squeeze,
    /// Factors out the first half of the channels; `numel` is its size per example and
    /// `shape` its `[C/2, H, W]`.
    Split {
        numel: usize,
        shape: [usize; 3],
    },
}

/// `[N, C, H, W] -> [N, 4C, H/2, W/2]`: each 2x2 block of a channel becomes 4 channels
/// (channel `4c + 2di + dj` holds pixel `(2i + di, 2j + dj)` of channel `c`).
fn squeeze(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    x.reshape(&[n, c, h / 2, 2, w / 2, 2])?
        .permute(&[0, 1, 3, 5, 2, 4])?
        .reshape(&[n, 4 * c, h / 2, w / 2])
}

/// The inverse of [`squeeze`].
fn unsqueeze(x: &Tensor) -> Result<Tensor> {
    let s = x.shape();
    let (n, c, h, w) = (s[0], s[1] / 4, s[2], s[3]);
    x.reshape(&[n, c, 2, 2, h, w])?
        .permute(&[0, 1, 4, 2, 5, 3])?
        .reshape(&[n, c, 2 * h, 2 * w])
}

/// The RealNVP flow `z = f(y)` on logit-space images `y`, with a standard normal base
/// density, and the dequantization and logit transform that map 8-bit pixels to `y`.
pub struct RealNvp {
    cfg: RealNvpConfig,
    steps: Vec<Step>,
    /// The shape at the end of the flow (the last scale's `[C, H, W]`).
    last: [usize; 3],
    dev: Device,
}

impl RealNvp {
    /// Creates the parameters under `path` (`coupling{i}.net.conv_in.weight`,
    /// `coupling{i}.net.block{j}.conv1.weight`, `coupling{i}.net.conv_out.weight`,
    /// `coupling{i}.scale`, ...). Returns `Err` for a zero size, zero scales or couplings,
    /// image sides not divisible by `2^(scales - 1)`, an `alpha` outside `(0, 0.5)`, or a
    /// taken name.
    pub fn new(path: &Path, cfg: RealNvpConfig) -> Result<RealNvp> {
        let [c, h, w] = cfg.image;
        let div = 1usize
            .checked_shl(cfg.scales.saturating_sub(1) as u32)
            .unwrap_or(0);
        let bad = c * h * w == 0
            || cfg.scales == 0
            || cfg.couplings == 0
            || cfg.hidden == 0
            || div == 0
            || h % div != 0
            || w % div != 0
            || !(cfg.alpha > 0.0 && cfg.alpha < 0.5);
        if bad {
            return Err(Error::invalid(
                "RealNvp",
                format!(
                    "needs positive sizes, scales, couplings and hidden, image sides \
                     divisible by 2^(scales - 1) and alpha in (0, 0.5); got scales {}, \
                     couplings {}, hidden {}, alpha {}",
                    cfg.scales, cfg.couplings, cfg.hidden, cfg.alpha
                ),
                &cfg.image,
            ));
        }
        let dev = path.device().clone();
        let mut steps = vec![];
        let mut shape = cfg.image;
        let mut k = 0;
        let mut next = || {
            k += 1;
            path.pp(&format!("coupling{}", k - 1))
        };
        for scale in 0..cfg.scales {
            for i in 0..cfg.couplings {
                let co = Coupling::checker(&next(), &dev, shape, i % 2, &cfg)?;
                steps.push(Step::Coupling(Box::new(co)));
            }
            if scale + 1 == cfg.scales {
                break;
            }
            steps.push(Step::Squeeze);
            shape = [4 * shape[0], shape[1] / 2, shape[2] / 2];
            for i in 0..cfg.couplings {
                let co = Coupling::channel(&next(), shape[0], i % 2 == 1, &cfg)?;
                steps.push(Step::Coupling(Box::new(co)));
            }
            shape[0] /= 2;
            steps.push(Step::Split {
                numel: shape.iter().product(),
                shape,
            });
        }
        Ok(RealNvp {
            cfg,
            steps,
            last: shape,
            dev,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RealNvpConfig {
        &self.cfg
    }

    /// Dimensions per example, `C * H * W`.
    pub fn dims(&self) -> usize {
        self.cfg.image.iter().product()
    }

    fn check_images(&self, op: &'static str, x: &Tensor) -> Result<usize> {
        let s = x.shape();
        if s.len() != 4 || s[1..] != self.cfg.image || s[0] == 0 {
            let mut want = vec![1];
            want.extend(self.cfg.image);
            return Err(Error::shapes(op, &s, &want));
        }
        Ok(s[0])
    }

    /// `(z, log|det dz/dy|)` for logit-space images `y` `[N, C, H, W]`: `z` is `[N, C H W]`,
    /// the factored-out halves in the order they leave the flow, then the last scale's
    /// output, each flattened in `[C, H, W]` order; the log-determinant is `[N]`.
    /// Differentiable. Returns `Err` when `y` is not `[N, C, H, W]` of the configured image
    /// with `N >= 1`.
    pub fn forward(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = self.check_images("RealNvp::forward", y)?;
        let mut h = y.clone();
        let mut zs = vec![];
        let mut ld = Tensor::zeros(&self.dev, &[n])?;
        for step in &self.steps {
            match step {
                Step::Coupling(c) => {
                    let (out, l) = c.forward(&h)?;
                    h = out;
                    ld = ld.add(&l)?;
                }
                Step::Squeeze => h = squeeze(&h)?,
                Step::Split { shape, numel } => {
                    zs.push(h.narrow(1, 0, shape[0])?.reshape(&[n, *numel])?);
                    h = h.narrow(1, shape[0], shape[0])?;
                }
            }
        }
        zs.push(h.flatten_from(1)?);
        let refs: Vec<&Tensor> = zs.iter().collect();
        Ok((Tensor::concat(&refs, 1)?, ld))
    }

    /// The logit-space images `y` `[N, C, H, W]` whose [`RealNvp::forward`] is `z`
    /// `[N, C H W]`. Returns `Err` when `z` is not `[N, C H W]` with `N >= 1`.
    pub fn inverse(&self, z: &Tensor) -> Result<Tensor> {
        let s = z.shape();
        let d = self.dims();
        if s.len() != 2 || s[1] != d || s[0] == 0 {
            return Err(Error::shapes("RealNvp::inverse", &s, &[1, d]));
        }
        let n = s[0];
        let [lc, lh, lw] = self.last;
        let mut off = d - lc * lh * lw;
        let mut h = z.narrow(1, off, lc * lh * lw)?.reshape(&[n, lc, lh, lw])?;
        for step in self.steps.iter().rev() {
            match step {
                Step::Coupling(c) => h = c.inverse(&h)?,
                Step::Squeeze => h = unsqueeze(&h)?,
                Step::Split { numel, shape } => {
                    off -= numel;
                    let [a, b, c] = *shape;
                    let part = z.narrow(1, off, *numel)?.reshape(&[n, a, b, c])?;
                    h = Tensor::concat(&[&part, &h], 1)?;
                }
            }
        }
        Ok(h)
    }

    /// Uniform dequantization of pixels `x` given as `byte / 255` (the loaders' `[0, 1]`
    /// images): `(255 x + u) / 256` with `u ~ U[0, 1)` per pixel from Philox stream
    /// `(seed, offset)`, a point of the byte's bin `[byte, byte + 1) / 256`. Returns `Err`
    /// as [`RealNvp::forward`].
    pub fn dequantize(&self, x: &Tensor, seed: u64, offset: u64) -> Result<Tensor> {
        self.check_images("RealNvp::dequantize", x)?;
        let u = Tensor::rand_uniform(&self.dev, &x.shape(), 0.0, 1.0, seed, offset)?;
        x.mul_scalar(255.0)?.add(&u)?.mul_scalar(1.0 / 256.0)
    }

    /// The logit transform of continuous pixels `x` in `[0, 1]`:
    /// `(y, log|det dy/dx|)` with `p = alpha + (1 - 2 alpha) x`, `y = log p - log(1 - p)`
    /// and the log-determinant `sum(log(1 - 2 alpha) - log p - log(1 - p))` per example,
    /// `[N]`. Returns `Err` as [`RealNvp::forward`].
    pub fn logit(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let n = self.check_images("RealNvp::logit", x)?;
        let a = self.cfg.alpha;
        let p = x.affine(1.0 - 2.0 * a, a)?;
        let (lp, lq) = (p.log()?, p.rsub_scalar(1.0)?.log()?);
        let y = lp.sub(&lq)?;
        let ld = lp
            .add(&lq)?
            .neg()?
            .reshape(&[n, self.dims()])?
            .sum_axis(1, false)?
            .add_scalar(self.dims() as f32 * (1.0 - 2.0 * a).ln())?;
        Ok((y, ld))
    }

    /// Continuous pixels from logit-space images: `(sigmoid(y) - alpha) / (1 - 2 alpha)`,
    /// the inverse of [`RealNvp::logit`] (values outside `[0, 1]` are possible for `y`
    /// that no pixel maps to; clamp before drawing). Returns `Err` as [`RealNvp::forward`].
    pub fn to_pixels(&self, y: &Tensor) -> Result<Tensor> {
        self.check_images("RealNvp::to_pixels", y)?;
        let a = self.cfg.alpha;
        y.sigmoid()?
            .affine(1.0 / (1.0 - 2.0 * a), -a / (1.0 - 2.0 * a))
    }

    /// `log p(y)` per example, `[N]`, of logit-space images: the standard normal density of
    /// `z = f(y)` plus `log|det dz/dy|`. Returns `Err` as [`RealNvp::forward`].
    pub fn log_prob(&self, y: &Tensor) -> Result<Tensor> {
        let (z, ld) = self.forward(y)?;
        let d = self.dims() as f32;
        z.square()?
            .sum_axis(1, false)?
            .mul_scalar(-0.5)?
            .sub_scalar(0.5 * LN_2PI * d)?
            .add(&ld)
    }

    /// Bits per dimension of 8-bit images `x` (`byte / 255`, `[N, C, H, W]`), per example
    /// `[N]`: with `x_c` dequantized from `(seed, offset)` ([`RealNvp::dequantize`]) and
    /// `log p(x_c) = log p(y) + log|det dy/dx_c|` ([`RealNvp::logit`],
    /// [`RealNvp::log_prob`]), `-(log p(x_c) - D ln 256) / (D ln 2)`, which is the
    /// dequantized bound on `-log2 P(bytes) / D`. Differentiable in the parameters.
    /// Returns `Err` as [`RealNvp::forward`].
    pub fn bits_per_dim(&self, x: &Tensor, seed: u64, offset: u64) -> Result<Tensor> {
        let xc = self.dequantize(x, seed, offset)?;
        let (y, ld) = self.logit(&xc)?;
        let lp = self.log_prob(&y)?.add(&ld)?;
        let d = self.dims() as f32;
        lp.mul_scalar(-1.0 / (d * LN_2))?.add_scalar(8.0)
    }

    /// `n` samples as continuous pixels in `[0, 1]`, `[n, C, H, W]`: `z ~ N(0, T^2 I)` with
    /// temperature `T` from Philox stream `(seed, 0)`, mapped through
    /// [`RealNvp::inverse`] and [`RealNvp::to_pixels`], clamped to `[0, 1]`. Returns `Err`
    /// for `n == 0` or a temperature that is negative or not finite.
    pub fn sample(&self, n: usize, temperature: f32, seed: u64) -> Result<Tensor> {
        if n == 0 || !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::invalid(
                "RealNvp::sample",
                format!("needs n >= 1 and a finite temperature >= 0, got {n} and {temperature}"),
                &[n],
            ));
        }
        let z = Tensor::rand_normal(&self.dev, &[n, self.dims()], 0.0, temperature, seed, 0)?;
        self.to_pixels(&self.inverse(&z)?)?.clamp(0.0, 1.0)
    }
}
