//! BEGAN (Berthelot, Schumm and Metz, 2017): the discriminator is an autoencoder, its
//! "score" the L1 reconstruction loss `L(v) = mean |v - D(v)|`; the critic minimizes
//! `L(x) - k_t L(G(z))` and the generator `L(G(z))`, with the balance
//! `k_{t+1} = clamp(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)` and the convergence
//! measure `M = L(x) + |gamma L(x) - L(G(z))|`. `k_t` stays on the device: a step reads
//! nothing back.

use cinder_autograd::{Tensor, no_grad};
use cinder_device::{Error, Result};
use cinder_nn::optim::Optimizer;
use cinder_nn::{Conv2d, ConvTranspose2d, Embedding, Linear, ModuleT, Path};

use crate::gan::{GanArch, GanConfig, Generator, check_labels};

/// BEGAN's discriminator: an autoencoder of images `[N, C, H, W]` (and labels when
/// conditional: the encoder takes them as the DCGAN discriminator does, an embedding
/// concatenated to the MLP's input or an extra `H x W` channel, and the decoder gets a
/// second embedding concatenated to the code).
///
/// - MLP (`hidden` h): `pixels -> 2h -> code` and `code -> 2h -> pixels`, ELU between.
/// - DCGAN (`width` w): `conv 4x4 s2 (C->w) -> elu -> conv 4x4 s2 (w->2w) -> elu -> linear
///   -> code` and `linear -> [2w, H/4, W/4] -> elu -> convT (2w->w) -> elu -> convT (w->C)`.
///
/// The decoder's output has no activation (PyTorch ports of BEGAN end in a plain
/// convolution), so the reconstruction of `tanh` images is not bounded.
pub struct BeganDiscriminator {
    cfg: GanConfig,
    code: usize,
    embed_in: Option<Embedding>,
    embed_code: Option<Embedding>,
    convs: Vec<Conv2d>,
    enc: Vec<Linear>,
    dec: Vec<Linear>,
    deconvs: Vec<ConvTranspose2d>,
}

impl BeganDiscriminator {
    /// Creates the parameters under `path` (`embed_in`, `embed_code`, `conv{i}`, `enc{i}`,
    /// `dec{i}`, `deconv{i}`), with a code of width `code`. Returns `Err` for an invalid
    /// config, `code == 0` or a taken name.
    pub fn new(path: &Path, cfg: GanConfig, code: usize) -> Result<BeganDiscriminator> {
        cfg.check()?;
        if code == 0 {
            return Err(Error::invalid(
                "BeganDiscriminator",
                "code width 0",
                &[code],
            ));
        }
        let [c, h, w] = cfg.image;
        let cond = cfg.classes.is_some();
        let e = if cond { cfg.embed } else { 0 };
        let embed_code = cfg
            .classes
            .map(|k| Embedding::new(&path.pp("embed_code"), k, cfg.embed))
            .transpose()?;
        Ok(match cfg.arch {
            GanArch::Mlp { hidden } => BeganDiscriminator {
                embed_in: cfg
                    .classes
                    .map(|k| Embedding::new(&path.pp("embed_in"), k, cfg.embed))
                    .transpose()?,
                embed_code,
                convs: vec![],
                enc: vec![
                    Linear::new(&path.pp("enc0"), c * h * w + e, 2 * hidden, true)?,
                    Linear::new(&path.pp("enc1"), 2 * hidden, code, true)?,
                ],
                dec: vec![
                    Linear::new(&path.pp("dec0"), code + e, 2 * hidden, true)?,
                    Linear::new(&path.pp("dec1"), 2 * hidden, c * h * w, true)?,
                ],
                deconvs: vec![],
                cfg,
                code,
            },
            GanArch::Dcgan { width } => {
                let flat = 2 * width * (h / 4) * (w / 4);
                BeganDiscriminator {
                    embed_in: cfg
                        .classes
                        .map(|k| Embedding::new(&path.pp("embed_in"), k, h * w))
                        .transpose()?,
                    embed_code,
                    convs: vec![
                        Conv2d::new(
                            &path.pp("conv1"),
                            c + usize::from(cond),
                            width,
                            4,
                            crate::halving::down(),
                        )?,
                        Conv2d::new(
                            &path.pp("conv2"),
                            width,
                            2 * width,
                            4,
                            crate::halving::down(),
                        )?,
                    ],
                    enc: vec![Linear::new(&path.pp("enc"), flat, code, true)?],
                    dec: vec![Linear::new(&path.pp("dec"), code + e, flat, true)?],
                    deconvs: vec![
                        ConvTranspose2d::new(
                            &path.pp("deconv1"),
                            2 * width,
                            width,
                            4,
                            crate::halving::up(),
                        )?,
                        ConvTranspose2d::new(
                            &path.pp("deconv2"),
                            width,
                            c,
                            4,
                            crate::halving::up(),
                        )?,
                    ],
                    cfg,
                    code,
                }
            }
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GanConfig {
        &self.cfg
    }

    /// The width of the code.
    pub fn code_width(&self) -> usize {
        self.code
    }

    /// The reconstruction `D(x)` `[N, C, H, W]`. Returns `Err` for images of another shape
    /// or missing, unexpected or misshaped labels.
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1..] != self.cfg.image {
            return Err(Error::shapes("BeganDiscriminator", &s, &self.cfg.image));
        }
        let n = s[0];
        check_labels("BeganDiscriminator", &self.cfg, n, labels)?;
        let [c, h, w] = self.cfg.image;
        let mut code = match self.cfg.arch {
            GanArch::Mlp { .. } => {
                let mut y = x.flatten_from(1)?;
                if let (Some(e), Some(l)) = (&self.embed_in, labels) {
                    y = Tensor::concat(&[&y, &e.forward_t(l, train)?], 1)?;
                }
                let y = self.enc[0].forward_t(&y, train)?.elu(1.0)?;
                self.enc[1].forward_t(&y, train)?
            }
            GanArch::Dcgan { .. } => {
                let mut y = x.clone();
                if let (Some(e), Some(l)) = (&self.embed_in, labels) {
                    let m = e.forward_t(l, train)?.reshape(&[n, 1, h, w])?;
                    y = Tensor::concat(&[&y, &m], 1)?;
                }
                for conv in &self.convs {
                    y = conv.forward_t(&y, train)?.elu(1.0)?;
                }
                self.enc[0].forward_t(&y.flatten_from(1)?, train)?
            }
        };
        if let (Some(e), Some(l)) = (&self.embed_code, labels) {
            code = Tensor::concat(&[&code, &e.forward_t(l, train)?], 1)?;
        }
        match self.cfg.arch {
            GanArch::Mlp { .. } => {
                let y = self.dec[0].forward_t(&code, train)?.elu(1.0)?;
                self.dec[1].forward_t(&y, train)?.reshape(&[n, c, h, w])
            }
            GanArch::Dcgan { width } => {
                let y = self.dec[0].forward_t(&code, train)?.elu(1.0)?;
                let y = y.reshape(&[n, 2 * width, h / 4, w / 4])?;
                let y = self.deconvs[0].forward_t(&y, train)?.elu(1.0)?;
                self.deconvs[1].forward_t(&y, train)
            }
        }
    }

    /// `L(v) = mean |v - D(v)|` over every pixel of the batch, a scalar. Errors as
    /// [`Self::forward`].
    pub fn reconstruction_loss(
        &self,
        v: &Tensor,
        labels: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        v.sub(&self.forward(v, labels, train)?)?.abs()?.mean_all()
    }
}

/// The values of one BEGAN step, all on the device (scalars).
#[derive(Clone, Debug)]
pub struct BeganStep {
    /// The critic's loss `L(x) - k_t L(G(z))`.
    pub d_loss: Tensor,
    /// `L(x)`, the reconstruction loss of the real batch.
    pub real_loss: Tensor,
    /// `L(G(z_G))` on the generator's step, its loss.
    pub g_loss: Tensor,
    /// `k_{t+1}` after this step.
    pub k: Tensor,
    /// The convergence measure `M = L(x) + |gamma L(x) - L(G(z_G))|`.
    pub convergence: Tensor,
}

/// BEGAN's alternating updates with the `k_t` balance (one critic and one generator step
/// per call).
pub struct BeganTrainer {
    /// The diversity ratio `gamma = E[L(G(z))] / E[L(x)]` the balance aims at (the paper
    /// uses 0.3 to 0.7; 0.5 here by default).
    pub gamma: f32,
    /// The balance's learning rate `lambda_k` (0.001 in the paper).
    pub lambda_k: f32,
    /// Seed of the `z` draws.
    pub seed: u64,
    k: Tensor,
}

impl BeganTrainer {
    /// A trainer starting from `k_0 = 0` on `device`. Returns `Err` for `gamma` outside
    /// `(0, 1]` or a negative or NaN `lambda_k`.
    pub fn new(
        device: &cinder_device::Device,
        gamma: f32,
        lambda_k: f32,
        seed: u64,
    ) -> Result<BeganTrainer> {
        if gamma.is_nan() || gamma <= 0.0 || gamma > 1.0 || lambda_k.is_nan() || lambda_k < 0.0 {
            return Err(Error::invalid(
                "BeganTrainer",
                format!("gamma {gamma} outside (0, 1] or lambda_k {lambda_k} negative"),
                &[],
            ));
        }
        Ok(BeganTrainer {
            gamma,
            lambda_k,
            seed,
            k: Tensor::scalar(device, 0.0)?,
        })
    }

    /// The current `k_t` (a device scalar).
    pub fn k(&self) -> &Tensor {
        &self.k
    }

    /// One critic step on `real` (with `labels` when conditional, also given to G), one
    /// generator step, then the `k_t` update. Noise streams are derived from
    /// `(seed, step)`. Returns the step's values, or `Err` for mismatched shapes or labels,
    /// or an optimizer error.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        g: &Generator,
        d: &BeganDiscriminator,
        g_opt: &mut dyn Optimizer,
        d_opt: &mut dyn Optimizer,
        real: &Tensor,
        labels: Option<&Tensor>,
        step: u64,
    ) -> Result<BeganStep> {
        if g.config() != d.config() {
            return Err(Error::invalid(
                "BeganTrainer",
                "the generator and the discriminator have different configs",
                &[],
            ));
        }
        let n = real.shape().first().copied().unwrap_or(0);
        let dev = real.device();
        let latent = g.config().latent;
        let z = Tensor::rand_normal(&dev, &[n, latent], 0.0, 1.0, self.seed, 2 * step)?;
        let fake = no_grad(|| g.forward(&z, labels, true))?;
        let real_loss = d.reconstruction_loss(real, labels, true)?;
        let fake_loss = d.reconstruction_loss(&fake, labels, true)?;
        let d_loss = real_loss.sub(&fake_loss.mul(&self.k)?)?;
        d_opt.zero_grad();
        d_loss.backward()?;
        d_opt.step()?;

        let z = Tensor::rand_normal(&dev, &[n, latent], 0.0, 1.0, self.seed, 2 * step + 1)?;
        let g_loss = d.reconstruction_loss(&g.forward(&z, labels, true)?, labels, true)?;
        g_opt.zero_grad();
        g_loss.backward()?;
        g_opt.step()?;
        d_opt.zero_grad();

        let (real_loss, g_loss) = (real_loss.detach(), g_loss.detach());
        let (k, convergence) = no_grad(|| -> Result<(Tensor, Tensor)> {
            let balance = real_loss.mul_scalar(self.gamma)?.sub(&g_loss)?;
            let k = self
                .k
                .add(&balance.mul_scalar(self.lambda_k)?)?
                .clamp(0.0, 1.0)?;
            Ok((k, real_loss.add(&balance.abs()?)?))
        })?;
        self.k = k.clone();
        Ok(BeganStep {
            d_loss: d_loss.detach(),
            real_loss,
            g_loss,
            k,
            convergence,
        })
    }
}
