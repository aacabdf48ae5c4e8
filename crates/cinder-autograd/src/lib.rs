//! Autograd for Cinder: `Tensor` (a `DeviceTensor` plus a recorded graph node) and backward rules.
#![warn(missing_docs)]
