//! Autoencoders: an MLP and a convolutional one, with optional tied weights (the decoder
//! uses the encoder's transposed weights), a denoising mode (Gaussian or masking noise on
//! the input, the clean image as target) and a sparse mode (an L1 penalty on the code).

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::loss::{Reduction, mse};
use cinder_nn::{Conv2d, ConvTranspose2d, Linear, Path};

/// Corruption applied to the input in denoising mode (the target stays clean).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Noise {
    /// No corruption (a plain autoencoder).
    #[default]
    None,
    /// Adds `N(0, std^2)` to every pixel.
    Gaussian {
        /// Standard deviation of the noise.
        std: f32,
    },
    /// Sets each pixel to 0 with probability `p` (masking noise).
    Masking {
        /// Probability of zeroing a pixel.
        p: f32,
    },
}

impl Noise {
    /// Corrupts `x` with Philox stream `(seed, offset)` (a new stream per batch gives new
    /// noise). Returns `Err` for a negative std or a `p` outside `[0, 1]`.
    pub fn apply(&self, x: &Tensor, seed: u64, offset: u64) -> Result<Tensor> {
        let dev = x.device();
        match *self {
            Noise::None => Ok(x.clone()),
            Noise::Gaussian { std } => {
                if std.is_nan() || std < 0.0 {
                    return Err(Error::invalid("Noise", "negative std", &[]));
                }
                x.add(&Tensor::rand_normal(
                    &dev,
                    &x.shape(),
                    0.0,
                    std,
                    seed,
                    offset,
                )?)
            }
            Noise::Masking { p } => {
                if !(0.0..=1.0).contains(&p) {
                    return Err(Error::invalid("Noise", "p outside [0, 1]", &[]));
                }
                x.mul(&Tensor::rand_bernoulli(
                    &dev,
                    &x.shape(),
                    1.0 - p,
                    seed,
                    offset,
                )?)
            }
        }
    }
}

/// Which encoder/decoder pair.
#[derive(Clone, Debug, PartialEq)]
pub enum AeArch {
    /// Fully connected: `input -> hidden... -> code`, ReLU between layers, and the mirror
    /// image for the decoder.
    Mlp {
        /// Hidden widths of the encoder (the decoder uses them in reverse).
        hidden: Vec<usize>,
    },
    /// Convolutional, for `[C, H, W]` images with `H` and `W` divisible by 4:
    /// `conv 4x4 s2 (C->w) - relu - conv 4x4 s2 (w->2w) - relu - linear -> code`, and a
    /// decoder of `linear - relu - convT 4x4 s2 (2w->w) - relu - convT 4x4 s2 (w->C)`.
    Conv {
        /// Channels `w` of the first convolution.
        width: usize,
    },
}

/// Options of an [`Autoencoder`].
#[derive(Clone, Debug, PartialEq)]
pub struct AeConfig {
    /// The architecture.
    pub arch: AeArch,
    /// Image shape `[C, H, W]`.
    pub image: [usize; 3],
    /// Width of the code.
    pub code: usize,
    /// Decoder uses the encoder's transposed weights (its own biases only).
    pub tied: bool,
    /// Input corruption (denoising mode).
    pub noise: Noise,
    /// Weight of the L1 penalty `mean over the batch of sum |code|` (sparse mode; 0 = off).
    pub sparsity: f32,
}

/// The loss terms of one batch (each a shape-`[]` tensor).
pub struct AeLoss {
    /// `recon + sparsity * l1`, what is minimized.
    pub total: Tensor,
    /// Mean squared error per pixel between the reconstruction and the clean input.
    pub recon: Tensor,
    /// Mean over the batch of `sum |code|`.
    pub l1: Tensor,
}

#[allow(clippy::large_enum_variant)]
enum Net {
    Mlp {
        enc: Vec<Linear>,
        /// Untied decoder layers, or (tied) only their biases through `dec_bias`.
        dec: Vec<Linear>,
        dec_bias: Vec<Tensor>,
    },
    Conv {
        c1: Conv2d,
        c2: Conv2d,
        fc: Linear,
        dfc: Option<Linear>,
        dfc_bias: Option<Tensor>,
        d1: Option<ConvTranspose2d>,
        d2: Option<ConvTranspose2d>,
        d1_bias: Option<Tensor>,
        d2_bias: Option<Tensor>,
        width: usize,
    },
}

/// An autoencoder whose decoder ends in a sigmoid: reconstructions are in `(0, 1)`, for
/// images scaled to `[0, 1]`.
pub struct Autoencoder {
    net: Net,
    cfg: AeConfig,
}

impl Autoencoder {
    /// Creates the parameters under `path` (`enc.fc{i}` / `dec.fc{i}` for the MLP; `enc.conv1`,
    /// `enc.conv2`, `enc.fc`, `dec.fc`, `dec.deconv1`, `dec.deconv2` for the conv net; tied
    /// decoders own only `dec.*.bias`). Returns `Err` for a zero size, a conv image whose
    /// sides are not divisible by 4, a negative sparsity or a taken name.
    pub fn new(path: &Path, cfg: AeConfig) -> Result<Autoencoder> {
        let [c, h, w] = cfg.image;
        if c * h * w == 0 || cfg.code == 0 || cfg.sparsity.is_nan() || cfg.sparsity < 0.0 {
            return Err(Error::invalid(
                "Autoencoder",
                "zero image or code size, or negative sparsity",
                &[c, h, w, cfg.code],
            ));
        }
        let (e, d) = (path.pp("enc"), path.pp("dec"));
        let net = match &cfg.arch {
            AeArch::Mlp { hidden } => {
                let mut widths = vec![c * h * w];
                widths.extend(hidden);
                widths.push(cfg.code);
                let enc = widths
                    .windows(2)
                    .enumerate()
                    .map(|(i, p)| Linear::new(&e.pp(&format!("fc{i}")), p[0], p[1], true))
                    .collect::<Result<Vec<_>>>()?;
                let rev: Vec<usize> = widths.iter().rev().copied().collect();
                let (mut dec, mut dec_bias) = (vec![], vec![]);
                for (i, p) in rev.windows(2).enumerate() {
                    let lp = d.pp(&format!("fc{i}"));
                    if cfg.tied {
                        dec_bias.push(lp.var("bias", &[p[1]], cinder_nn::Init::Constant(0.0))?);
                    } else {
                        dec.push(Linear::new(&lp, p[0], p[1], true)?);
                    }
                }
                Net::Mlp { enc, dec, dec_bias }
            }
            AeArch::Conv { width } => {
                let wd = *width;
                if h % 4 != 0 || w % 4 != 0 || wd == 0 {
                    return Err(Error::invalid(
                        "Autoencoder",
                        "conv autoencoder needs H, W divisible by 4 and a positive width",
                        &[c, h, w, wd],
                    ));
                }
                let s2 = crate::halving::down();
                let t2 = crate::halving::up();
                let flat = 2 * wd * (h / 4) * (w / 4);
                let zero = cinder_nn::Init::Constant(0.0);
                let (dfc, dfc_bias, d1, d2, d1_bias, d2_bias) = if cfg.tied {
                    (
                        None,
                        Some(d.pp("fc").var("bias", &[flat], zero)?),
                        None,
                        None,
                        Some(d.pp("deconv1").var("bias", &[wd], zero)?),
                        Some(d.pp("deconv2").var("bias", &[c], zero)?),
                    )
                } else {
                    (
                        Some(Linear::new(&d.pp("fc"), cfg.code, flat, true)?),
                        None,
                        Some(ConvTranspose2d::new(&d.pp("deconv1"), 2 * wd, wd, 4, t2)?),
                        Some(ConvTranspose2d::new(&d.pp("deconv2"), wd, c, 4, t2)?),
                        None,
                        None,
                    )
                };
                Net::Conv {
                    c1: Conv2d::new(&e.pp("conv1"), c, wd, 4, s2)?,
                    c2: Conv2d::new(&e.pp("conv2"), wd, 2 * wd, 4, s2)?,
                    fc: Linear::new(&e.pp("fc"), flat, cfg.code, true)?,
                    dfc,
                    dfc_bias,
                    d1,
                    d2,
                    d1_bias,
                    d2_bias,
                    width: wd,
                }
            }
        };
        Ok(Autoencoder { net, cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &AeConfig {
        &self.cfg
    }

    /// `[N, C, H, W]` images to `[N, code]` codes (no activation on the code). Returns
    /// `Err` when the input's shape is not `[N, C, H, W]` of the configured image.
    pub fn encode(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1..] != self.cfg.image {
            return Err(Error::shapes("Autoencoder::encode", &s, &self.cfg.image));
        }
        use cinder_nn::ModuleT;
        match &self.net {
            Net::Mlp { enc, .. } => {
                let mut h = x.flatten_from(1)?;
                for (i, l) in enc.iter().enumerate() {
                    h = l.forward_t(&h, train)?;
                    if i + 1 < enc.len() {
                        h = h.relu()?;
                    }
                }
                Ok(h)
            }
            Net::Conv { c1, c2, fc, .. } => {
                let h = c1.forward_t(x, train)?.relu()?;
                let h = c2.forward_t(&h, train)?.relu()?;
                fc.forward_t(&h.flatten_from(1)?, train)
            }
        }
    }

    /// The decoder's logits `[N, C, H, W]` for codes `[N, code]`. Returns `Err` for a code
    /// of another width.
    pub fn decode_logits(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let s = z.shape();
        if s.len() != 2 || s[1] != self.cfg.code {
            return Err(Error::shapes("Autoencoder::decode", &s, &[self.cfg.code]));
        }
        use cinder_nn::ModuleT;
        let [c, h, w] = self.cfg.image;
        let n = s[0];
        match &self.net {
            Net::Mlp { enc, dec, dec_bias } => {
                let mut y = z.clone();
                let layers = enc.len();
                for i in 0..layers {
                    y = if self.cfg.tied {
                        // x W (W is the encoder's [out, in]) then the decoder's own bias
                        y.matmul(&enc[layers - 1 - i].weight)?.add(&dec_bias[i])?
                    } else {
                        dec[i].forward_t(&y, train)?
                    };
                    if i + 1 < layers {
                        y = y.relu()?;
                    }
                }
                y.reshape(&[n, c, h, w])
            }
            Net::Conv {
                c1,
                c2,
                fc,
                dfc,
                dfc_bias,
                d1,
                d2,
                d1_bias,
                d2_bias,
                width,
            } => {
                let shape = [n, 2 * width, h / 4, w / 4];
                if self.cfg.tied {
                    // the transposed convolution with a convolution's weight is its adjoint
                    let y = z.matmul(&fc.weight)?.add(dfc_bias.as_ref().unwrap())?;
                    let y = y.relu()?.reshape(&shape)?;
                    let p = transpose_params(c2);
                    let y = y
                        .conv_transpose2d(&c2.weight, d1_bias.as_ref(), &p)?
                        .relu()?;
                    let p = transpose_params(c1);
                    y.conv_transpose2d(&c1.weight, d2_bias.as_ref(), &p)
                } else {
                    let y = dfc.as_ref().unwrap().forward_t(z, train)?.relu()?;
                    let y = y.reshape(&shape)?;
                    let y = d1.as_ref().unwrap().forward_t(&y, train)?.relu()?;
                    d2.as_ref().unwrap().forward_t(&y, train)
                }
            }
        }
    }

    /// Reconstructions in `(0, 1)`: `sigmoid(decode_logits(z))`. Errors as
    /// [`Autoencoder::decode_logits`].
    pub fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        self.decode_logits(z, train)?.sigmoid()
    }

    /// Encodes and decodes `x` without corruption. Errors as [`Autoencoder::encode`].
    pub fn reconstruct(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.decode(&self.encode(x, train)?, train)
    }

    /// The training loss of a clean batch `x`: the input is corrupted with the configured
    /// noise from Philox stream `(seed, offset)`, and the reconstruction is compared with
    /// the clean `x` (MSE per pixel), plus `sparsity` times the code's L1 norm. Returns the
    /// terms, or `Err` as [`Autoencoder::encode`] or [`Noise::apply`].
    pub fn loss(&self, x: &Tensor, seed: u64, offset: u64) -> Result<AeLoss> {
        let input = self.cfg.noise.apply(x, seed, offset)?;
        let code = self.encode(&input, true)?;
        let y = self.decode(&code, true)?;
        let recon = mse(&y, x, Reduction::Mean)?;
        let l1 = code.abs()?.sum_axis(1, false)?.mean_all()?;
        let total = if self.cfg.sparsity > 0.0 {
            recon.add(&l1.mul_scalar(self.cfg.sparsity)?)?
        } else {
            recon.clone()
        };
        Ok(AeLoss { total, recon, l1 })
    }
}

fn transpose_params(c: &Conv2d) -> cinder_device::ops::conv::ConvTranspose2dParams {
    cinder_device::ops::conv::ConvTranspose2dParams {
        stride: c.params.stride,
        padding: c.params.padding,
        output_padding: (0, 0),
        dilation: c.params.dilation,
        groups: c.params.groups,
    }
}
