//! Group normalization (`nn.GroupNorm`, `F.group_norm`): the channels of each sample are
//! split into groups, each normalized with its own mean and biased variance, then scaled
//! and shifted per channel. Composed of differentiable `Tensor` ops.

use cinder_autograd::Tensor;
use cinder_device::{Error, Result};

use super::layer_norm::check_eps;
use crate::init::Init;
use crate::module::Module;
use crate::var_store::Path;

fn check_groups(op: &'static str, groups: usize, channels: usize) -> Result<()> {
    if groups == 0 || channels == 0 || !channels.is_multiple_of(groups) {
        return Err(Error::invalid(
            op,
            format!("{channels} channels cannot be split into {groups} groups"),
            &[channels],
        ));
    }
    Ok(())
}

/// `F.group_norm`: `x` is `[N, C, *]` (rank 2 or more); the `C` channels of each sample form
/// `num_groups` groups of `C / num_groups` consecutive channels, each normalized over its
/// channels and all of `*` with its mean and biased variance, `(x - mean) / sqrt(var +
/// eps)`; then channel `c` is multiplied by `weight[c]` and shifted by `bias[c]` (each `[C]`)
/// when given.
///
/// Returns `Err` for a rank below 2, a channel count that `num_groups` does not divide,
/// `weight` or `bias` of a shape other than `[C]`, a negative or non-finite `eps`, or a
/// `u32` input.
pub fn group_norm(
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
) -> Result<Tensor> {
    let op = "group_norm";
    check_eps(op, eps)?;
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::invalid(op, "expects [N, C, *]", &s));
    }
    let (n, c) = (s[0], s[1]);
    check_groups(op, num_groups, c)?;
    for t in [weight, bias].into_iter().flatten() {
        if t.shape() != [c] {
            return Err(Error::shapes(op, &t.shape(), &[c]));
        }
    }
    let spatial: usize = s[2..].iter().product();
    let per_group = c / num_groups * spatial;
    let r = x.reshape(&[n * num_groups, per_group])?;
    let mean = r.mean_axis(1, true)?;
    let inv_std = r.var_axis(1, false, true)?.add_scalar(eps)?.rsqrt()?;
    let y = r.sub(&mean)?.mul(&inv_std)?.reshape(&[n, c, spatial])?;
    let y = match weight {
        Some(w) => y.mul(&w.reshape(&[c, 1])?)?,
        None => y,
    };
    let y = match bias {
        Some(b) => y.add(&b.reshape(&[c, 1])?)?,
        None => y,
    };
    y.reshape(&s)
}

/// Options of [`GroupNorm`], PyTorch's arguments and defaults: eps 1e-5, learnable
/// per-channel `weight` (ones) and `bias` (zeros).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNormConfig {
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Learnable `weight` and `bias` of shape `[C]`.
    pub affine: bool,
}

impl Default for GroupNormConfig {
    fn default() -> Self {
        GroupNormConfig {
            eps: 1e-5,
            affine: true,
        }
    }
}

/// `nn.GroupNorm(num_groups, num_channels)`: [`group_norm`] on `[N, C, *]` inputs, with
/// parameters `weight` and `bias` named as PyTorch's.
pub struct GroupNorm {
    /// `[C]`, ones at first (when affine).
    pub weight: Option<Tensor>,
    /// `[C]`, zeros at first (when affine).
    pub bias: Option<Tensor>,
    num_groups: usize,
    num_channels: usize,
    eps: f32,
}

impl GroupNorm {
    /// Creates the layer under `path`. Returns `Err` when `num_groups` is 0 or does not
    /// divide `num_channels` (PyTorch raises too), for a negative or non-finite eps, or a
    /// taken name.
    pub fn new(
        path: &Path,
        num_groups: usize,
        num_channels: usize,
        cfg: GroupNormConfig,
    ) -> Result<GroupNorm> {
        check_groups("GroupNorm", num_groups, num_channels)?;
        check_eps("GroupNorm", cfg.eps)?;
        let (weight, bias) = if cfg.affine {
            (
                Some(path.var("weight", &[num_channels], Init::Constant(1.0))?),
                Some(path.var("bias", &[num_channels], Init::Constant(0.0))?),
            )
        } else {
            (None, None)
        };
        Ok(GroupNorm {
            weight,
            bias,
            num_groups,
            num_channels,
            eps: cfg.eps,
        })
    }

    /// The number of groups.
    pub fn num_groups(&self) -> usize {
        self.num_groups
    }
}

impl Module for GroupNorm {
    /// Normalizes `x`. Returns `Err` for a rank below 2, a channel count other than the
    /// layer's, or a `u32` input.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        if s.len() < 2 || s[1] != self.num_channels {
            return Err(Error::invalid(
                "GroupNorm",
                format!("expects [N, {}, *]", self.num_channels),
                &s,
            ));
        }
        group_norm(
            x,
            self.num_groups,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }
}
