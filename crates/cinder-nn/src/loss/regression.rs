//! Regression and density losses: MSE, L1, Huber, Gaussian NLL, and the VAE's KL term.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};

use super::{Reduction, same_shape};

/// `(pred - target)^2`, reduced (`nn.MSELoss`). Returns `Err` when the shapes differ.
pub fn mse(pred: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("mse", pred, target)?;
    r.apply(pred.sub(target)?.square()?)
}

/// `|pred - target|`, reduced (`nn.L1Loss`). Returns `Err` when the shapes differ.
pub fn l1(pred: &Tensor, target: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("l1", pred, target)?;
    r.apply(pred.sub(target)?.abs()?)
}

/// Huber loss (`nn.HuberLoss(delta)`): `0.5 d^2` where `|d| < delta`, else
/// `delta (|d| - 0.5 delta)`. Returns `Err` when the shapes differ or `delta <= 0`.
pub fn huber(pred: &Tensor, target: &Tensor, delta: f32, r: Reduction) -> Result<Tensor> {
    same_shape("huber", pred, target)?;
    if delta <= 0.0 {
        return Err(Error::invalid(
            "huber",
            format!("delta {delta} <= 0"),
            &pred.shape(),
        ));
    }
    let d = pred.sub(target)?.abs()?;
    // min(|d|, delta) = q; loss = 0.5 q^2 + delta (|d| - q)
    let q = d.minimum_scalar(delta)?;
    r.apply(
        q.square()?
            .mul_scalar(0.5)?
            .add(&d.sub(&q)?.mul_scalar(delta)?)?,
    )
}

/// Gaussian negative log-likelihood with a predicted variance (`nn.GaussianNLLLoss`):
/// `0.5 (log max(var, eps) + (input - target)^2 / max(var, eps))`, plus `0.5 log 2 pi`
/// when `full`. `var` has the input's shape or broadcasts to it. Returns `Err` on shape
/// mismatch.
pub fn gaussian_nll(
    input: &Tensor,
    target: &Tensor,
    var: &Tensor,
    full: bool,
    eps: f32,
    r: Reduction,
) -> Result<Tensor> {
    same_shape("gaussian_nll", input, target)?;
    let v = var.maximum_scalar(eps)?;
    let mut l = v
        .log()?
        .add(&input.sub(target)?.square()?.div(&v)?)?
        .mul_scalar(0.5)?;
    if full {
        l = l.add_scalar(0.5 * (2.0 * std::f32::consts::PI).ln())?;
    }
    r.apply(l)
}

/// `KL(N(mu, exp(logvar)) || N(0, I))` of a diagonal Gaussian, the VAE's regularizer:
/// `-0.5 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))` per sample (the last dimension is
/// the latent one), then reduced over the batch (`Mean` divides by the batch size).
/// Returns `Err` when the shapes differ.
pub fn kl_div_gaussian(mu: &Tensor, logvar: &Tensor, r: Reduction) -> Result<Tensor> {
    same_shape("kl_div_gaussian", mu, logvar)?;
    let terms = logvar
        .add_scalar(1.0)?
        .sub(&mu.square()?)?
        .sub(&logvar.exp()?)?;
    let per_sample = terms.sum_axis(-1, false)?.mul_scalar(-0.5)?;
    r.apply(per_sample)
}
