//! The [`Module`] trait and train/eval mode.

use cinder_autograd::Tensor;
use cinder_device::Result;

/// A layer or model: a forward pass from one tensor to one tensor. Modules that behave
/// differently in training (Dropout, BatchNorm) read [`Module::forward_t`]'s `train` flag.
pub trait Module: Send + Sync {
    /// The forward pass in training mode or not. Returns `Err` on shape or dtype mismatch.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;

    /// The forward pass in evaluation mode (`forward_t(x, false)`).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

impl<F> Module for F
where
    F: Fn(&Tensor) -> Result<Tensor> + Send + Sync,
{
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        self(x)
    }
}
