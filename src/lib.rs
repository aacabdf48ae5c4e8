//! Cinder: a deep-learning framework whose every numeric kernel is a WGSL compute shader run
//! through wgpu, on any GPU wgpu reaches or, with none, on Mesa's lavapipe.
//!
//! Users meet one tensor type, [`Tensor`]: it records a graph when grad mode is on and an
//! input requires grad, as PyTorch's does, and every layer, loss, optimizer, the data
//! loader's batches and the classical pipelines take and return it. `use cinder::prelude::*`
//! brings it with [`TensorResultExt`], which puts the same ops on `Result<Tensor>` so an
//! expression needs one `?`:
//!
//! ```no_run
//! use cinder::prelude::*;
//! let dev = Device::default()?;
//! let a = Tensor::from_slice(&dev, &[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! let b = a.matmul(&a).relu().add_scalar(1.0)?;
//! assert_eq!(b.to_vec::<f32>()?, vec![8.0, 11.0, 16.0, 23.0]);
//! # Ok::<(), cinder::Error>(())
//! ```
//!
//! The workspace crates stay reachable under their module names: [`autograd`], [`nn`],
//! [`data`], [`models`], and [`device`], which holds the GPU context and, for kernel
//! authors, the raw `cinder::device::DeviceTensor` (no graph) that `Tensor` wraps.

#![warn(missing_docs)]

pub use cinder_autograd as autograd;
pub use cinder_data as data;
pub use cinder_device as device;
pub use cinder_distributed as distributed;
pub use cinder_models as models;
pub use cinder_nn as nn;

pub use cinder_autograd::{Tensor, TensorResultExt, grad, no_grad};
pub use cinder_device::{DType, Device, Error, Result};

/// The names a training program needs: `use cinder::prelude::*;` brings [`Tensor`] and its
/// `Result` chaining, the device, grad-mode switches, every layer, loss, optimizer and
/// learning-rate schedule, initializers, [`VarStore`](crate::nn::VarStore), the datasets
/// and the loader.
pub mod prelude {
    pub use cinder_autograd::{Tensor, TensorResultExt, grad, no_grad};
    pub use cinder_data::{Batch, DataLoader, Dataset, Transform, cifar, mnist};
    pub use cinder_device::{DType, Device, Error, Result};
    pub use cinder_nn::layers::*;
    pub use cinder_nn::loss::*;
    pub use cinder_nn::optim::*;
    pub use cinder_nn::schedule::*;
    pub use cinder_nn::{Init, Module, ModuleT, VarStore};
}

/// The README's examples, compiled by `cargo test` as doctests (not part of the API).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
