//! Regression and density losses: MSE, L1, Huber, smooth L1, Gaussian NLL, the KL
//! divergence of `nn.KLDivLoss`, and the VAE's KL term.

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
/// `delta (|d| - 0.5 delta)`. Returns `Err` when the shapes differ or `delta` is not
/// positive (NaN included), as PyTorch raises.
pub fn huber(pred: &Tensor, target: &Tensor, delta: f32, r: Reduction) -> Result<Tensor> {
    same_shape("huber", pred, target)?;
    if delta.is_nan() || delta <= 0.0 {
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

/// Smooth L1 loss (`nn.SmoothL1Loss(beta)`): `0.5 d^2 / beta` where `|d| < beta`, else
/// `|d| - 0.5 beta`, with `d = pred - target`; `beta = 0` is the L1 loss, as PyTorch.
/// Returns `Err` when the shapes differ or `beta` is negative or NaN (PyTorch raises for a
/// negative beta).
pub fn smooth_l1(pred: &Tensor, target: &Tensor, beta: f32, r: Reduction) -> Result<Tensor> {
    same_shape("smooth_l1", pred, target)?;
    if beta.is_nan() || beta < 0.0 {
        return Err(Error::invalid(
            "smooth_l1",
            format!("beta {beta} is negative"),
            &pred.shape(),
        ));
    }
    if beta == 0.0 {
        return l1(pred, target, r);
    }
    let d = pred.sub(target)?.abs()?;
    // q = min(|d|, beta); loss = 0.5 q^2 / beta + (|d| - q)
    let q = d.minimum_scalar(beta)?;
    r.apply(q.square()?.mul_scalar(0.5 / beta)?.add(&d.sub(&q)?)?)
}

/// `max(var, eps)` in value, with the gradient of the identity: PyTorch clamps `var` in
/// place under `no_grad`, so its gradient flows as if unclamped.
fn clamp_min_keep_grad(var: &Tensor, eps: f32) -> Result<Tensor> {
    let v = var.raw().maximum_scalar(eps)?;
    Ok(Tensor::from_op("clamp_min_keep_grad", v, &[var], |c| {
        Ok(vec![Some(c.grad.clone())])
    }))
}

/// `var` reshaped as PyTorch's `gaussian_nll_loss` does: the input's shape; one dimension
/// short of it (unsqueezed at the end); or the input's rank with a single mismatched
/// dimension of size 1 (`[N, 2, 1]` for `[N, 2, 3]`, `[4, 1, 8, 8]` for `[4, 3, 8, 8]`).
fn gaussian_var_shape(input: &[usize], var: &Tensor) -> Result<Tensor> {
    let vs = var.shape();
    if vs == input {
        return Ok(var.clone());
    }
    if !input.is_empty() && vs == input[..input.len() - 1] {
        let mut s = vs.clone();
        s.push(1);
        return var.reshape(&s);
    }
    let mismatched: usize = input
        .iter()
        .zip(&vs)
        .filter(|(x, y)| x != y)
        .map(|(_, y)| *y)
        .sum();
    if vs.len() == input.len() && mismatched == 1 {
        return Ok(var.clone());
    }
    Err(Error::invalid(
        "gaussian_nll",
        format!("var of shape {vs:?} is of incorrect size"),
        input,
    ))
}

/// Gaussian negative log-likelihood with a predicted variance (`nn.GaussianNLLLoss`):
/// `0.5 (log v + (input - target)^2 / v)` with `v = max(var, eps)`, plus `0.5 log 2 pi`
/// when `full`. As PyTorch, the clamp does not cut the gradient: `var` gets the derivative
/// at `v` even below `eps`. `var` has the input's shape, or that shape without its last
/// dimension (one variance per sample), or the input's rank with one dimension of size 1
/// where the input's differs (PyTorch's rules).
///
/// A negative entry of `var` is an error, as PyTorch raises: checked on the device, it is
/// reported as [`cinder_device::Error::OutOfDomain`] at the next readback or sync (a NaN
/// `var` passes the check and gives NaN, as in PyTorch). Returns `Err` when `input` and
/// `target` differ in shape, or `var`'s shape is none of the above.
pub fn gaussian_nll(
    input: &Tensor,
    target: &Tensor,
    var: &Tensor,
    full: bool,
    eps: f32,
    r: Reduction,
) -> Result<Tensor> {
    same_shape("gaussian_nll", input, target)?;
    let var = gaussian_var_shape(&input.shape(), var)?;
    var.raw()
        .check_min("gaussian_nll", "var has negative entry/entries", 0.0)?;
    let v = clamp_min_keep_grad(&var, eps)?;
    let mut l = v
        .log()?
        .add(&input.sub(target)?.square()?.div(&v)?)?
        .mul_scalar(0.5)?;
    if full {
        l = l.add_scalar(0.5 * (2.0 * std::f32::consts::PI).ln())?;
    }
    r.apply(l)
}

/// The reduction of [`kl_div`]: PyTorch's `reduction` of `nn.KLDivLoss`, which has
/// `batchmean` besides the usual three.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KlReduction {
    /// The mean over every element (PyTorch's default, which it warns about).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction.
    None,
    /// The sum divided by the batch size (`input.shape[0]`; the sum for a 0-d input): the
    /// KL divergence's mathematical definition, averaged over samples.
    BatchMean,
}

impl From<Reduction> for KlReduction {
    fn from(r: Reduction) -> Self {
        match r {
            Reduction::Mean => KlReduction::Mean,
            Reduction::Sum => KlReduction::Sum,
            Reduction::None => KlReduction::None,
        }
    }
}

/// The KL divergence `nn.KLDivLoss` computes, pointwise from log-probabilities `input`
/// and a `target` given as probabilities (`log_target = false`: `t log t - t input`, with
/// `0 log 0 = 0` and NaN for a negative `t`, as PyTorch's `xlogy`) or as log-probabilities
/// (`log_target = true`: `exp(t) (t - input)`), then reduced. `input` and `target`
/// broadcast as in PyTorch. Gradients are PyTorch's too, including the NaN that the target
/// gets where it is exactly 0 (only when the target requires grad).
///
/// Returns `Err` when the shapes do not broadcast or for `u32` tensors.
pub fn kl_div(
    input: &Tensor,
    target: &Tensor,
    reduction: KlReduction,
    log_target: bool,
) -> Result<Tensor> {
    let l = if log_target {
        target.exp()?.mul(&target.sub(input)?)?
    } else {
        // xlogy(t, t): 0 where t == 0, else t log t (NaN for t < 0).
        let zero = Tensor::zeros(&target.device(), &[])?;
        let tlogt =
            Tensor::where_cond(&target.eq_scalar(0.0)?, &zero, &target.mul(&target.log()?)?)?;
        tlogt.sub(&target.mul(input)?)?
    };
    match reduction {
        KlReduction::Mean => l.mean_all(),
        KlReduction::Sum => l.sum_all(),
        KlReduction::None => Ok(l),
        KlReduction::BatchMean => match input.shape().first() {
            Some(&n) => l.sum_all()?.div_scalar(n as f32),
            None => l.sum_all(),
        },
    }
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
