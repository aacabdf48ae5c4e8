//! Cinder's autograd: [`Tensor`], the one tensor type users meet: the device crate's raw
//! [`cinder_device::DeviceTensor`] plus the graph node of
//! the op that made it, and the backward pass.
//!
//! Ops record a node (inputs and a backward rule) when grad mode is on and an input
//! requires grad. [`Tensor::backward`] walks the graph in reverse topological order,
//! accumulates gradients into the leaves' [`Tensor::grad`] and frees the graph. Backward
//! rules are written with the same `Tensor` ops as forward code: with `create_graph` they
//! are recorded too, which gives higher-order gradients; without it they run under
//! [`no_grad`]. [`gradcheck`] compares every rule with central finite differences.
//!
//! ```no_run
//! use cinder_autograd::{Tensor, grad};
//! use cinder_device::Device;
//! let dev = Device::default()?;
//! let x = Tensor::parameter(Tensor::from_slice(&dev, &[1.0f32, 2.0], &[2])?)?;
//! let y = x.powf(3.0)?.sum_all()?;                       // sum x^3
//! let dx = &grad(&[&y], &[&x], true)?[0];                // 3 x^2, with a graph
//! let d2x = &grad(&[&dx.sum_all()?], &[&x], false)?[0];  // 6 x
//! assert_eq!(d2x.to_vec::<f32>()?, vec![6.0, 12.0]);
//! # Ok::<(), cinder_device::Error>(())
//! ```

#![warn(missing_docs)]

mod chain;
mod engine;
mod gradcheck;
mod mode;
mod operators;
mod ops;
mod tensor;

pub use chain::TensorResultExt;
pub use engine::{BackwardOptions, grad, grad_with};
pub use gradcheck::{GradcheckOptions, gradcheck};
pub use mode::{
    detect_anomaly, enable_grad, is_anomaly_enabled, is_grad_enabled, no_grad, set_detect_anomaly,
    with_grad_mode,
};
pub use tensor::{BackwardFn, Ctx, Tensor};
