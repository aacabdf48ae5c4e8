//! The op families of [`crate::DeviceTensor`], one module per WGSL shader file.
//!
//! Each module defines methods on `DeviceTensor` (an `impl DeviceTensor` block), the
//! [`crate::Kernel`]s it dispatches, and a `kernels()` list of every specialization it can
//! build, which the naga validation test compiles without an adapter.

pub mod check;
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod layout;
pub mod linalg;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod random;
pub mod reduce;
pub mod softmax;

use crate::Kernel;

/// Every kernel specialization the crate can dispatch, for validation.
pub fn all_kernels() -> Vec<Kernel> {
    let mut v = Vec::new();
    v.extend(check::kernels());
    v.extend(elementwise::kernels());
    v.extend(reduce::kernels());
    v.extend(softmax::kernels());
    v.extend(matmul::kernels());
    v.extend(conv::kernels());
    v.extend(pool::kernels());
    v.extend(index::kernels());
    v.extend(layout::kernels());
    v.extend(random::kernels());
    v.extend(linalg::kernels());
    v.extend(optim::kernels());
    v
}
