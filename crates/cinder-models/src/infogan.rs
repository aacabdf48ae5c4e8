//! InfoGAN (Chen et al., 2016): the generator's input is noise plus a latent code (a
//! categorical code and continuous codes), and a Q head on the discriminator's trunk
//! infers the code from generated images. Maximizing the variational lower bound on the
//! mutual information `I(c; G(z, c)) >= H(c) - CE` is a cross-entropy term for the
//! categorical code plus a Gaussian log-likelihood term (unit variance, so a half squared
//! error) for the continuous codes, added to both the critic's and the generator's
//! losses as in the paper's code. The Q head's parameters belong with the critic's (they
//! share its trunk and its optimizer).

use cinder_autograd::{Tensor, no_grad};
use cinder_device::{DType, Device, Error, Result};
use cinder_nn::loss::{CrossEntropy, GanLoss, cross_entropy};
use cinder_nn::optim::Optimizer;
use cinder_nn::{BatchNorm, Linear, ModuleT, Path};

use crate::gan::{Discriminator, Generator};

/// The code layout: `z = [noise, one_hot(categorical), continuous]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InfoGanConfig {
    /// Width of the incompressible noise (62 in the paper's MNIST model).
    pub noise: usize,
    /// Number of categories of the categorical code (10).
    pub categories: usize,
    /// Number of continuous codes, each `U(-1, 1)` (2).
    pub continuous: usize,
    /// Weight of the categorical term (1, as in the paper).
    pub lambda_cat: f32,
    /// Weight of the continuous term (0.1: the paper's continuous codes get a smaller
    /// weight so that the term does not dominate).
    pub lambda_cont: f32,
}

impl Default for InfoGanConfig {
    /// The paper's MNIST codes: 62 noise, one 10-way categorical, two continuous,
    /// weights 1 and 0.1.
    fn default() -> Self {
        InfoGanConfig {
            noise: 62,
            categories: 10,
            continuous: 2,
            lambda_cat: 1.0,
            lambda_cont: 0.1,
        }
    }
}

/// A batch of codes and the generator input they make.
#[derive(Clone, Debug)]
pub struct Codes {
    /// The categorical code `[N]` (u32).
    pub categorical: Tensor,
    /// The continuous codes `[N, continuous]`.
    pub continuous: Tensor,
    /// The generator input `[N, latent]`.
    pub z: Tensor,
}

impl InfoGanConfig {
    fn check(&self) -> Result<()> {
        let bad_w = |w: f32| w.is_nan() || w < 0.0;
        if self.noise + self.continuous == 0
            || self.categories < 2
            || bad_w(self.lambda_cat)
            || bad_w(self.lambda_cont)
        {
            return Err(Error::invalid(
                "InfoGanConfig",
                "fewer than 2 categories, no noise and no continuous code, or a negative weight",
                &[self.noise, self.categories, self.continuous],
            ));
        }
        Ok(())
    }

    /// The generator's input width `noise + categories + continuous` (set it as the
    /// [`crate::GanConfig::latent`] of an unconditional generator).
    pub fn latent(&self) -> usize {
        self.noise + self.categories + self.continuous
    }

    /// The generator input for given codes: `categorical` `[N]` u32, `continuous`
    /// `[N, continuous]`, `noise` `[N, noise]`. Returns `Err` for an invalid config or
    /// misshaped codes (a category past `categories` gives a zero one-hot row, as
    /// `one_hot` does).
    pub fn input(
        &self,
        noise: &Tensor,
        categorical: &Tensor,
        continuous: &Tensor,
    ) -> Result<Tensor> {
        self.check()?;
        let n = categorical.shape().first().copied().unwrap_or(0);
        if categorical.shape() != [n]
            || noise.shape() != [n, self.noise]
            || continuous.shape() != [n, self.continuous]
        {
            return Err(Error::shapes(
                "InfoGanConfig::input",
                &noise.shape(),
                &[n, self.noise],
            ));
        }
        let onehot = categorical.one_hot(self.categories)?;
        Tensor::concat(&[noise, &onehot, continuous], 1)
    }

    /// Draws `n` codes: noise `N(0, 1)`, a uniform category, continuous `U(-1, 1)`, from
    /// the Philox streams `(seed, offset)`, `(seed, offset + 1)`, `(seed, offset + 2)`.
    /// Returns `Err` for an invalid config or a device error.
    pub fn sample(&self, device: &Device, n: usize, seed: u64, offset: u64) -> Result<Codes> {
        self.check()?;
        let noise = Tensor::rand_normal(device, &[n, self.noise], 0.0, 1.0, seed, offset)?;
        // f32 -> u32 truncates: floor of U[0, k)
        let categorical =
            Tensor::rand_uniform(device, &[n], 0.0, self.categories as f32, seed, offset + 1)?
                .to_dtype(DType::U32)?;
        let continuous =
            Tensor::rand_uniform(device, &[n, self.continuous], -1.0, 1.0, seed, offset + 2)?;
        let z = self.input(&noise, &categorical, &continuous)?;
        Ok(Codes {
            categorical,
            continuous,
            z,
        })
    }
}

/// The Q head: `features -> linear (hidden) -> batch norm -> leaky ReLU 0.1 -> categorical
/// logits [N, categories]` and `-> continuous means [N, continuous]` (the paper's MNIST Q).
pub struct QHead {
    cfg: InfoGanConfig,
    fc: Linear,
    bn: BatchNorm,
    cat: Linear,
    cont: Option<Linear>,
}

impl QHead {
    /// Creates `fc`, `bn`, `cat` and `cont` under `path` for features of width `features`.
    /// Returns `Err` for an invalid config, a zero width or a taken name.
    pub fn new(path: &Path, features: usize, hidden: usize, cfg: InfoGanConfig) -> Result<QHead> {
        cfg.check()?;
        if features == 0 || hidden == 0 {
            return Err(Error::invalid("QHead", "zero width", &[features, hidden]));
        }
        Ok(QHead {
            fc: Linear::new(&path.pp("fc"), features, hidden, true)?,
            bn: BatchNorm::new_1d(&path.pp("bn"), hidden, Default::default())?,
            cat: Linear::new(&path.pp("cat"), hidden, cfg.categories, true)?,
            cont: (cfg.continuous > 0)
                .then(|| Linear::new(&path.pp("cont"), hidden, cfg.continuous, true))
                .transpose()?,
            cfg,
        })
    }

    /// The categorical logits and the continuous means (`None` without continuous codes)
    /// from the discriminator's features. Returns `Err` for features of another width.
    pub fn forward(&self, features: &Tensor, train: bool) -> Result<(Tensor, Option<Tensor>)> {
        let h = self.fc.forward_t(features, train)?;
        let h = self.bn.forward_t(&h, train)?.leaky_relu(0.1)?;
        let cont = self
            .cont
            .as_ref()
            .map(|l| l.forward_t(&h, train))
            .transpose()?;
        Ok((self.cat.forward_t(&h, train)?, cont))
    }

    /// The information loss `lambda_cat CE(logits, c) + lambda_cont mean((c' - mu)^2) / 2`
    /// and the categorical cross-entropy alone (so `ln(categories) - CE` is the lower bound
    /// on the categorical code's mutual information, in nats). Returns `Err` for misshaped
    /// codes.
    pub fn info_loss(
        &self,
        features: &Tensor,
        codes: &Codes,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
        let (logits, mean) = self.forward(features, train)?;
        let ce = cross_entropy(&logits, &codes.categorical, &CrossEntropy::default())?;
        let mut loss = ce.mul_scalar(self.cfg.lambda_cat)?;
        if let Some(mean) = mean {
            let se = mean.sub(&codes.continuous)?.square()?.mean_all()?;
            loss = loss.add(&se.mul_scalar(0.5 * self.cfg.lambda_cont)?)?;
        }
        Ok((loss, ce))
    }

    /// The most likely category of each row of `features` (`[N]` u32), with the head in
    /// evaluation mode. Returns `Err` for features of another width.
    pub fn infer(&self, features: &Tensor) -> Result<Tensor> {
        no_grad(|| self.forward(features, false)?.0.argmax_axis(1, false))
    }
}

/// The losses of one InfoGAN step (device scalars).
#[derive(Clone, Debug)]
pub struct InfoGanStep {
    /// The critic's adversarial loss plus its information term.
    pub d_loss: Tensor,
    /// The generator's adversarial loss plus its information term.
    pub g_loss: Tensor,
    /// The categorical cross-entropy of Q on the generator step's samples.
    pub categorical_ce: Tensor,
}

/// One critic step and one generator step per call, each with the information term.
pub struct InfoGanTrainer {
    /// The adversarial loss (non-saturating in the paper).
    pub loss: GanLoss,
    /// The codes.
    pub config: InfoGanConfig,
    /// Seed of the noise and code draws.
    pub seed: u64,
}

impl InfoGanTrainer {
    /// A critic step on `real` (its optimizer `d_opt` holds the discriminator's and the Q
    /// head's parameters), then a generator step. Codes are drawn from `(seed, step)`.
    /// Returns the losses, or `Err` for a generator whose latent width is not
    /// `config.latent()`, a conditional GAN, mismatched shapes or an optimizer error.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        g: &Generator,
        d: &Discriminator,
        q: &QHead,
        g_opt: &mut dyn Optimizer,
        d_opt: &mut dyn Optimizer,
        real: &Tensor,
        step: u64,
    ) -> Result<InfoGanStep> {
        let gc = g.config();
        if gc.latent != self.config.latent() || gc.classes.is_some() {
            return Err(Error::invalid(
                "InfoGanTrainer",
                "the generator must be unconditional with latent = noise + categories + continuous",
                &[gc.latent, self.config.latent()],
            ));
        }
        let n = real.shape().first().copied().unwrap_or(0);
        let dev = real.device();
        let codes = self.config.sample(&dev, n, self.seed, 8 * step)?;
        let fake = no_grad(|| g.forward(&codes.z, None, true))?;
        let f_fake = d.features(&fake, None, true)?;
        let d_adv = self
            .loss
            .d_loss(&d.forward(real, None, true)?, &d.score(&f_fake, true)?)?;
        let (d_info, _) = q.info_loss(&f_fake, &codes, true)?;
        let d_loss = d_adv.add(&d_info)?;
        d_opt.zero_grad();
        d_loss.backward()?;
        d_opt.step()?;

        let codes = self.config.sample(&dev, n, self.seed, 8 * step + 4)?;
        let f_fake = d.features(&g.forward(&codes.z, None, true)?, None, true)?;
        let g_adv = self.loss.g_loss(&d.score(&f_fake, true)?)?;
        let (g_info, ce) = q.info_loss(&f_fake, &codes, true)?;
        let g_loss = g_adv.add(&g_info)?;
        g_opt.zero_grad();
        g_loss.backward()?;
        g_opt.step()?;
        d_opt.zero_grad();
        Ok(InfoGanStep {
            d_loss: d_loss.detach(),
            g_loss: g_loss.detach(),
            categorical_ce: ce.detach(),
        })
    }
}

/// Cluster purity: each cluster `assigned[i]` (of `clusters`) votes for its most common
/// label, and purity is the share of points whose label is their cluster's vote (1 for a
/// perfect clustering, about the largest class's share for a random one). Returns `Err`
/// for slices of different lengths, an empty slice, or a cluster or label past its count.
pub fn purity(assigned: &[u32], labels: &[u32], clusters: usize, classes: usize) -> Result<f32> {
    if assigned.len() != labels.len() || assigned.is_empty() {
        return Err(Error::shapes("purity", &[assigned.len()], &[labels.len()]));
    }
    let mut counts = vec![0usize; clusters * classes];
    for (&a, &l) in assigned.iter().zip(labels) {
        if a as usize >= clusters || l as usize >= classes {
            return Err(Error::invalid(
                "purity",
                format!("cluster {a} or label {l} out of range"),
                &[clusters, classes],
            ));
        }
        counts[a as usize * classes + l as usize] += 1;
    }
    let hits: usize = counts
        .chunks(classes)
        .map(|row| row.iter().copied().max().unwrap_or(0))
        .sum();
    Ok(hits as f32 / assigned.len() as f32)
}
