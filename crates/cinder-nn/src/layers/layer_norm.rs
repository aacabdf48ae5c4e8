//! Layer normalization (`nn.LayerNorm`) and root-mean-square normalization (`nn.RMSNorm`)
//! over the trailing `normalized_shape` dimensions, as modules and as functions
//! (`F.layer_norm`, `F.rms_norm`).
//!
//! Both are composed of differentiable `Tensor` ops (a mean, a biased variance or a mean of
//! squares along one axis, `rsqrt`, products), so their gradients of every order come from
//! the autograd rules of those ops.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};

use crate::init::Init;
use crate::module::Module;
use crate::var_store::Path;

/// `Err` unless `eps` is finite and non-negative.
pub(crate) fn check_eps(op: &'static str, eps: f32) -> Result<()> {
    if !eps.is_finite() || eps < 0.0 {
        return Err(Error::invalid(
            op,
            format!("eps {eps} is not a finite non-negative number"),
            &[],
        ));
    }
    Ok(())
}

/// `Err` for an empty normalized shape or one with a zero dimension, and
/// [`Error::TooLarge`] for one whose size is not a valid tensor shape's.
fn check_normalized_shape(op: &'static str, shape: &[usize]) -> Result<usize> {
    if shape.is_empty() || shape.contains(&0) {
        return Err(Error::invalid(
            op,
            "normalized_shape must be non-empty with no zero dimension",
            shape,
        ));
    }
    cinder_device::shape::checked_numel(op, shape)
}

/// Checks that `x` ends with `normalized_shape` and that the affine tensors have that shape;
/// returns `x` viewed as `[outer, inner]` with `inner` the normalized elements.
fn rows(
    op: &'static str,
    x: &Tensor,
    normalized_shape: &[usize],
    affine: &[Option<&Tensor>],
) -> Result<Tensor> {
    let inner = check_normalized_shape(op, normalized_shape)?;
    let s = x.shape();
    let k = normalized_shape.len();
    if s.len() < k || s[s.len() - k..] != *normalized_shape {
        return Err(Error::invalid(
            op,
            format!("input does not end with normalized_shape {normalized_shape:?}"),
            &s,
        ));
    }
    for t in affine.iter().flatten() {
        if t.shape() != normalized_shape {
            return Err(Error::shapes(op, &t.shape(), normalized_shape));
        }
    }
    x.reshape(&[x.numel() / inner, inner])
}

/// Multiplies the `[outer, inner]` rows by `weight` and adds `bias` (each of the
/// normalized shape), then restores `shape`.
fn affine_rows(
    y: Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    shape: &[usize],
) -> Result<Tensor> {
    let inner = y.shape()[1];
    let y = match weight {
        Some(w) => y.mul(&w.reshape(&[inner])?)?,
        None => y,
    };
    let y = match bias {
        Some(b) => y.add(&b.reshape(&[inner])?)?,
        None => y,
    };
    y.reshape(shape)
}

/// `F.layer_norm`: normalizes `x` over its trailing `normalized_shape` dimensions with
/// their mean and biased variance, `(x - mean) / sqrt(var + eps)`, then multiplies by
/// `weight` and adds `bias` (each of shape `normalized_shape`) when given.
///
/// Returns `Err` when `normalized_shape` is empty or has a zero dimension, when `x` does
/// not end with it, when `weight` or `bias` has another shape, for a negative or non-finite
/// `eps`, or for a `u32` input.
pub fn layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    let op = "layer_norm";
    check_eps(op, eps)?;
    let r = rows(op, x, normalized_shape, &[weight, bias])?;
    let mean = r.mean_axis(1, true)?;
    let inv_std = r.var_axis(1, false, true)?.add_scalar(eps)?.rsqrt()?;
    let y = r.sub(&mean)?.mul(&inv_std)?;
    affine_rows(y, weight, bias, &x.shape())
}

/// `F.rms_norm`: `x / sqrt(mean(x^2) + eps)` over the trailing `normalized_shape`
/// dimensions, times `weight` (of shape `normalized_shape`) when given. `eps = None` is
/// PyTorch's default, the machine epsilon of f32 (`torch.finfo(torch.float32).eps`,
/// `f32::EPSILON`).
///
/// Returns `Err` when `normalized_shape` is empty or has a zero dimension, when `x` does
/// not end with it, when `weight` has another shape, for a negative or non-finite `eps`,
/// or for a `u32` input.
pub fn rms_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    eps: Option<f32>,
) -> Result<Tensor> {
    let op = "rms_norm";
    let eps = eps.unwrap_or(f32::EPSILON);
    check_eps(op, eps)?;
    let r = rows(op, x, normalized_shape, &[weight])?;
    let inv_rms = r.square()?.mean_axis(1, true)?.add_scalar(eps)?.rsqrt()?;
    affine_rows(r.mul(&inv_rms)?, weight, None, &x.shape())
}

/// Options of [`LayerNorm`], PyTorch's arguments and defaults: eps 1e-5, learnable
/// `weight` (ones) and `bias` (zeros).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormConfig {
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Learnable `weight` (and `bias`, unless `bias` is false) of shape `normalized_shape`.
    pub elementwise_affine: bool,
    /// Learnable `bias` (only with `elementwise_affine`, as PyTorch).
    pub bias: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        LayerNormConfig {
            eps: 1e-5,
            elementwise_affine: true,
            bias: true,
        }
    }
}

/// `nn.LayerNorm(normalized_shape)`: [`layer_norm`] over the trailing dimensions, with
/// parameters `weight` and `bias` named as PyTorch's.
pub struct LayerNorm {
    /// `normalized_shape`, ones at first (with `elementwise_affine`).
    pub weight: Option<Tensor>,
    /// `normalized_shape`, zeros at first (with `elementwise_affine` and `bias`).
    pub bias: Option<Tensor>,
    normalized_shape: Vec<usize>,
    eps: f32,
}

impl LayerNorm {
    /// Creates the layer under `path`. Returns `Err` for an empty normalized shape or one
    /// with a zero dimension, a negative or non-finite eps, or a taken name.
    pub fn new(path: &Path, normalized_shape: &[usize], cfg: LayerNormConfig) -> Result<LayerNorm> {
        check_normalized_shape("LayerNorm", normalized_shape)?;
        check_eps("LayerNorm", cfg.eps)?;
        let (weight, bias) = if cfg.elementwise_affine {
            let w = path.var("weight", normalized_shape, Init::Constant(1.0))?;
            let b = cfg
                .bias
                .then(|| path.var("bias", normalized_shape, Init::Constant(0.0)))
                .transpose()?;
            (Some(w), b)
        } else {
            (None, None)
        };
        Ok(LayerNorm {
            weight,
            bias,
            normalized_shape: normalized_shape.to_vec(),
            eps: cfg.eps,
        })
    }

    /// The trailing shape the layer normalizes over.
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }
}

impl Module for LayerNorm {
    /// Normalizes `x`. Returns `Err` when `x` does not end with the normalized shape or is
    /// `u32`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(
            x,
            &self.normalized_shape,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }
}

/// Options of [`RmsNorm`], PyTorch's arguments and defaults: `eps = None` (f32's machine
/// epsilon), a learnable `weight` (ones).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormConfig {
    /// Added to the mean square before the square root; `None` is `f32::EPSILON`
    /// (`torch.finfo(torch.float32).eps`), PyTorch's default.
    pub eps: Option<f32>,
    /// Learnable `weight` of shape `normalized_shape`.
    pub elementwise_affine: bool,
}

impl Default for RmsNormConfig {
    fn default() -> Self {
        RmsNormConfig {
            eps: None,
            elementwise_affine: true,
        }
    }
}

/// `nn.RMSNorm(normalized_shape)`: [`rms_norm`] over the trailing dimensions, with a
/// parameter `weight` named as PyTorch's (RMSNorm has no bias).
pub struct RmsNorm {
    /// `normalized_shape`, ones at first (with `elementwise_affine`).
    pub weight: Option<Tensor>,
    normalized_shape: Vec<usize>,
    eps: Option<f32>,
}

impl RmsNorm {
    /// Creates the layer under `path`. Returns `Err` for an empty normalized shape or one
    /// with a zero dimension, a negative or non-finite eps, or a taken name.
    pub fn new(path: &Path, normalized_shape: &[usize], cfg: RmsNormConfig) -> Result<RmsNorm> {
        check_normalized_shape("RMSNorm", normalized_shape)?;
        check_eps("RMSNorm", cfg.eps.unwrap_or(f32::EPSILON))?;
        let weight = cfg
            .elementwise_affine
            .then(|| path.var("weight", normalized_shape, Init::Constant(1.0)))
            .transpose()?;
        Ok(RmsNorm {
            weight,
            normalized_shape: normalized_shape.to_vec(),
            eps: cfg.eps,
        })
    }

    /// The trailing shape the layer normalizes over.
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }
}

impl Module for RmsNorm {
    /// Normalizes `x`. Returns `Err` when `x` does not end with the normalized shape or is
    /// `u32`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm(x, &self.normalized_shape, self.weight.as_ref(), self.eps)
    }
}
