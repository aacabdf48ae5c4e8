//! Cinder's device layer: one wgpu device and queue ([`Device`]), a pipeline cache of WGSL
//! kernels from `shaders/`, asynchronous dispatch batched into few submits, a size-class
//! buffer pool, and [`DeviceTensor`] with every numeric kernel as a method.

#![warn(missing_docs)]

pub mod checks;
pub mod device;
pub mod error;
pub mod kernel;
pub mod ops;
mod pool;
pub mod profile;
pub mod shape;
pub mod tensor;

pub use device::{Device, DeviceOptions, DispatchStats, MemoryStats};
pub use error::{Error, Result};
pub use kernel::{Kernel, Params};
pub use ops::attention::AttnMask;
pub use ops::elementwise::{BinaryOp, UnaryOp};
pub use ops::matmul::{BiasAxis, Epilogue, MatmulKernel};
pub use ops::optim::{AdagradStep, AdamStep, RmspropStep, SgdStep};
pub use ops::rnn::{RnnForward, RnnGrads, RnnMode};
pub use ops::tsne::{TSNE_MAX_COMPONENTS, TsneStep};
pub use tensor::{DType, DeviceTensor, Element};
