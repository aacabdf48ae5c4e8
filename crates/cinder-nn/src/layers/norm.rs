//! Batch normalization (`nn.BatchNorm1d`, `nn.BatchNorm2d`) with running statistics and
//! PyTorch's `num_batches_tracked` counter.

use cinder_autograd::{Tensor, no_grad};
use cinder_device::{DType, DeviceTensor, Error, Result};

use crate::checkpoint::FileDType;
use crate::init::Init;
use crate::module::ModuleT;
use crate::var_store::Path;

/// Options of [`BatchNorm`], PyTorch's arguments and defaults: eps 1e-5, momentum 0.1,
/// affine, running statistics tracked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Added to the variance before the square root.
    pub eps: f32,
    /// Weight of the new batch statistic in the running average, PyTorch's meaning:
    /// `running = (1 - momentum) * running + momentum * batch`. `None` is PyTorch's
    /// `momentum=None`: the cumulative average, with factor `1 / num_batches_tracked`.
    pub momentum: Option<f32>,
    /// Learnable `weight` (ones) and `bias` (zeros).
    pub affine: bool,
    /// Keep `running_mean`, `running_var` and `num_batches_tracked` and normalize with
    /// them in evaluation. When false the layer has no buffers and always normalizes with
    /// the batch's statistics, in evaluation too (as PyTorch).
    pub track_running_stats: bool,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

/// Batch normalization over the channel dimension 1: `BatchNorm1d` takes `[N, C]` or
/// `[N, C, L]`, `BatchNorm2d` takes `[N, C, H, W]`. In training it normalizes with the
/// batch's mean and biased variance, adds 1 to `num_batches_tracked` and updates
/// `running_mean` and `running_var` (with the unbiased variance, as PyTorch); in evaluation
/// it uses the running statistics. All of it stays on the device: a training step reads
/// nothing back and uploads nothing.
///
/// `num_batches_tracked` is a `u32` scalar on the device, saved as PyTorch's `int64` by
/// [`crate::VarStore::save`]. It is incremented through f32, so it counts exactly up to
/// 2^24 = 16,777,216 training batches and then stays there (PyTorch counts on in int64);
/// the cumulative average of `momentum = None` then weighs new batches by 2^-24.
pub struct BatchNorm {
    /// `[C]`, ones at first (when affine).
    pub weight: Option<Tensor>,
    /// `[C]`, zeros at first (when affine).
    pub bias: Option<Tensor>,
    /// `[C]` buffer, zeros at first (when tracking running statistics).
    pub running_mean: Option<Tensor>,
    /// `[C]` buffer, ones at first (when tracking running statistics).
    pub running_var: Option<Tensor>,
    /// `[]` u32 buffer, 0 at first: the number of training batches seen (when tracking
    /// running statistics).
    pub num_batches_tracked: Option<Tensor>,
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
        super::layer_norm::check_eps("BatchNorm", cfg.eps)?;
        if let Some(m) = cfg.momentum
            && !(0.0..=1.0).contains(&m)
        {
            return Err(Error::invalid(
                "BatchNorm",
                format!("momentum {m} outside [0, 1]"),
                &[c],
            ));
        }
        let (weight, bias) = if cfg.affine {
            (
                Some(path.var("weight", &[c], Init::Constant(1.0))?),
                Some(path.var("bias", &[c], Init::Constant(0.0))?),
            )
        } else {
            (None, None)
        };
        let (running_mean, running_var, num_batches_tracked) = if cfg.track_running_stats {
            let dev = path.device();
            let zero = Tensor::zeros(dev, &[])?.to_dtype(DType::U32)?;
            (
                Some(path.buffer("running_mean", Tensor::zeros(dev, &[c])?)?),
                Some(path.buffer("running_var", Tensor::ones(dev, &[c])?)?),
                Some(path.buffer_as("num_batches_tracked", zero, FileDType::I64)?),
            )
        } else {
            (None, None, None)
        };
        Ok(BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
            channels: c,
            ranks,
            cfg,
        })
    }

    /// `nn.BatchNorm1d(c)`: inputs `[N, C]` or `[N, C, L]`. Returns `Err` for zero
    /// channels, a negative or non-finite eps, a momentum outside `[0, 1]`, or a taken name.
    pub fn new_1d(path: &Path, c: usize, cfg: BatchNormConfig) -> Result<BatchNorm> {
        Self::new(path, c, cfg, &[2, 3])
    }

    /// `nn.BatchNorm2d(c)`: inputs `[N, C, H, W]`. Returns `Err` for zero channels, a
    /// negative or non-finite eps, a momentum outside `[0, 1]`, or a taken name.
    pub fn new_2d(path: &Path, c: usize, cfg: BatchNormConfig) -> Result<BatchNorm> {
        Self::new(path, c, cfg, &[4])
    }

    /// The options the layer was built with.
    pub fn config(&self) -> BatchNormConfig {
        self.cfg
    }

    /// Adds 1 to `num_batches_tracked` and blends the batch statistics (`[C]` mean and
    /// unbiased variance) into the running ones, on the device.
    fn update_running(&self, mean: &DeviceTensor, var_unbiased: &DeviceTensor) -> Result<()> {
        let (Some(rm), Some(rv), Some(nbt)) = (
            &self.running_mean,
            &self.running_var,
            &self.num_batches_tracked,
        ) else {
            return Ok(());
        };
        // u32 -> f32 -> +1 -> u32: exact below 2^24, then it stays at 2^24.
        let count = nbt.raw().to_dtype(DType::F32)?.add_scalar(1.0)?;
        nbt.set_raw(count.to_dtype(DType::U32)?)?;
        let blend = |running: &DeviceTensor, batch: &DeviceTensor| -> Result<DeviceTensor> {
            match self.cfg.momentum {
                Some(m) => running.mul_scalar(1.0 - m)?.add(&batch.mul_scalar(m)?),
                // Cumulative average: factor 1 / num_batches_tracked, a device scalar.
                None => {
                    let f = count.recip()?;
                    running.mul(&f.rsub_scalar(1.0)?)?.add(&batch.mul(&f)?)
                }
            }
        };
        rm.set_raw(blend(&rm.raw(), mean)?)?;
        rv.set_raw(blend(&rv.raw(), var_unbiased)?)
    }
}

impl ModuleT for BatchNorm {
    /// Normalizes `x`. Returns `Err` for a rank the layer does not take, a channel count
    /// other than `C`, or, when the batch statistics are used (training, or no running
    /// statistics), a single value per channel.
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
        let m = x.numel() / self.channels;
        let running = match (&self.running_mean, &self.running_var) {
            (Some(rm), Some(rv)) if !train => Some((rm, rv)),
            _ => None,
        };
        if running.is_none() && m < 2 {
            return Err(Error::invalid(
                "BatchNorm",
                "expected more than one value per channel when training",
                &s,
            ));
        }
        // One fused pass each for the centered square and the normalization; the backward is
        // two reductions and one pass (cinder_autograd's batch_norm).
        let (y, stats) = x.batch_norm(
            running,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.cfg.eps,
        )?;
        if let (true, Some((mean, var))) = (train, stats) {
            no_grad(|| {
                let bv = var.raw().mul_scalar(m as f32 / (m - 1) as f32)?;
                self.update_running(&mean.raw(), &bv)
            })?;
        }
        Ok(y)
    }
}
