//! The op families of [`crate::DeviceTensor`], one module per WGSL shader file.
//!
//! Each module defines methods on `DeviceTensor` (an `impl DeviceTensor` block), the
//! [`crate::Kernel`]s it dispatches, and a `kernels()` list of every specialization it can
//! build, which the naga validation test compiles without an adapter.

pub mod attention;
pub mod check;
pub mod conv;
pub mod elementwise;
pub mod graph;
pub mod index;
pub mod layout;
pub mod linalg;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod random;
pub mod reduce;
pub mod rnn;
pub mod softmax;
pub mod table;
pub mod tsne;

use crate::Kernel;

/// A constant the host and a shader both use: the host's `value` must equal the WGSL
/// `const` or `override` default `name` in `shaders/<family>.wgsl` (the naga test checks
/// every one), so the two cannot drift apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contract {
    /// The shader family.
    pub family: &'static str,
    /// The WGSL constant's name.
    pub name: &'static str,
    /// The host's value.
    pub value: u64,
}

/// Every host constant a shader repeats (elements per invocation, workgroup and tile sizes,
/// flag bits, op codes), for the naga test. The workgroup sizes of the entry points are
/// checked separately, against [`Kernel::workgroup`].
pub fn contracts() -> Vec<Contract> {
    let c = |family, name, value: u64| Contract {
        family,
        name,
        value,
    };
    let mut v = vec![
        c(
            "elementwise",
            "EPT",
            crate::kernel::ELEMS_PER_INVOCATION as u64,
        ),
        c(
            "check",
            "VALUE_CHECK_BIT",
            crate::checks::VALUE_CHECK_BIT as u64,
        ),
        c("matmul", "BLOCK_ROWS", matmul::BLOCK_ROWS as u64),
        c("matmul", "BLOCK_COLS", matmul::BLOCK_COLS as u64),
        c("matmul", "TILE", matmul::TILE as u64),
        c("pool2d", "NO_INDEX", pool::NO_INDEX as u64),
    ];
    for (i, op) in crate::checks::INDEX_ERROR_OPS.iter().enumerate() {
        let name = match *op {
            "gather" => "BIT_GATHER",
            "index_select" => "BIT_INDEX_SELECT",
            "scatter_add" => "BIT_SCATTER_ADD",
            "index_select_backward" => "BIT_INDEX_SELECT_BACKWARD",
            _ => "BIT_ONE_HOT",
        };
        v.push(c("index", name, 1 << i));
    }
    v.extend(conv::contracts());
    v.extend(graph::contracts());
    v.extend(optim::contracts());
    v.extend(reduce::contracts());
    v.extend(tsne::contracts());
    v
}

/// Every kernel specialization the crate can dispatch, for validation.
pub fn all_kernels() -> Vec<Kernel> {
    let mut v = Vec::new();
    v.extend(check::kernels());
    v.extend(elementwise::kernels());
    v.extend(reduce::kernels());
    v.extend(softmax::kernels());
    v.extend(norm::kernels());
    v.extend(rnn::kernels());
    v.extend(attention::kernels());
    v.extend(matmul::kernels());
    v.extend(conv::kernels());
    v.extend(pool::kernels());
    v.extend(index::kernels());
    v.extend(layout::kernels());
    v.extend(random::kernels());
    v.extend(linalg::kernels());
    v.extend(graph::kernels());
    v.extend(optim::kernels());
    v.extend(tsne::kernels());
    v
}
