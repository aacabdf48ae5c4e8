//! GAN losses (minimax, non-saturating, WGAN, hinge, LSGAN) on the critic's raw outputs,
//! and the gradient penalties of WGAN-GP and DRAGAN, which use higher-order gradients.

use cinder_autograd::{Tensor, grad};
use cinder_device::{DeviceTensor, Error, Result};

/// Which GAN objective. The discriminator's outputs are raw scores (logits for the
/// minimax, non-saturating and LSGAN forms read as probabilities through a sigmoid only
/// where the formula says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GanLoss {
    /// Goodfellow et al.: D maximizes `log D(x) + log(1 - D(G(z)))`; G minimizes
    /// `log(1 - D(G(z)))` (saturating).
    Minimax,
    /// As minimax for D; G maximizes `log D(G(z))` instead.
    NonSaturating,
    /// Wasserstein: D maximizes `E[D(x)] - E[D(G(z))]`; G maximizes `E[D(G(z))]`. Pair it
    /// with weight clipping or a gradient penalty.
    Wgan,
    /// Hinge: D minimizes `E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]`; G minimizes
    /// `-E[D(G(z))]`.
    Hinge,
    /// Least squares (Mao et al.) on raw outputs: D minimizes `0.5 E[(D(x) - 1)^2] + 0.5
    /// E[D(G(z))^2]`; G minimizes `0.5 E[(D(G(z)) - 1)^2]`.
    Lsgan,
}

impl GanLoss {
    /// The discriminator's (critic's) loss to minimize, from its outputs on a real and a
    /// generated batch. Returns `Err` for `u32` inputs.
    pub fn d_loss(self, real: &Tensor, fake: &Tensor) -> Result<Tensor> {
        match self {
            // -log sigmoid(r) - log(1 - sigmoid(f)) = softplus(-r) + softplus(f)
            GanLoss::Minimax | GanLoss::NonSaturating => real
                .neg()?
                .softplus()?
                .mean_all()?
                .add(&fake.softplus()?.mean_all()?),
            GanLoss::Wgan => fake.mean_all()?.sub(&real.mean_all()?),
            GanLoss::Hinge => real
                .rsub_scalar(1.0)?
                .relu()?
                .mean_all()?
                .add(&fake.add_scalar(1.0)?.relu()?.mean_all()?),
            GanLoss::Lsgan => real
                .sub_scalar(1.0)?
                .square()?
                .mean_all()?
                .add(&fake.square()?.mean_all()?)?
                .mul_scalar(0.5),
        }
    }

    /// The generator's loss to minimize, from the discriminator's outputs on a generated
    /// batch. Returns `Err` for `u32` inputs.
    pub fn g_loss(self, fake: &Tensor) -> Result<Tensor> {
        match self {
            // log(1 - sigmoid(f)) = -softplus(f)
            GanLoss::Minimax => fake.softplus()?.mean_all()?.neg(),
            // -log sigmoid(f) = softplus(-f)
            GanLoss::NonSaturating => fake.neg()?.softplus()?.mean_all(),
            GanLoss::Wgan | GanLoss::Hinge => fake.mean_all()?.neg(),
            GanLoss::Lsgan => fake.sub_scalar(1.0)?.square()?.mean_all()?.mul_scalar(0.5),
        }
    }
}

/// Where the gradient penalty is evaluated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Penalty {
    /// WGAN-GP (Gulrajani et al.): on `e x + (1 - e) G(z)`, `e ~ U[0, 1]` per sample.
    WganGp,
    /// DRAGAN (Kodali et al.): on `x + c * std(x) * u`, `u ~ U[0, 1)` elementwise, around
    /// the real data; `c` is usually 0.5.
    Dragan {
        /// Scale of the perturbation relative to the data's standard deviation.
        c: f32,
    },
}

/// The gradient penalty `mean((||d critic(x_hat) / d x_hat||_2 - 1)^2)` over the batch,
/// built with `create_graph` so that its gradient reaches the critic's weights (multiply
/// by lambda, usually 10, and add to the critic's loss). `real` and `fake` are `[N, ...]`
/// (`fake` is ignored by DRAGAN); random numbers come from `(seed, offset)`. Returns `Err`
/// when the shapes differ, the batch is empty or the critic fails.
pub fn gradient_penalty(
    critic: impl Fn(&Tensor) -> Result<Tensor>,
    real: &Tensor,
    fake: &Tensor,
    kind: Penalty,
    seed: u64,
    offset: u64,
) -> Result<Tensor> {
    let s = real.shape();
    if s.is_empty() || (kind == Penalty::WganGp && fake.shape() != s) {
        return Err(Error::shapes("gradient_penalty", &s, &fake.shape()));
    }
    let dev = real.device();
    let (r, f) = (real.raw(), fake.raw());
    let x_hat = match kind {
        Penalty::WganGp => {
            let mut es = vec![1; s.len()];
            es[0] = s[0];
            let e = DeviceTensor::rand_uniform(&dev, &es, 0.0, 1.0, seed, offset)?;
            r.mul(&e)?.add(&f.mul(&e.rsub_scalar(1.0)?)?)?
        }
        Penalty::Dragan { c } => {
            let std = r.var_all(false)?.sqrt()?.mul_scalar(c)?;
            let u = DeviceTensor::rand_uniform(&dev, &s, 0.0, 1.0, seed, offset)?;
            r.add(&u.mul(&std)?)?
        }
    };
    let x_hat = Tensor::parameter(x_hat)?;
    let out = critic(&x_hat)?.sum_all()?;
    let g = grad(&[&out], &[&x_hat], true)?.remove(0);
    let n = s[0];
    if n == 0 {
        // PyTorch's `gradients.view(N, -1)` fails on an empty batch too.
        return Err(Error::invalid("gradient_penalty", "an empty batch", &s));
    }
    let norm = g
        .reshape(&[n, g.numel() / n])?
        .square()?
        .sum_axis(1, false)?
        .add_scalar(1e-12)?
        .sqrt()?;
    norm.sub_scalar(1.0)?.square()?.mean_all()
}
