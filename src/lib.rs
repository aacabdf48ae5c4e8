//! Cinder: a deep-learning framework whose every numeric kernel is a WGSL compute shader run
//! through wgpu, on any GPU wgpu reaches or, with none, on Mesa's lavapipe.
//!
//! This facade re-exports the workspace crates:
//! - [`device`]: the GPU context, kernel dispatch and [`DeviceTensor`];
//! - [`autograd`], [`nn`], [`data`], [`models`]: the layers built on it.
//!
//! ```no_run
//! use cinder::prelude::*;
//! let dev = Device::default()?;
//! let a = DeviceTensor::from_slice(&dev, &[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! let b = a.matmul(&a)?.relu()?;
//! assert_eq!(b.to_vec::<f32>()?, vec![7.0, 10.0, 15.0, 22.0]);
//! # Ok::<(), cinder::Error>(())
//! ```

#![warn(missing_docs)]

pub use cinder_autograd as autograd;
pub use cinder_data as data;
pub use cinder_device as device;
pub use cinder_models as models;
pub use cinder_nn as nn;

pub use cinder_autograd::{Tensor, grad, no_grad};
pub use cinder_device::{DType, Device, DeviceTensor, Error, Result};

/// The names most programs need: `use cinder::prelude::*;`.
pub mod prelude {
    pub use cinder_autograd::{Tensor, grad, no_grad};
    pub use cinder_device::{
        BinaryOp, DType, Device, DeviceTensor, Error, MatmulKernel, Result, UnaryOp,
    };
    pub use cinder_nn::optim::Optimizer;
    pub use cinder_nn::{Module, ModuleT, VarStore};
}
