//! Batch normalization (`nn.BatchNorm1d`, `nn.BatchNorm2d`) with running statistics.

use cinder_autograd::{Tensor, no_grad};
use cinder_device::{DeviceTensor, Error, Result};

use crate::init::Init;
use crate::module::ModuleT;
use crate::var_store::Path;

/// Options of [`BatchNorm`] (PyTorch's defaults: eps 1e-5, momentum 0.1, affine).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Weight of the new batch statistic in the running average, PyTorch's meaning:
    /// `running = (1 - momentum) * running + momentum * batch`.
    pub momentum: f32,
    /// Learnable `weight` (ones) and `bias` (zeros).
    pub affine: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
        }
    }
}

/// Batch normalization over the channel dimension 1: `BatchNorm1d` takes `[N, C]` or
/// `[N, C, L]`, `BatchNorm2d` takes `[N, C, H, W]`. In training it normalizes with the
/// batch's mean and biased variance and updates `running_mean` and `running_var` (with
/// the unbiased variance, as PyTorch); in evaluation it uses the running statistics.
/// PyTorch's `num_batches_tracked` counter is not kept (it only matters for
/// `momentum=None`).
pub struct BatchNorm {
    /// `[C]`, ones at first (when affine).
    pub weight: Option<Tensor>,
    /// `[C]`, zeros at first (when affine).
    pub bias: Option<Tensor>,
    /// `[C]` buffer, zeros at first.
    pub running_mean: Tensor,
    /// `[C]` buffer, ones at first.
    pub running_var: Tensor,
    channels: usize,
    ranks: &'static [usize],
    cfg: BatchNormConfig,
}

impl BatchNorm {
    fn new(
        path: &Path,
        c: usize,
        cfg: BatchNormConfig,
        ranks: &'static [usize],
    ) -> Result<BatchNorm> {
        if c == 0 {
            return Err(Error::invalid("BatchNorm", "zero channels", &[c]));
        }
        let (weight, bias) = if cfg.affine {
            (
                Some(path.var("weight", &[c], Init::Constant(1.0))?),
                Some(path.var("bias", &[c], Init::Constant(0.0))?),
            )
        } else {
            (None, None)
        };
        let dev = path.device();
        let running_mean = path.buffer("running_mean", DeviceTensor::zeros(dev, &[c])?)?;
        let running_var = path.buffer("running_var", DeviceTensor::ones(dev, &[c])?)?;
        Ok(BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            channels: c,
            ranks,
            cfg,
        })
    }

    /// `nn.BatchNorm1d(c)`: inputs `[N, C]` or `[N, C, L]`. Returns `Err` for zero
    /// channels or a taken name.
    pub fn new_1d(path: &Path, c: usize, cfg: BatchNormConfig) -> Result<BatchNorm> {
        Self::new(path, c, cfg, &[2, 3])
    }

    /// `nn.BatchNorm2d(c)`: inputs `[N, C, H, W]`. Returns `Err` for zero channels or a
    /// taken name.
    pub fn new_2d(path: &Path, c: usize, cfg: BatchNormConfig) -> Result<BatchNorm> {
        Self::new(path, c, cfg, &[4])
    }
}

impl ModuleT for BatchNorm {
    /// Normalizes `x`. Returns `Err` for a rank the layer does not take, a channel count
    /// other than `C`, or a training batch with a single value per channel.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let s = x.shape();
        if !self.ranks.contains(&s.len()) || s[1] != self.channels {
            return Err(Error::invalid(
                "BatchNorm",
                format!(
                    "expects rank {:?} with {} channels",
                    self.ranks, self.channels
                ),
                &s,
            ));
        }
        let mut bshape = vec![1; s.len()];
        bshape[1] = self.channels;
        let axes: Vec<isize> = (0..s.len() as isize).filter(|&a| a != 1).collect();
        let m = x.numel() / self.channels;
        let (mean, inv_std) = if train {
            if m < 2 {
                return Err(Error::invalid(
                    "BatchNorm",
                    "expected more than one value per channel when training",
                    &s,
                ));
            }
            let mean = x.sum_axes(&axes, true)?.mul_scalar(1.0 / m as f32)?;
            let diff = x.sub(&mean)?;
            let var = diff
                .square()?
                .sum_axes(&axes, true)?
                .mul_scalar(1.0 / m as f32)?;
            let mom = self.cfg.momentum;
            no_grad(|| -> Result<()> {
                let bm = mean.data().reshape(&[self.channels])?;
                let bv = var
                    .data()
                    .reshape(&[self.channels])?
                    .mul_scalar(m as f32 / (m - 1) as f32)?;
                let rm = self
                    .running_mean
                    .data()
                    .mul_scalar(1.0 - mom)?
                    .add(&bm.mul_scalar(mom)?)?;
                let rv = self
                    .running_var
                    .data()
                    .mul_scalar(1.0 - mom)?
                    .add(&bv.mul_scalar(mom)?)?;
                self.running_mean.set_data(rm)?;
                self.running_var.set_data(rv)
            })?;
            (mean, var.add_scalar(self.cfg.eps)?.rsqrt()?)
        } else {
            let mean = self.running_mean.reshape(&bshape)?;
            let inv = self
                .running_var
                .add_scalar(self.cfg.eps)?
                .rsqrt()?
                .reshape(&bshape)?;
            (mean, inv)
        };
        let y = x.sub(&mean)?.mul(&inv_std)?;
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => y.mul(&w.reshape(&bshape)?)?.add(&b.reshape(&bshape)?),
            _ => Ok(y),
        }
    }
}
