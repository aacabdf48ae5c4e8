//! Variational autoencoders (Kingma and Welling): MLP or convolutional encoder and decoder,
//! the reparameterization with the device's Philox normal noise, the ELBO with a Bernoulli
//! or Gaussian decoder and a beta on the KL term, sampling from the prior, reconstruction,
//! latent interpolation, and the importance-weighted estimate of `log p(x)` (Burda et al.).

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};
use cinder_nn::loss::{Reduction, bce_with_logits, kl_div_gaussian};
use cinder_nn::{Conv2d, ConvTranspose2d, Linear, ModuleT, Path};

const LN_2PI: f32 = 1.837_877_1;

/// The decoder's likelihood `p(x | z)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Likelihood {
    /// Bernoulli per pixel on the decoder's logits (binary cross-entropy; for pixels in
    /// `[0, 1]` this is the usual continuous relaxation).
    Bernoulli,
    /// Gaussian per pixel with mean `sigmoid(logits)` and a fixed standard deviation.
    Gaussian {
        /// The decoder's standard deviation.
        sigma: f32,
    },
}

/// Which encoder/decoder pair.
#[derive(Clone, Debug, PartialEq)]
pub enum VaeArch {
    /// `input -> hidden -> (mu, logvar)` and `latent -> hidden -> input`, ReLU (the
    /// 784-400-20 VAE of the paper is `hidden: 400`, latent 20).
    Mlp {
        /// Hidden width.
        hidden: usize,
    },
    /// `conv 4x4 s2 (C->w) - relu - conv 4x4 s2 (w->2w) - relu - linear` and the mirror
    /// decoder with transposed convolutions; `H` and `W` divisible by 4.
    Conv {
        /// Channels of the first convolution.
        width: usize,
    },
}

/// Options of a [`Vae`].
#[derive(Clone, Debug, PartialEq)]
pub struct VaeConfig {
    /// The architecture.
    pub arch: VaeArch,
    /// Image shape `[C, H, W]`.
    pub image: [usize; 3],
    /// Latent dimension.
    pub latent: usize,
    /// Decoder likelihood.
    pub likelihood: Likelihood,
    /// Weight of the KL term (1 = the VAE, other values the beta-VAE).
    pub beta: f32,
}

/// The terms of the negative ELBO of a batch, each a shape-`[]` tensor, per example
/// (summed over pixels and latent dimensions, averaged over the batch).
pub struct Elbo {
    /// `recon + beta * kl`, the loss to minimize.
    pub loss: Tensor,
    /// `-log p(x | z)` with one sample of `z`.
    pub recon: Tensor,
    /// `KL(q(z | x) || N(0, I))` in closed form.
    pub kl: Tensor,
}

#[allow(clippy::large_enum_variant)]
enum Net {
    Mlp {
        fc1: Linear,
        mu: Linear,
        logvar: Linear,
        dfc1: Linear,
        dfc2: Linear,
    },
    Conv {
        c1: Conv2d,
        c2: Conv2d,
        mu: Linear,
        logvar: Linear,
        dfc: Linear,
        d1: ConvTranspose2d,
        d2: ConvTranspose2d,
        width: usize,
    },
}

/// A variational autoencoder with a diagonal Gaussian posterior `q(z | x)` and a standard
/// normal prior.
pub struct Vae {
    net: Net,
    cfg: VaeConfig,
}

impl Vae {
    /// Creates the parameters under `path` (`enc.*`, `dec.*`). Returns `Err` for a zero
    /// size, a non-positive Gaussian sigma, a negative beta, a conv image whose sides are
    /// not divisible by 4, or a taken name.
    pub fn new(path: &Path, cfg: VaeConfig) -> Result<Vae> {
        let [c, h, w] = cfg.image;
        let bad_sigma = matches!(cfg.likelihood, Likelihood::Gaussian { sigma } if sigma.is_nan() || sigma <= 0.0);
        if c * h * w == 0 || cfg.latent == 0 || bad_sigma || cfg.beta.is_nan() || cfg.beta < 0.0 {
            return Err(Error::invalid(
                "Vae",
                "zero size, non-positive sigma or negative beta",
                &[c, h, w, cfg.latent],
            ));
        }
        let (e, d) = (path.pp("enc"), path.pp("dec"));
        let l = cfg.latent;
        let net = match cfg.arch {
            VaeArch::Mlp { hidden } => Net::Mlp {
                fc1: Linear::new(&e.pp("fc1"), c * h * w, hidden, true)?,
                mu: Linear::new(&e.pp("mu"), hidden, l, true)?,
                logvar: Linear::new(&e.pp("logvar"), hidden, l, true)?,
                dfc1: Linear::new(&d.pp("fc1"), l, hidden, true)?,
                dfc2: Linear::new(&d.pp("fc2"), hidden, c * h * w, true)?,
            },
            VaeArch::Conv { width } => {
                if h % 4 != 0 || w % 4 != 0 || width == 0 {
                    return Err(Error::invalid(
                        "Vae",
                        "conv VAE needs H, W divisible by 4 and a positive width",
                        &[c, h, w, width],
                    ));
                }
                let s2 = crate::halving::down();
                let t2 = crate::halving::up();
                let flat = 2 * width * (h / 4) * (w / 4);
                Net::Conv {
                    c1: Conv2d::new(&e.pp("conv1"), c, width, 4, s2)?,
                    c2: Conv2d::new(&e.pp("conv2"), width, 2 * width, 4, s2)?,
                    mu: Linear::new(&e.pp("mu"), flat, l, true)?,
                    logvar: Linear::new(&e.pp("logvar"), flat, l, true)?,
                    dfc: Linear::new(&d.pp("fc"), l, flat, true)?,
                    d1: ConvTranspose2d::new(&d.pp("deconv1"), 2 * width, width, 4, t2)?,
                    d2: ConvTranspose2d::new(&d.pp("deconv2"), width, c, 4, t2)?,
                    width,
                }
            }
        };
        Ok(Vae { net, cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// `q(z | x)`: `(mu, logvar)`, each `[N, latent]`. Returns `Err` when `x` is not
    /// `[N, C, H, W]` of the configured image.
    pub fn encode(&self, x: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let s = x.shape();
        if s.len() != 4 || s[1..] != self.cfg.image {
            return Err(Error::shapes("Vae::encode", &s, &self.cfg.image));
        }
        match &self.net {
            Net::Mlp {
                fc1, mu, logvar, ..
            } => {
                let h = fc1.forward_t(&x.flatten_from(1)?, train)?.relu()?;
                Ok((mu.forward_t(&h, train)?, logvar.forward_t(&h, train)?))
            }
            Net::Conv {
                c1, c2, mu, logvar, ..
            } => {
                let h = c1.forward_t(x, train)?.relu()?;
                let h = c2.forward_t(&h, train)?.relu()?.flatten_from(1)?;
                Ok((mu.forward_t(&h, train)?, logvar.forward_t(&h, train)?))
            }
        }
    }

    /// `z = mu + exp(logvar / 2) * eps` with `eps ~ N(0, I)` from Philox stream
    /// `(seed, offset)`; differentiable in `mu` and `logvar`. Returns `Err` when the shapes
    /// differ.
    pub fn reparameterize(mu: &Tensor, logvar: &Tensor, seed: u64, offset: u64) -> Result<Tensor> {
        if mu.shape() != logvar.shape() {
            return Err(Error::shapes(
                "reparameterize",
                &mu.shape(),
                &logvar.shape(),
            ));
        }
        let eps = Tensor::rand_normal(&mu.device(), &mu.shape(), 0.0, 1.0, seed, offset)?;
        mu.add(&logvar.mul_scalar(0.5)?.exp()?.mul(&eps)?)
    }

    /// The decoder's logits `[N, C, H, W]` for `z` `[N, latent]`. Returns `Err` for a `z`
    /// of another width.
    pub fn decode_logits(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        let s = z.shape();
        if s.len() != 2 || s[1] != self.cfg.latent {
            return Err(Error::shapes("Vae::decode", &s, &[self.cfg.latent]));
        }
        let [c, h, w] = self.cfg.image;
        let n = s[0];
        match &self.net {
            Net::Mlp { dfc1, dfc2, .. } => {
                let y = dfc1.forward_t(z, train)?.relu()?;
                dfc2.forward_t(&y, train)?.reshape(&[n, c, h, w])
            }
            Net::Conv {
                dfc, d1, d2, width, ..
            } => {
                let y = dfc.forward_t(z, train)?.relu()?;
                let y = y.reshape(&[n, 2 * width, h / 4, w / 4])?;
                let y = d1.forward_t(&y, train)?.relu()?;
                d2.forward_t(&y, train)
            }
        }
    }

    /// The decoder's mean image in `(0, 1)`: `sigmoid(logits)`. Errors as
    /// [`Vae::decode_logits`].
    pub fn decode(&self, z: &Tensor, train: bool) -> Result<Tensor> {
        self.decode_logits(z, train)?.sigmoid()
    }

    /// `log p(x | z)` per example, `[N]`, from the decoder's logits. Returns `Err` when the
    /// shapes differ.
    pub fn log_likelihood(&self, logits: &Tensor, x: &Tensor) -> Result<Tensor> {
        let n = x.shape().first().copied().unwrap_or(0);
        let per_pixel = match self.cfg.likelihood {
            Likelihood::Bernoulli => bce_with_logits(logits, x, None, Reduction::None)?.neg()?,
            Likelihood::Gaussian { sigma } => {
                let d = logits.sigmoid()?.sub(x)?;
                d.square()?
                    .mul_scalar(-0.5 / (sigma * sigma))?
                    .sub_scalar(0.5 * LN_2PI + sigma.ln())?
            }
        };
        per_pixel
            .reshape(&[n, x.numel() / n.max(1)])?
            .sum_axis(1, false)
    }

    /// The negative ELBO of batch `x` with one sample of `z` from `(seed, offset)`:
    /// `-log p(x | z) + beta * KL(q(z | x) || N(0, I))`, per example. Returns `Err` as
    /// [`Vae::encode`].
    pub fn elbo(&self, x: &Tensor, seed: u64, offset: u64) -> Result<Elbo> {
        let (mu, logvar) = self.encode(x, true)?;
        let z = Vae::reparameterize(&mu, &logvar, seed, offset)?;
        let logits = self.decode_logits(&z, true)?;
        let recon = self.log_likelihood(&logits, x)?.mean_all()?.neg()?;
        let kl = kl_div_gaussian(&mu, &logvar, Reduction::Mean)?;
        let loss = recon.add(&kl.mul_scalar(self.cfg.beta)?)?;
        Ok(Elbo { loss, recon, kl })
    }

    /// `n` images decoded (mean) from `z ~ N(0, I)` drawn from `(seed, offset)`. Returns
    /// `Err` for `n == 0`.
    pub fn sample(&self, n: usize, seed: u64, offset: u64) -> Result<Tensor> {
        if n == 0 {
            return Err(Error::invalid("Vae::sample", "zero samples", &[]));
        }
        let dev = self.device();
        let z = Tensor::rand_normal(&dev, &[n, self.cfg.latent], 0.0, 1.0, seed, offset)?;
        self.decode(&z, false)
    }

    fn device(&self) -> cinder_device::Device {
        match &self.net {
            Net::Mlp { fc1, .. } => fc1.weight.device(),
            Net::Conv { c1, .. } => c1.weight.device(),
        }
    }

    /// Reconstructions: the decoder's mean at the posterior mean `mu(x)`. Errors as
    /// [`Vae::encode`].
    pub fn reconstruct(&self, x: &Tensor) -> Result<Tensor> {
        let (mu, _) = self.encode(x, false)?;
        self.decode(&mu, false)
    }

    /// Decodes `steps` points evenly spaced on the segment between the posterior means of
    /// images `a` and `b` (each `[1, C, H, W]` or `[C, H, W]`), ends included: `[steps, C, H,
    /// W]`. Returns `Err` for `steps < 2` or a wrong image shape.
    pub fn interpolate(&self, a: &Tensor, b: &Tensor, steps: usize) -> Result<Tensor> {
        if steps < 2 {
            return Err(Error::invalid(
                "Vae::interpolate",
                "fewer than 2 steps",
                &[],
            ));
        }
        let one = |t: &Tensor| {
            let mut s = vec![1];
            s.extend(self.cfg.image);
            t.reshape(&s)
        };
        let (ma, _) = self.encode(&one(a)?, false)?;
        let (mb, _) = self.encode(&one(b)?, false)?;
        let ts: Vec<f32> = (0..steps).map(|i| i as f32 / (steps - 1) as f32).collect();
        let t = Tensor::from_slice(&ma.device(), &ts, &[steps, 1])?;
        // (1 - t) a + t b
        let z = ma.add(&mb.sub(&ma)?.mul(&t)?)?;
        self.decode(&z, false)
    }

    /// The importance-weighted estimate of `log p(x)` per example, `[N]`:
    /// `log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x)` with `z_k ~ q(z | x)` from
    /// `(seed, offset)`. It is a lower bound of `log p(x)` that is at least the ELBO in
    /// expectation and tightens as `K` grows. All `K N` decodes run as one batch: split a
    /// large `N` into chunks. Returns `Err` for `k == 0` or as [`Vae::encode`].
    pub fn iwae_log_px(&self, x: &Tensor, k: usize, seed: u64, offset: u64) -> Result<Tensor> {
        if k == 0 {
            return Err(Error::invalid("Vae::iwae_log_px", "K = 0 samples", &[]));
        }
        let (mu, logvar) = self.encode(x, false)?;
        let s = x.shape();
        let (n, l) = (s[0], self.cfg.latent);
        let rep = |t: &Tensor, cols: &[usize]| -> Result<Tensor> {
            let mut one = vec![1, n];
            one.extend(cols);
            let mut kk = vec![k, n];
            kk.extend(cols);
            let mut flat = vec![k * n];
            flat.extend(cols);
            t.reshape(&one)?.broadcast_to(&kk)?.reshape(&flat)
        };
        let (mu_k, lv_k) = (rep(&mu, &[l])?, rep(&logvar, &[l])?);
        let eps = Tensor::rand_normal(&x.device(), &[k * n, l], 0.0, 1.0, seed, offset)?;
        let z = mu_k.add(&lv_k.mul_scalar(0.5)?.exp()?.mul(&eps)?)?;
        let logits = self.decode_logits(&z, false)?;
        let log_pxz = self.log_likelihood(&logits, &rep(x, &s[1..])?)?;
        let c = 0.5 * LN_2PI * l as f32;
        let log_pz = z
            .square()?
            .sum_axis(1, false)?
            .mul_scalar(-0.5)?
            .sub_scalar(c)?;
        let log_qz = eps
            .square()?
            .add(&lv_k)?
            .sum_axis(1, false)?
            .mul_scalar(-0.5)?
            .sub_scalar(c)?;
        let log_w = log_pxz.add(&log_pz)?.sub(&log_qz)?.reshape(&[k, n])?;
        log_w.logsumexp_axis(0, false)?.sub_scalar((k as f32).ln())
    }
}
