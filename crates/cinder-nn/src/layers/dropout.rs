//! `Dropout`: zeroes elements with probability `p` in training and scales the rest by
//! `1 / (1 - p)`; the identity in evaluation.

use std::sync::atomic::{AtomicU64, Ordering};

use cinder_autograd::Tensor;
use cinder_device::{DeviceTensor, Error, Result};

use crate::module::ModuleT;

/// PyTorch's `nn.Dropout(p)`. Masks come from the device's counter-based generator keyed by
/// `(seed, offset)`, the offset advancing with every call, so a run is reproducible.
pub struct Dropout {
    p: f32,
    seed: u64,
    offset: AtomicU64,
}

impl Dropout {
    /// Dropout with probability `p` and a seed. Returns `Err` when `p` is outside `[0, 1]`.
    pub fn new(p: f32, seed: u64) -> Result<Dropout> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::invalid(
                "Dropout",
                format!("p = {p} is outside [0, 1]"),
                &[],
            ));
        }
        Ok(Dropout {
            p,
            seed,
            offset: AtomicU64::new(0),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl ModuleT for Dropout {
    /// In training, `x * mask / (1 - p)` with `mask ~ Bernoulli(1 - p)`; otherwise `x`.
    /// Returns `Err` only for a `u32` input in training.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        if self.p == 1.0 {
            return x.mul_scalar(0.0);
        }
        let n = x.numel() as u64;
        let offset = self.offset.fetch_add(n.max(1), Ordering::Relaxed);
        dropout(x, self.p, self.seed, offset)
    }
}

/// `x * mask / (1 - p)` with `mask ~ Bernoulli(1 - p)` drawn from the device's generator at
/// `(seed, offset)`; `x` itself for `p <= 0`, zeros for `p >= 1` (what [`Dropout`] and
/// attention's dropout apply). Returns `Err` for a `u32` input.
pub(crate) fn dropout(x: &Tensor, p: f32, seed: u64, offset: u64) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return x.mul_scalar(0.0);
    }
    let keep = DeviceTensor::rand_bernoulli(x.raw().device(), &x.shape(), 1.0 - p, seed, offset)?;
    x.mul(&Tensor::from_raw(keep.mul_scalar(1.0 / (1.0 - p))?))
}
