//! Generative adversarial networks: an MLP GAN and a DCGAN (strided convolutions in the
//! discriminator, transposed convolutions with batch norm in the generator, `N(0, 0.02)`
//! initialization), optionally conditional (a label embedding concatenated to `z` and to
//! the discriminator's input), and one training step with a selectable loss (minimax,
//! non-saturating, WGAN with weight clipping, WGAN-GP, LSGAN, hinge, DRAGAN) and `n_critic`
//! discriminator steps per generator step. BEGAN is in [`crate::began`], InfoGAN in
//! [`crate::infogan`].

use cinder_autograd::{Tensor, no_grad};
use cinder_device::{Error, Result};
use cinder_nn::loss::{GanLoss, Penalty, gradient_penalty};
use cinder_nn::optim::Optimizer;
use cinder_nn::{
    BatchNorm, Conv2d, ConvTranspose2d, Embedding, Init, Linear, ModuleT, Path, VarStore,
};

/// Which generator/discriminator pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GanArch {
    /// `z -> h -> 2h -> pixels (tanh)` and `pixels -> 2h -> h -> 1`, ReLU in G, leaky
    /// ReLU (0.2) in D.
    Mlp {
        /// Hidden width `h`.
        hidden: usize,
    },
    /// DCGAN for `H`, `W` divisible by 4: G is `linear -> BN -> relu -> [2w, H/4, W/4] ->
    /// convT 4x4 s2 (2w->w) -> BN -> relu -> convT 4x4 s2 (w->C) -> tanh`; D is
    /// `conv 4x4 s2 (C->w) -> lrelu -> conv 4x4 s2 (w->2w) -> lrelu -> linear -> 1` (no
    /// batch norm in D, so that the gradient penalty is per example).
    Dcgan {
        /// Channels `w`.
        width: usize,
    },
}

/// Shapes shared by a generator and its discriminator.
#[derive(Clone, Debug, PartialEq)]
pub struct GanConfig {
    /// The architecture.
    pub arch: GanArch,
    /// Image shape `[C, H, W]` (pixels in `[-1, 1]`).
    pub image: [usize; 3],
    /// Dimension of `z`.
    pub latent: usize,
    /// Number of classes for a conditional GAN (`None`: unconditional).
    pub classes: Option<usize>,
    /// Width of the label embedding concatenated to `z` (and, for the MLP, to D's input;
    /// the DCGAN's D takes the label as an extra `H x W` input channel).
    pub embed: usize,
}

impl GanConfig {
    pub(crate) fn check(&self) -> Result<()> {
        let [c, h, w] = self.image;
        let bad_conv =
            matches!(self.arch, GanArch::Dcgan { width } if width == 0 || h % 4 != 0 || w % 4 != 0);
        let bad_mlp = matches!(self.arch, GanArch::Mlp { hidden } if hidden == 0);
        let bad_cond = self.classes.is_some_and(|k| k == 0 || self.embed == 0);
        if c * h * w == 0 || self.latent == 0 || bad_conv || bad_mlp || bad_cond {
            return Err(Error::invalid(
                "GanConfig",
                "zero size, conv image sides not divisible by 4, or zero classes/embedding",
                &[c, h, w, self.latent],
            ));
        }
        Ok(())
    }
}

pub(crate) fn check_labels(
    op: &'static str,
    cfg: &GanConfig,
    n: usize,
    labels: Option<&Tensor>,
) -> Result<()> {
    match (cfg.classes, labels) {
        (None, None) => Ok(()),
        (Some(_), Some(l)) if l.shape() == [n] => Ok(()),
        (Some(_), Some(l)) => Err(Error::shapes(op, &l.shape(), &[n])),
        _ => Err(Error::invalid(
            op,
            "labels are required by a conditional GAN and refused by an unconditional one",
            &[n],
        )),
    }
}

/// The generator: `z` `[N, latent]` (and labels `[N]` u32 when conditional) to images
/// `[N, C, H, W]` in `(-1, 1)`.
pub struct Generator {
    cfg: GanConfig,
    embed: Option<Embedding>,
    fcs: Vec<Linear>,
    bn0: Option<BatchNorm>,
    deconvs: Vec<ConvTranspose2d>,
    bn1: Option<BatchNorm>,
}

impl Generator {
    /// Creates the parameters under `path` (`embed`, `fc{i}`, `bn0`, `deconv{i}`, `bn1`).
    /// Returns `Err` for an invalid config or a taken name.
    pub fn new(path: &Path, cfg: GanConfig) -> Result<Generator> {
        cfg.check()?;
        let [c, h, w] = cfg.image;
        let embed = cfg
            .classes
            .map(|k| Embedding::new(&path.pp("embed"), k, cfg.embed))
            .transpose()?;
        let zin = cfg.latent + if cfg.classes.is_some() { cfg.embed } else { 0 };
        let bn = Default::default();
        Ok(match cfg.arch {
            GanArch::Mlp { hidden } => Generator {
                fcs: vec![
                    Linear::new(&path.pp("fc0"), zin, hidden, true)?,
                    Linear::new(&path.pp("fc1"), hidden, 2 * hidden, true)?,
                    Linear::new(&path.pp("fc2"), 2 * hidden, c * h * w, true)?,
                ],
                embed,
                bn0: None,
                deconvs: vec![],
                bn1: None,
                cfg,
            },
            GanArch::Dcgan { width } => {
                let t2 = crate::halving::up();
                let flat = 2 * width * (h / 4) * (w / 4);
                Generator {
                    fcs: vec![Linear::new(&path.pp("fc0"), zin, flat, true)?],
                    bn0: Some(BatchNorm::new_1d(&path.pp("bn0"), flat, bn)?),
                    deconvs: vec![
                        ConvTranspose2d::new(&path.pp("deconv1"), 2 * width, width, 4, t2)?,
                        ConvTranspose2d::new(&path.pp("deconv2"), width, c, 4, t2)?,
                    ],
                    bn1: Some(BatchNorm::new_2d(&path.pp("bn1"), width, bn)?),
                    embed,
                    cfg,
                }
            }
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GanConfig {
        &self.cfg
    }

    /// Generates images from `z` (and `labels` for a conditional GAN); `train` selects batch
    /// statistics in the DCGAN's batch norm. Returns `Err` for a `z` of the wrong width or
    /// missing, unexpected or misshaped labels.
    pub fn forward(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let s = z.shape();
        if s.len() != 2 || s[1] != self.cfg.latent {
            return Err(Error::shapes("Generator", &s, &[self.cfg.latent]));
        }
        let n = s[0];
        check_labels("Generator", &self.cfg, n, labels)?;
        let mut h = match (&self.embed, labels) {
            (Some(e), Some(l)) => Tensor::concat(&[z, &e.forward_t(l, train)?], 1)?,
            _ => z.clone(),
        };
        let [c, ih, iw] = self.cfg.image;
        match self.cfg.arch {
            GanArch::Mlp { .. } => {
                for (i, l) in self.fcs.iter().enumerate() {
                    h = l.forward_t(&h, train)?;
                    h = if i + 1 < self.fcs.len() {
                        h.relu()?
                    } else {
                        h.tanh()?
                    };
                }
                h.reshape(&[n, c, ih, iw])
            }
            GanArch::Dcgan { width } => {
                h = self.fcs[0].forward_t(&h, train)?;
                h = self.bn0.as_ref().unwrap().forward_t(&h, train)?.relu()?;
                h = h.reshape(&[n, 2 * width, ih / 4, iw / 4])?;
                h = self.deconvs[0].forward_t(&h, train)?;
                h = self.bn1.as_ref().unwrap().forward_t(&h, train)?.relu()?;
                self.deconvs[1].forward_t(&h, train)?.tanh()
            }
        }
    }
}

/// The discriminator (critic): images `[N, C, H, W]` (and labels when conditional) to raw
/// scores `[N]`.
pub struct Discriminator {
    cfg: GanConfig,
    embed: Option<Embedding>,
    convs: Vec<Conv2d>,
    fcs: Vec<Linear>,
}

impl Discriminator {
    /// Creates the parameters under `path` (`embed`, `conv{i}`, `fc{i}`). Returns `Err` for
    /// an invalid config or a taken name.
    pub fn new(path: &Path, cfg: GanConfig) -> Result<Discriminator> {
        cfg.check()?;
        let [c, h, w] = cfg.image;
        let cond = cfg.classes.is_some();
        Ok(match cfg.arch {
            GanArch::Mlp { hidden } => {
                let e = if cond { cfg.embed } else { 0 };
                Discriminator {
                    embed: cfg
                        .classes
                        .map(|k| Embedding::new(&path.pp("embed"), k, cfg.embed))
                        .transpose()?,
                    convs: vec![],
                    fcs: vec![
                        Linear::new(&path.pp("fc0"), c * h * w + e, 2 * hidden, true)?,
                        Linear::new(&path.pp("fc1"), 2 * hidden, hidden, true)?,
                        Linear::new(&path.pp("fc2"), hidden, 1, true)?,
                    ],
                    cfg,
                }
            }
            GanArch::Dcgan { width } => {
                let s2 = crate::halving::down();
                let cin = c + usize::from(cond);
                Discriminator {
                    embed: cfg
                        .classes
                        .map(|k| Embedding::new(&path.pp("embed"), k, h * w))
                        .transpose()?,
                    convs: vec![
                        Conv2d::new(&path.pp("conv1"), cin, width, 4, s2)?,
                        Conv2d::new(&path.pp("conv2"), width, 2 * width, 4, s2)?,
                    ],
                    fcs: vec![Linear::new(
                        &path.pp("fc"),
                        2 * width * (h / 4) * (w / 4),
                        1,
                        true,
                    )?],
                    cfg,
                }
            }
        })
    }

    /// Scores `[N]` of images `x` (with `labels` for a conditional GAN): [`Self::score`] of
    /// [`Self::features`]. Returns `Err` for images of another shape or missing,
    /// unexpected or misshaped labels.
    pub fn forward(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Result<Tensor> {
        self.score(&self.features(x, labels, train)?, train)
    }

    /// Width of [`Self::features`]' rows: `h` for the MLP, `2w (H/4) (W/4)` for the DCGAN.
    pub fn feature_width(&self) -> usize {
        let [_, h, w] = self.cfg.image;
        match self.cfg.arch {
            GanArch::Mlp { hidden } => hidden,
            GanArch::Dcgan { width } => 2 * width * (h / 4) * (w / 4),
        }
    }

    /// Everything before the last linear layer, flattened to `[N, feature_width]`: the
    /// trunk an InfoGAN's Q head shares. Returns `Err` for images of another shape or
    /// missing, unexpected or misshaped labels.
    pub fn features(&self, x: &Tensor, labels: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let s = x.shape();
        if s.len() != 4 || s[1..] != self.cfg.image {
            return Err(Error::shapes("Discriminator", &s, &self.cfg.image));
        }
        let n = s[0];
        check_labels("Discriminator", &self.cfg, n, labels)?;
        let [_, h, w] = self.cfg.image;
        match self.cfg.arch {
            GanArch::Mlp { .. } => {
                let mut y = x.flatten_from(1)?;
                if let (Some(e), Some(l)) = (&self.embed, labels) {
                    y = Tensor::concat(&[&y, &e.forward_t(l, train)?], 1)?;
                }
                for l in &self.fcs[..self.fcs.len() - 1] {
                    y = l.forward_t(&y, train)?.leaky_relu(0.2)?;
                }
                Ok(y)
            }
            GanArch::Dcgan { .. } => {
                let mut y = x.clone();
                if let (Some(e), Some(l)) = (&self.embed, labels) {
                    let m = e.forward_t(l, train)?.reshape(&[n, 1, h, w])?;
                    y = Tensor::concat(&[&y, &m], 1)?;
                }
                for c in &self.convs {
                    y = c.forward_t(&y, train)?.leaky_relu(0.2)?;
                }
                y.flatten_from(1)
            }
        }
    }

    /// Scores `[N]` from [`Self::features`]' output `[N, feature_width]`. Returns `Err` for
    /// features of another width.
    pub fn score(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        let s = features.shape();
        if s.len() != 2 || s[1] != self.feature_width() {
            return Err(Error::shapes(
                "Discriminator::score",
                &s,
                &[self.feature_width()],
            ));
        }
        let out = self.fcs[self.fcs.len() - 1].forward_t(features, train)?;
        out.reshape(&[s[0]])
    }
}

/// DCGAN's initialization of every parameter in `vs`: weights of convolutions, transposed
/// convolutions and linear layers `N(0, 0.02)`, batch-norm weights `N(1, 0.02)`, biases 0;
/// embeddings keep theirs. Draws from Philox streams `(seed, i)`. Returns `Err` if the
/// device fails.
pub fn dcgan_init(vs: &VarStore, seed: u64) -> Result<()> {
    let dev = vs.device().clone();
    for (i, (name, p)) in vs.named_parameters().into_iter().enumerate() {
        let shape = p.shape();
        let init = if name.ends_with(".bias") {
            Init::Constant(0.0)
        } else if name.contains("embed") {
            continue;
        } else if name.contains("bn") {
            Init::Normal {
                mean: 1.0,
                std: 0.02,
            }
        } else {
            Init::Normal {
                mean: 0.0,
                std: 0.02,
            }
        };
        p.set_data(&init.tensor(&dev, &shape, seed, i as u64)?)?;
    }
    Ok(())
}

/// How the critic is kept Lipschitz (or not).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Regularizer {
    /// Nothing.
    None,
    /// Clamp every critic parameter to `[-c, c]` after each critic step (WGAN, c = 0.01).
    Clip(f32),
    /// Add `lambda * gradient_penalty` (WGAN-GP, lambda = 10) to the critic's loss.
    GradientPenalty(f32),
    /// Add `lambda * gradient_penalty` with DRAGAN's perturbation of the real data,
    /// `x + c std(x) u` (Kodali et al.: lambda = 10, c = 0.5), to the critic's loss.
    Dragan {
        /// Weight of the penalty.
        lambda: f32,
        /// Scale of the perturbation relative to the batch's standard deviation.
        c: f32,
    },
}

/// A named loss and regularizer pair, as the examples' `--loss` selects it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    /// The adversarial loss.
    pub loss: GanLoss,
    /// The critic's regularizer.
    pub reg: Regularizer,
}

impl Objective {
    /// `minimax`, `nonsaturating` (or `ns`), `wgan` (weight clipping at 0.01), `wgan-gp`
    /// (lambda 10), `lsgan`, `hinge`, `dragan` (the non-saturating loss with DRAGAN's
    /// penalty, lambda 10, c 0.5). BEGAN is not an `Objective`: its critic is an
    /// autoencoder ([`crate::began`]). Returns `Err` naming the choices for anything else.
    pub fn parse(name: &str) -> Result<Objective> {
        let (loss, reg) = match name {
            "minimax" => (GanLoss::Minimax, Regularizer::None),
            "nonsaturating" | "ns" => (GanLoss::NonSaturating, Regularizer::None),
            "wgan" => (GanLoss::Wgan, Regularizer::Clip(0.01)),
            "wgan-gp" => (GanLoss::Wgan, Regularizer::GradientPenalty(10.0)),
            "lsgan" => (GanLoss::Lsgan, Regularizer::None),
            "hinge" => (GanLoss::Hinge, Regularizer::None),
            "dragan" => (
                GanLoss::NonSaturating,
                Regularizer::Dragan {
                    lambda: 10.0,
                    c: 0.5,
                },
            ),
            _ => {
                return Err(Error::invalid(
                    "Objective",
                    format!(
                        "unknown GAN loss {name:?} (minimax, nonsaturating, wgan, wgan-gp, lsgan, hinge, dragan)"
                    ),
                    &[],
                ));
            }
        };
        Ok(Objective { loss, reg })
    }
}

/// The losses of one training step (the generator's only on steps that update it).
#[derive(Clone, Debug)]
pub struct GanStep {
    /// The critic's loss (with the penalty when there is one).
    pub d_loss: Tensor,
    /// The gradient penalty before lambda, when there is one.
    pub penalty: Option<Tensor>,
    /// The generator's loss, on steps where G was updated.
    pub g_loss: Option<Tensor>,
}

/// Alternating updates: every call is one critic step; every `n_critic`-th call is also a
/// generator step.
pub struct GanTrainer {
    /// The objective.
    pub objective: Objective,
    /// Critic steps per generator step (1 for the GAN, 5 for WGAN and WGAN-GP).
    pub n_critic: usize,
    /// Seed of the `z` draws and the penalty's interpolation weights.
    pub seed: u64,
}

impl GanTrainer {
    /// One critic step on `real` (and `labels` when conditional, also given to G for the
    /// fakes), then, when `(step + 1) % n_critic == 0`, one generator step. Noise streams
    /// are derived from `(seed, step)`. Returns the losses, or `Err` for `n_critic == 0`,
    /// mismatched shapes or labels, or an optimizer error.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        g: &Generator,
        d: &Discriminator,
        g_opt: &mut dyn Optimizer,
        d_opt: &mut dyn Optimizer,
        real: &Tensor,
        labels: Option<&Tensor>,
        step: u64,
    ) -> Result<GanStep> {
        if self.n_critic == 0 {
            return Err(Error::invalid("GanTrainer", "n_critic = 0", &[]));
        }
        let n = real.shape().first().copied().unwrap_or(0);
        let dev = real.device();
        let latent = g.config().latent;
        let z = Tensor::rand_normal(&dev, &[n, latent], 0.0, 1.0, self.seed, 4 * step)?;
        // no graph through G for the critic's step
        let fake = no_grad(|| g.forward(&z, labels, true))?;
        let d_real = d.forward(real, labels, true)?;
        let d_fake = d.forward(&fake, labels, true)?;
        let mut d_loss = self.objective.loss.d_loss(&d_real, &d_fake)?;
        let mut penalty = None;
        let penalty_kind = match self.objective.reg {
            Regularizer::GradientPenalty(lambda) => Some((lambda, Penalty::WganGp)),
            Regularizer::Dragan { lambda, c } => Some((lambda, Penalty::Dragan { c })),
            _ => None,
        };
        if let Some((lambda, kind)) = penalty_kind {
            let gp = gradient_penalty(
                |x: &Tensor| d.forward(x, labels, true),
                real,
                &fake,
                kind,
                self.seed,
                4 * step + 1,
            )?;
            d_loss = d_loss.add(&gp.mul_scalar(lambda)?)?;
            penalty = Some(gp);
        }
        d_opt.zero_grad();
        d_loss.backward()?;
        d_opt.step()?;
        if let Regularizer::Clip(c) = self.objective.reg {
            clip_parameters(d_opt.parameters(), c)?;
        }
        let mut g_loss = None;
        if (step + 1).is_multiple_of(self.n_critic as u64) {
            let z = Tensor::rand_normal(&dev, &[n, latent], 0.0, 1.0, self.seed, 4 * step + 2)?;
            let fake = g.forward(&z, labels, true)?;
            let l = self
                .objective
                .loss
                .g_loss(&d.forward(&fake, labels, true)?)?;
            g_opt.zero_grad();
            l.backward()?;
            g_opt.step()?;
            d_opt.zero_grad();
            g_loss = Some(l);
        }
        Ok(GanStep {
            d_loss,
            penalty,
            g_loss,
        })
    }
}

/// Clamps every parameter to `[-c, c]` in place (WGAN's weight clipping). Returns `Err` for
/// a negative `c`.
pub fn clip_parameters(params: &[Tensor], c: f32) -> Result<()> {
    if c.is_nan() || c < 0.0 {
        return Err(Error::invalid(
            "clip_parameters",
            "negative clip value",
            &[],
        ));
    }
    no_grad(|| {
        for p in params {
            p.set_data(&p.clamp(-c, c)?)?;
        }
        Ok(())
    })
}
