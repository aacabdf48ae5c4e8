//! The [`Module`] and [`ModuleT`] traits: mode-free layers and layers whose forward pass
//! depends on training or evaluation mode.
//!
//! A PyTorch module carries a `training` flag that is on when it is built; a Cinder module
//! carries none. Layers whose output does not depend on the mode (Linear, convolutions,
//! activations, pooling, LayerNorm, ...) implement [`Module`] and have a plain
//! [`Module::forward`]. Layers whose output does (Dropout, BatchNorm) and models that
//! contain them implement only [`ModuleT`], whose [`ModuleT::forward_t`] takes the mode as
//! an argument: there is no mode-less forward on them, so a port cannot silently run a
//! training step in evaluation mode (or the reverse). Every [`Module`] is also a
//! [`ModuleT`] that ignores the flag, so containers ([`crate::Sequential`]) and training
//! loops take `&dyn ModuleT`.

use cinder_autograd::Tensor;
use cinder_device::Result;

/// A layer or model whose forward pass does not depend on training or evaluation mode.
pub trait Module: Send + Sync {
    /// The forward pass. Returns `Err` on shape or dtype mismatch.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
}

/// A layer or model whose forward pass may depend on the mode: `train = true` is PyTorch's
/// `model.train()`, `false` its `model.eval()`. Implemented by every [`Module`] (ignoring the
/// flag) and, alone, by mode-dependent modules (Dropout, BatchNorm, models holding them).
pub trait ModuleT: Send + Sync {
    /// The forward pass in training (`true`) or evaluation (`false`) mode. Returns `Err` on
    /// shape or dtype mismatch.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;
}

impl<M: Module + ?Sized> ModuleT for M {
    fn forward_t(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        self.forward(x)
    }
}

impl<F> Module for F
where
    F: Fn(&Tensor) -> Result<Tensor> + Send + Sync,
{
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self(x)
    }
}
